"""SiluMul (hw/silumul.py) in Amaranth's simulator against codec.intact.silu_mul: random
pairs over the whole range, the table's edges (|g| at the interval boundaries, at and
beyond the clipping point 2^RS), both signs' extremes and saturation, under stalls, for
several table sizes, one and several lanes; cycles; parameter checks; Verilog."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.intact import silu_mul
from tritforge.hw.silumul import SiluMul
from tritforge.sim.vectorcycles import silumul_cycles
from tritforge.vectorports import silumul_ports

from vectorbench import convert, from_beats, run_ports, to_beats


def pairs(vc, count, seed):
    rng = np.random.default_rng(seed)
    FR, RS, LB = vc.resid_frac_bits, vc.silu_range_log2, vc.silu_lut_bits
    top = (1 << (vc.resid_bits - 1)) - 1
    step = 1 << (RS + FR - LB)
    edges = [0, 1, -1, step, step - 1, -step, (1 << (RS + FR)) - 1, 1 << (RS + FR), -(1 << (RS + FR)),
             top, -top, 3 * step + step // 2, -(5 * step + step // 2)]
    g = edges + [int(x) for x in rng.integers(-top, top + 1, size=count) >> rng.integers(0, vc.resid_bits - 1, size=count)]
    u = [int(x) for x in rng.integers(-top, top + 1, size=len(g)) >> rng.integers(0, vc.resid_bits - 1, size=len(g))]
    u[9], u[10] = top, top                       # saturation of either sign
    return g, u


@pytest.mark.parametrize("vc", [VectorConfig(), VectorConfig(silu_lut_bits=5, resid_frac_bits=10),
                                VectorConfig(silu_lut_bits=14, silu_range_log2=1, resid_frac_bits=13,
                                             sigmoid_frac_bits=20, resid_bits=24),
                                VectorConfig(silu_lut_bits=6, silu_range_log2=2, resid_frac_bits=4)])   # no interpolation
def test_pairs_match_golden_under_stalls(vc):
    g, u = pairs(vc, 60, vc.silu_lut_bits)
    r = run_ports(SiluMul(vc), silumul_ports(vc), {"i": [{"g": a, "u": b} for a, b in zip(g, u)]},
                  {"o": len(g)}, seed=vc.silu_lut_bits, p_valid=0.7, p_ready=0.6)
    assert [o["y"] for o in r.out["o"]] == silu_mul(np.array(g), np.array(u), vc).tolist()


@pytest.mark.parametrize("lanes", [2, 5])
def test_lanes_match_golden_under_stalls(lanes):
    vc = VectorConfig()
    g, u = pairs(vc, 10 * lanes - 13, lanes)
    beats = to_beats([{"g": a, "u": b} for a, b in zip(g, u)], lanes, ("g", "u"))
    r = run_ports(SiluMul(vc, lanes=lanes), silumul_ports(vc, lanes), {"i": beats}, {"o": len(beats)},
                  seed=lanes, p_valid=0.7, p_ready=0.6)
    got = [o["y"] for o in from_beats(r.out["o"], lanes, ("y",))]
    assert got == silu_mul(np.array(g), np.array(u), vc).tolist()
    assert r.cycles >= silumul_cycles(len(g), lanes)


@pytest.mark.parametrize("n", [1, 16])
def test_cycles_match_closed_form(n):
    vc = VectorConfig()
    g, u = pairs(vc, n, n)
    r = run_ports(SiluMul(vc), silumul_ports(vc), {"i": [{"g": a, "u": b} for a, b in zip(g[:n], u[:n])]}, {"o": n})
    assert r.cycles == silumul_cycles(n) == n + SiluMul.stages
    lanes = 4
    beats = to_beats([{"g": a, "u": b} for a, b in zip(g[:n], u[:n])] * lanes, lanes, ("g", "u"))
    r = run_ports(SiluMul(vc, lanes=lanes), silumul_ports(vc, lanes), {"i": beats}, {"o": n})
    assert r.cycles == silumul_cycles(n * lanes, lanes)


@pytest.mark.parametrize("arg,kw,exc", [(None, {}, TypeError), (VectorConfig(resid_bits=33), {}, ValueError),
                                        (VectorConfig(), {"lanes": 0}, ValueError),
                                        (VectorConfig(), {"lanes": 2.0}, TypeError)])
def test_bad_parameters_are_refused(arg, kw, exc):
    with pytest.raises(exc):
        SiluMul(arg, **kw)


def test_converts_to_verilog():
    convert(SiluMul(VectorConfig()), silumul_ports(VectorConfig()))
