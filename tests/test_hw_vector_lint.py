"""The vector unit's components convert to Verilog that lints clean with
`verilator --lint-only -Wno-WIDTH` (nothing else waived), as the engine's does
(tests/test_hw_lint.py), at the SmolLM2 sizes, with one and several lanes."""
from __future__ import annotations

import pytest
from amaranth.back import verilog

from tritforge.accelconfig import VectorConfig
from tritforge.hw.divider import Divider
from tritforge.hw.int8quant import Int8Quantizer
from tritforge.hw.requant import Requantize
from tritforge.hw.rmsnorm import RmsNorm
from tritforge.hw.rope import Rope
from tritforge.hw.rsqrt import Rsqrt
from tritforge.hw.silumul import SiluMul

from test_hw_lint import lint

VC = VectorConfig()
UNITS = {
    "divider": lambda: Divider(62, 39, 24),
    "int8quant": lambda: Int8Quantizer(32, 16, 1536),
    "rsqrt": lambda: Rsqrt(VC),
    "rmsnorm": lambda: RmsNorm(VC, 576),
    "rope": lambda: Rope(VC, 64),
    "silumul": lambda: SiluMul(VC),
    "requant": lambda: Requantize(VC, 49, residual=True),
    "int8quant-l8": lambda: Int8Quantizer(32, 16, 1536, lanes=8),
    "int8quant-b2": lambda: Int8Quantizer(32, 16, 64, banks=2),
    "rmsnorm-l8": lambda: RmsNorm(VC, 576, lanes=8),
    "rope-l4": lambda: Rope(VC, 64, lanes=4),
    "silumul-l2": lambda: SiluMul(VC, lanes=2),
    "requant-l4": lambda: Requantize(VC, 49, lanes=4),
}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_lints_clean(tmp_path, name):
    path = tmp_path / f"{name}.v"
    path.write_text(verilog.convert(UNITS[name](), name=name.replace("-", "_")))
    r = lint(str(path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr
