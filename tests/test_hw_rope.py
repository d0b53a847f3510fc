"""Rope (hw/rope.py) in Amaranth's simulator against codec.introtary.apply_rope: heads
back to back with their own cos/sin rows (host tables from rope_tables, and the extremes
of the cs port's range), the largest inputs of either sign (saturation to x_bits + 2),
under stalls on all three streams, one and several lanes; cycles; parameter checks; Verilog. The SmolLM2-sized
head (head_dim 64) and max_head_dim 256."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.introtary import apply_rope, rope_tables
from tritforge.hw.rope import Rope
from tritforge.sim.vectorcycles import rope_cycles
from tritforge.vectorports import rope_ports

from vectorbench import convert, from_beats, run_ports, to_beats


def heads(vc, hd, xb, cb, count, seed):
    """count (x, cos, sin) heads: random and extreme inputs, table rows and extreme rows."""
    rng = np.random.default_rng(seed)
    h = hd // 2
    top, ctop = (1 << xb) - 1, (1 << (cb - 1)) - 1
    inv_freq = 10000.0 ** (-np.arange(h) / h)
    c, s = rope_tables(rng.integers(0, 8192, size=count), inv_freq, vc.rope_frac_bits, 1.0, 8192)
    out = []
    for k in range(count):
        x = rng.integers(-top, top + 1, size=hd) >> rng.integers(0, xb, size=hd)
        ck, sk = c[k], s[k]
        if k % 3 == 1:
            x = np.where(np.arange(hd) % 2, top, -top)
            ck, sk = np.full(h, ctop), np.full(h, -ctop - 1)
        if k % 3 == 2:
            x = np.full(hd, -top)
        out.append((x, ck, sk))
    return out


def run(vc, hd, hs, *, xb=None, cb=None, seed=0, p_valid=1.0, p_ready=1.0, lanes=1):
    dut = Rope(vc, hd, x_bits=xb, cs_bits=cb, lanes=lanes)
    feeds = {"x": to_beats([{"x": int(v)} for x, _, _ in hs for v in x], lanes, ("x",)),
             "cs": to_beats([{"c": int(a), "s": int(b)} for _, c, s in hs for a, b in zip(c, s)], lanes, ("c", "s"))}
    r = run_ports(dut, rope_ports(vc, dut.x_bits, dut.cs_bits, lanes), feeds, {"o": hd * len(hs) // lanes},
                  seed=seed, p_valid=p_valid, p_ready=p_ready)
    r.out["o"] = from_beats(r.out["o"], lanes, ("y",))
    return dut, r


def check(dut, r, hs):
    hd = dut.head_dim
    got = [o["y"] for o in r.out["o"]]
    for k, (x, c, s) in enumerate(hs):
        want = apply_rope(x[None, None], c[None], s[None], dut.vcfg.rope_frac_bits, dut.x_bits)[0, 0]
        assert got[k * hd:(k + 1) * hd] == want.tolist()


@pytest.mark.parametrize("vc,hd,xb,cb,seed", [(VectorConfig(), 16, None, None, 1), (VectorConfig(), 2, None, None, 2),
                                              (VectorConfig(rope_frac_bits=10), 8, 20, 12, 3),
                                              (VectorConfig(rope_frac_bits=24), 6, 35, 26, 4)])
def test_heads_match_golden_under_stalls(vc, hd, xb, cb, seed):
    hs = heads(vc, hd, xb or vc.resid_bits - 1, cb or vc.rope_frac_bits + 2, 5, seed)
    check(*run(vc, hd, hs, xb=xb, cb=cb, seed=seed, p_valid=0.7, p_ready=0.6), hs)


def test_smollm2_head_dim_full_rate():
    vc = VectorConfig()
    hs = heads(vc, 64, 31, 16, 3, 5)
    check(*run(vc, 64, hs), hs)


@pytest.mark.parametrize("hd,lanes", [(16, 2), (16, 8), (12, 3)])
def test_lanes_match_golden_under_stalls(hd, lanes):
    vc = VectorConfig()
    hs = heads(vc, hd, 31, 16, 4, lanes)
    check(*run(vc, hd, hs, seed=lanes, p_valid=0.7, p_ready=0.6, lanes=lanes), hs)


@pytest.mark.parametrize("hd,lanes", [(2, 1), (16, 1), (64, 1), (64, 4), (64, 32)])
def test_cycles_match_closed_form(hd, lanes):
    vc = VectorConfig()
    hs = heads(vc, hd, 31, 16, 1, hd)
    dut, r = run(vc, hd, hs, lanes=lanes)
    check(dut, r, hs)
    assert r.cycles == rope_cycles(hd, lanes)


def test_max_head_dim():
    vc = VectorConfig()
    hs = heads(vc, 256, 31, 16, 3, 6)
    check(*run(vc, 256, hs, seed=6, p_valid=0.8, p_ready=0.8), hs)


@pytest.mark.parametrize("args,kw,exc", [((None, 16), {}, TypeError), ((VectorConfig(), 15), {}, ValueError),
                                         ((VectorConfig(), 0), {}, ValueError), ((VectorConfig(), 16.0), {}, TypeError),
                                         ((VectorConfig(), 16), {"x_bits": 50}, ValueError),
                                         ((VectorConfig(), 16), {"cs_bits": 1}, ValueError),
                                         ((VectorConfig(), 16), {"lanes": 3}, ValueError),
                                         ((VectorConfig(), 16), {"lanes": "2"}, TypeError)])
def test_bad_parameters_are_refused(args, kw, exc):
    with pytest.raises(exc):
        Rope(*args, **kw)


def test_converts_to_verilog():
    vc = VectorConfig()
    convert(Rope(vc, 64), rope_ports(vc, 31, 16))
