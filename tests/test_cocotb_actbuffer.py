"""The activation buffer (hw/actbuffer.py) on Verilator through cocotb, built with the ECP5
primitives (its DP16KD blocks as tests/ecp5_models.py's behavioural model) in the port
widths the layer and the units use: the vector memory's 2-bit ports (SmolLM2's 5,184
words of 32 bits), 4-bit ports behind the fabric registers, and 36-bit ports; and the
generic build beside them. Writes, reads under a random enable, rewrites beside reads."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.hw.actbuffer import ActivationBuffer, ecp5_config  # noqa: E402


@pytest.mark.parametrize("words,width,fabric,primitives,port", [
    (5184, 32, False, "ecp5", 2), (3000, 5, True, "ecp5", 4), (300, 40, False, "ecp5", 36),
    (300, 40, True, "generic", None)])
def test_buffer_on_verilator(request, tmp_path, words, width, fabric, primitives, port):
    if port is not None:
        assert ecp5_config(words, width)[0] == port
    buf = ActivationBuffer(words, width, primitives=primitives, fabric=fabric)
    build = harness.build_component(request, buf, f"actbuffer_{primitives}",
                                    meta={"words": words, "width": width, "fabric": fabric},
                                    ecp5_models=primitives == "ecp5")
    harness.run_bench(build, "actbuffer", {"words": words, "width": width, "fabric": fabric, "seed": words},
                      tmp_path)
