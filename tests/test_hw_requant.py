"""Requantize (hw/requant.py) in Amaranth's simulator against codec.fixedpoint.requantize
(and the layer's saturating residual add): random accumulators up to the contract's
width, the pre-shift of acc_preshift, shifts of both signs and far beyond the product's
width, saturation at both ends, one and several lanes, under stalls; cycles; parameter checks; Verilog. Left
shifts stay where numpy's int64 holds the shifted product (beyond, the RTL saturates and
the reference wraps)."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.fixedpoint import acc_preshift, requantize, saturate
from tritforge.hw.requant import Requantize
from tritforge.sim.vectorcycles import requant_cycles
from tritforge.vectorports import requant_ports

from vectorbench import convert, from_beats, run_ports, to_beats


def items(vc, acc_bits, residual, count, seed):
    rng = np.random.default_rng(seed)
    B = vc.scale_bits
    a = acc_preshift(1 << (acc_bits - 1), B)
    top = (1 << (acc_bits - 1)) - 1
    rtop = (1 << (vc.resid_bits - 1)) - 1
    out = []
    for k in range(count):
        acc = int(rng.integers(-top, top + 1) >> rng.integers(0, acc_bits))
        if k % 7 == 0:
            acc = [top, -top, 0, 1, -1, top >> 9, -(top >> 20)][k // 7 % 7]
        m = int(rng.integers(1 << (B - 1), 1 << B))
        e = int(rng.integers(-20, 100)) if k % 5 else int(rng.choice([-128, 127, a + vc.resid_frac_bits]))
        left = a + vc.resid_frac_bits - e
        if left > 0 and (abs(acc >> a) * m).bit_length() + left > 62:
            e = a + vc.resid_frac_bits - max(0, 62 - (abs(acc >> a) * m).bit_length())   # inside int64
        it = {"acc": acc, "m": m, "e": e, "a": a}
        if residual:
            it["res"] = int(rng.choice([rtop, -rtop - 1, 0])) if k % 3 == 0 else int(rng.integers(-rtop, rtop))
        out.append(it)
    return out


def expected(vc, its, out_frac, out_bits, residual):
    ys = []
    for it in its:
        y = int(requantize(np.array([it["acc"]]), it["a"], it["m"], it["e"], out_frac, out_bits)[0])
        ys.append(int(saturate(it["res"] + y, vc.resid_bits)) if residual else y)
    return ys


@pytest.mark.parametrize("vc,acc_bits,residual,out_bits", [
    (VectorConfig(), 49, False, None), (VectorConfig(), 49, True, None), (VectorConfig(), 20, False, 16),
    (VectorConfig(scale_bits=20, resid_bits=24, resid_frac_bits=10), 40, True, None),
    (VectorConfig(scale_bits=8), 62, False, 40)])
def test_elements_match_golden_under_stalls(vc, acc_bits, residual, out_bits):
    dut = Requantize(vc, acc_bits, out_bits=out_bits, residual=residual)
    its = items(vc, acc_bits, residual, 80, acc_bits)
    r = run_ports(dut, requant_ports(vc, acc_bits, dut.out_bits, residual), {"i": its}, {"o": len(its)},
                  seed=acc_bits, p_valid=0.7, p_ready=0.6)
    assert [o["y"] for o in r.out["o"]] == expected(vc, its, dut.out_frac, dut.out_bits, residual)


@pytest.mark.parametrize("lanes,residual", [(2, False), (3, True)])
def test_lanes_match_golden_under_stalls(lanes, residual):
    vc = VectorConfig()
    its = items(vc, 49, residual, 20 * lanes, lanes)
    for b in range(0, len(its), lanes):              # one (m, e, a) per beat, inside int64
        group, beat = its[b:b + lanes], dict(its[b + lanes - 1])
        beat["e"] = max([beat["e"]] + [beat["a"] + vc.resid_frac_bits
                                       - max(0, 62 - (abs(it["acc"] >> beat["a"]) * beat["m"]).bit_length())
                                       for it in group])
        for it in group:
            it.update({f: beat[f] for f in ("m", "e", "a")})
    lf = ("acc", "res") if residual else ("acc",)
    dut = Requantize(vc, 49, residual=residual, lanes=lanes)
    r = run_ports(dut, requant_ports(vc, 49, vc.resid_bits, residual, lanes), {"i": to_beats(its, lanes, lf)},
                  {"o": 20}, seed=lanes, p_valid=0.7, p_ready=0.6)
    got = [o["y"] for o in from_beats(r.out["o"], lanes, ("y",))]
    assert got == expected(vc, its, vc.resid_frac_bits, vc.resid_bits, residual)


@pytest.mark.parametrize("n,residual", [(1, False), (16, False), (16, True)])
def test_cycles_match_closed_form(n, residual):
    vc = VectorConfig()
    dut = Requantize(vc, 49, residual=residual)
    its = items(vc, 49, residual, n, n)
    r = run_ports(dut, requant_ports(vc, 49, vc.resid_bits, residual), {"i": its}, {"o": n})
    assert [o["y"] for o in r.out["o"]] == expected(vc, its, vc.resid_frac_bits, vc.resid_bits, residual)
    assert r.cycles == requant_cycles(n, residual) == n + dut.stages
    dut = Requantize(vc, 49, residual=residual, lanes=4)
    r = run_ports(dut, requant_ports(vc, 49, vc.resid_bits, residual, 4),
                  {"i": to_beats(its * 4, 4, ("acc", "res") if residual else ("acc",))}, {"o": n})
    assert r.cycles == requant_cycles(4 * n, residual, 4)


@pytest.mark.parametrize("args,kw,exc", [((None, 49), {}, TypeError), ((VectorConfig(), 63), {}, ValueError),
                                         ((VectorConfig(), 1), {}, ValueError),
                                         ((VectorConfig(), 49), {"residual": 1}, TypeError),
                                         ((VectorConfig(), 49), {"out_bits": 63}, ValueError),
                                         ((VectorConfig(), 49), {"out_frac": -1}, ValueError),
                                         ((VectorConfig(), "49"), {}, TypeError),
                                         ((VectorConfig(), 49), {"lanes": 0}, ValueError)])
def test_bad_parameters_are_refused(args, kw, exc):
    with pytest.raises(exc):
        Requantize(*args, **kw)


def test_converts_to_verilog():
    vc = VectorConfig()
    convert(Requantize(vc, 49, residual=True), requant_ports(vc, 49, vc.resid_bits, True))


def test_far_left_shifts_saturate():
    """Where numpy's int64 would wrap, the RTL gives the exact (Python integer) result:
    the saturated value of the sign."""
    vc = VectorConfig()
    its = [{"acc": acc, "m": 61427, "e": e, "a": 3} for acc, e in
           [(-16435808941, -12), (16435808941, -12), (1, -128), (-1, -128), (0, -128), (5, -100)]]
    dut = Requantize(vc, 49)
    r = run_ports(dut, requant_ports(vc, 49, vc.resid_bits, False), {"i": its}, {"o": len(its)})
    top = (1 << 31) - 1
    want = []
    for it in its:
        ap = (it["acc"] + 4) >> 3
        want.append(max(-top - 1, min(top, (ap * it["m"]) << (3 + 14 - it["e"]))))
    assert [o["y"] for o in r.out["o"]] == want
