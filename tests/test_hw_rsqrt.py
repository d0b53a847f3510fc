"""Rsqrt (hw/rsqrt.py) in Amaranth's simulator against codec.intnorm.rsqrt: ss from 1 to
2^62 - 1 (powers of two, the LUT's bin edges, random magnitudes) for several LUT sizes,
fraction widths and Newton counts under stalls (beyond int64, against Python integers);
cycles against sim.vectorcycles; parameter checks; Verilog."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.intnorm import rsqrt, rsqrt_lut
from tritforge.hw.rsqrt import Rsqrt
from tritforge.sim.vectorcycles import rsqrt_cycles
from tritforge.vectorports import rsqrt_ports

from vectorbench import convert, run_ports

#: rsqrt_frac_bits up to 20 against the golden reference: from 21 on its mf · y² (up to
#: 2^(3RB+4)) wraps in int64, silently (its bound check sees the wrapped value); there the
#: RTL is checked against the same steps in Python integers (test_wide_fractions_exact)
CONFIGS = [VectorConfig(), VectorConfig(rsqrt_newton=0), VectorConfig(rsqrt_newton=2, rsqrt_lut_bits=2, rsqrt_frac_bits=8),
           VectorConfig(rsqrt_newton=3, rsqrt_lut_bits=12, rsqrt_frac_bits=19)]


def values(seed, count=40):
    rng = np.random.default_rng(seed)
    edges = [1, 2, 3, 4, 5, 7, 8, (1 << 62) - 1, 1 << 61, 3 << 60, (1 << 31) - 1, 1 << 31]
    rand = rng.integers(1, 1 << 62, size=count) >> rng.integers(0, 62, size=count)
    return edges + [int(max(v, 1)) for v in rand]


@pytest.mark.parametrize("k", range(len(CONFIGS)))
def test_values_match_golden_under_stalls(k):
    vc = CONFIGS[k]
    ss = values(k)
    r = run_ports(Rsqrt(vc), rsqrt_ports(vc, 62), {"i": [{"ss": s} for s in ss]}, {"o": len(ss)},
                  seed=k, p_valid=0.7, p_ready=0.6)
    y, E = rsqrt(np.array(ss), vc.rsqrt_lut_bits, vc.rsqrt_frac_bits, vc.rsqrt_newton)
    assert [(o["y"], o["E"]) for o in r.out["o"]] == list(zip(y.tolist(), E.tolist()))


@pytest.mark.parametrize("k,n", [(0, 1), (0, 8), (1, 3), (3, 2)])
def test_cycles_match_closed_form(k, n):
    vc = CONFIGS[k]
    dut = Rsqrt(vc)
    r = run_ports(dut, rsqrt_ports(vc, 62), {"i": [{"ss": s} for s in values(k)[:n]]}, {"o": n})
    assert r.cycles == rsqrt_cycles(n, vc) == n + dut.latency


@pytest.mark.parametrize("args,exc", [((None,), TypeError), ((VectorConfig(), 63), ValueError),
                                      ((VectorConfig(), 0), ValueError), ((VectorConfig(), 8.0), TypeError)])
def test_bad_parameters_are_refused(args, exc):
    with pytest.raises(exc):
        Rsqrt(*args)


def test_converts_to_verilog():
    convert(Rsqrt(VectorConfig()), rsqrt_ports(VectorConfig(), 62))


@pytest.mark.parametrize("ss_bits", [1, 2, 5])
def test_narrow_inputs_every_value(ss_bits):
    """Every ss of a narrow port (the normalization's left shifts)."""
    vc = VectorConfig()
    ss = list(range(1, 1 << ss_bits))
    r = run_ports(Rsqrt(vc, ss_bits), rsqrt_ports(vc, ss_bits), {"i": [{"ss": s} for s in ss]}, {"o": len(ss)})
    y, E = rsqrt(np.array(ss), vc.rsqrt_lut_bits, vc.rsqrt_frac_bits, vc.rsqrt_newton)
    assert [(o["y"], o["E"]) for o in r.out["o"]] == list(zip(y.tolist(), E.tolist()))


def exact_rsqrt(ss: int, vc: VectorConfig) -> tuple[int, int]:
    """codec.intnorm.rsqrt's steps in Python integers (no int64 limit)."""
    L, RB = vc.rsqrt_lut_bits, vc.rsqrt_frac_bits
    w = (ss.bit_length() - 1) // 2
    mf = ss >> (2 * w - RB) if 2 * w >= RB else ss << (RB - 2 * w)
    y = int(rsqrt_lut(L, RB)[(mf >> (RB + 2 - L)) - (1 << (L - 2))])
    for _ in range(vc.rsqrt_newton):
        t = (mf * y * y + (1 << (2 * RB - 1))) >> (2 * RB)
        y = (y * (3 * (1 << RB) - t) + (1 << RB)) >> (RB + 1)
    return y, RB + w


@pytest.mark.parametrize("RB", [21, 24])
def test_wide_fractions_exact(RB):
    vc = VectorConfig(rsqrt_frac_bits=RB, rsqrt_newton=2)
    ss = values(RB, 20)
    r = run_ports(Rsqrt(vc), rsqrt_ports(vc, 62), {"i": [{"ss": s} for s in ss]}, {"o": len(ss)}, seed=RB,
                  p_valid=0.8, p_ready=0.8)
    assert [(o["y"], o["E"]) for o in r.out["o"]] == [exact_rsqrt(s, vc) for s in ss]
    # where both hold, the Python form is the golden reference's
    small = VectorConfig(rsqrt_newton=2)
    y, E = rsqrt(np.array(ss), small.rsqrt_lut_bits, small.rsqrt_frac_bits, 2)
    assert [exact_rsqrt(s, small) for s in ss] == list(zip(y.tolist(), E.tolist()))
