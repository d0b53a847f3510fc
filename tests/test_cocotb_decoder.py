"""Trit decoder (hw/decoder.py) on Verilator through cocotb: every byte value, stalls, reset."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.hwconfig import HwConfig  # noqa: E402

from tritforge.hw import decoder  # noqa: E402

# every style of decoder.STYLES, the shipped one (nibble) at most shapes; the ROM style
# compiles slowly (a 243-case table per byte): a small beat by default, R=4 in the sweep
CONFIGS = [(1, 1, "nibble"), (2, 4, "nibble"), (4, 4, "nibble"), (2, 4, "arith"), (3, 3, "arith"),
           (1, 2, "rom"), pytest.param(2, 4, "rom", marks=pytest.mark.slow)]


def _id(c):
    d, r, s = c.values if hasattr(c, "values") else c
    return f"d{d}-R{r}-{s}"


@pytest.mark.parametrize("depth,rows,style", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_decoder(request, tmp_path, depth, rows, style):
    assert {getattr(c, "values", c)[2] for c in CONFIGS} == set(decoder.STYLES)
    cfg = HwConfig(depth=depth, rows=rows)
    comp = decoder.TritDecoder(cfg, style=style)
    build = harness.build_component(request, comp, "decoder", meta={"depth": depth, "rows": rows, "style": style})
    harness.run_bench(build, "decoder", {"hwconfig": cfg.to_dict(), "style": style,
                                         "seed": 1000 * depth + rows, "beats": 48}, tmp_path)


def test_build_cache_and_control_file(request, tmp_path):
    """A second build of the same design reuses the first; only the top ports are public."""
    from tritforge.sim import cosim
    comp = decoder.TritDecoder(HwConfig(depth=1, rows=1))
    a = harness.build_component(request, comp, "decoder")
    b = harness.build_component(request, comp, "decoder")
    assert b.seconds == 0.0 and b.build_dir == a.build_dir and b.binary.exists()
    vlt = cosim.control_file("decoder", cosim.component_ports(comp))
    assert vlt.startswith("`verilator_config")
    public = [line.split('"')[3] for line in vlt.splitlines() if line.startswith("public_flat_rw")]
    assert public == ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"]
    assert "--no-public-flat-rw" in b.meta["args"] and "-Wno-WIDTH" in b.meta["args"]
    other = decoder.TritDecoder(HwConfig(depth=1, rows=2))
    assert harness.build_component(request, other, "decoder").key != a.key


@pytest.mark.parametrize("fst", [True, False], ids=["fst", "vcd-fallback"])
def test_waves_on_demand(request, tmp_path, monkeypatch, fst):
    """TRITFORGE_WAVES=1: a traced build and a dump.fst per run (dump.vcd without lz4 headers)."""
    from tritforge.sim import cosim
    if fst and not cosim.fst_supported():
        pytest.fail("no lz4 headers here: Verilator cannot compile its FST writer; `make venv` "
                    "installs them (Debian package liblz4-dev, the Makefile's DEB_PACKAGES)")
    if not fst:
        monkeypatch.setattr(cosim, "_FST_OK", False)
    monkeypatch.setenv("TRITFORGE_WAVES", "1")
    cfg = HwConfig(depth=1, rows=1)
    build = harness.build_component(request, decoder.TritDecoder(cfg), "decoder")
    assert build.waves and build.build_dir.name.endswith("-waves")
    res = harness.run_bench(build, "decoder", {"hwconfig": cfg.to_dict(), "seed": 3, "beats": 8},
                            tmp_path, testcase="exhaustive_bytes")
    assert res.waves is not None and res.waves.exists() and res.waves.stat().st_size > 1000
    head = res.waves.read_bytes()[:16]
    if fst:
        assert res.waves.name == "dump.fst" and head[:1] == b"\x00"     # FST header block
    else:
        assert res.waves.name == "dump.vcd" and head.lstrip().startswith(b"$")   # VCD text
