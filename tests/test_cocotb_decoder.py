"""Trit decoder (hw/decoder.py) on Verilator through cocotb: every byte value, stalls, reset."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.hwconfig import HwConfig  # noqa: E402

decoder = pytest.importorskip("tritforge.hw.decoder")

CONFIGS = [(1, 1, "arith"), (2, 4, "arith"), (3, 3, "arith"), (4, 4, "arith"), (2, 4, "rom")]


@pytest.mark.parametrize("depth,rows,style", CONFIGS, ids=[f"d{d}-R{r}-{s}" for d, r, s in CONFIGS])
def test_decoder(request, tmp_path, depth, rows, style):
    cfg = HwConfig(depth=depth, rows=rows)
    comp = decoder.TritDecoder(cfg, style=style)
    build = harness.build_component(request, comp, "decoder", meta={"depth": depth, "rows": rows, "style": style})
    harness.run_bench(build, "decoder", {"hwconfig": cfg.to_dict(), "style": style,
                                         "seed": 1000 * depth + rows, "beats": 48}, tmp_path)
