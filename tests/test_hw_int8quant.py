"""Int8Quantizer (hw/int8quant.py) in Amaranth's simulator against
codec.fixedpoint.quantize_int8: random vectors and extremes (zero vectors, the largest
magnitudes of either sign, one nonzero element, ties of the rounding) back to back under
stalls, one and several lanes (a vector's last beat padded with zeros); cycles against sim.vectorcycles; parameter checks; Verilog."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from tritforge.codec.fixedpoint import quantize_int8
from tritforge.hw.int8quant import Int8Quantizer
from tritforge.sim.vectorcycles import Int8QuantStream, int8quant_cycles, int8quant_stream_cycles
from tritforge.vectorports import int8quant_ports

from vectorbench import convert, from_beats, run_ports, to_beats


def vectors(in_bits, rng, n=16):
    top = (1 << in_bits) - 1
    one = np.zeros(n, dtype=np.int64)
    one[n // 2] = -top
    vecs = [rng.integers(-top, top + 1, size=n), np.zeros(n, dtype=np.int64), np.full(n, top),
            np.full(3, -top), one, rng.integers(-2, 3, size=n), np.array([1]),
            np.arange(-n // 2, n // 2) * 3, rng.integers(-top, top + 1, size=5) >> rng.integers(0, in_bits, size=5)]
    return [np.clip(v, -top, top) for v in vecs]


def run(in_bits, B, vecs, seed=0, p_valid=1.0, p_ready=1.0, max_n=32, lanes=1, banks=1):
    """Each vector padded with zeros to whole beats; the padding's outputs are dropped."""
    feeds, keep = [], []
    for v in vecs:
        w = -(-len(v) // lanes) * lanes
        feeds += [{"v": int(v[j]) if j < len(v) else 0, "last": j == w - 1} for j in range(w)]
        keep += [j < len(v) for j in range(w)]
    dut = Int8Quantizer(in_bits, B, max_n, lanes=lanes, banks=banks)
    beats = to_beats(feeds, lanes, ("v",))
    r = run_ports(dut, int8quant_ports(in_bits, B, lanes), {"i": beats}, {"o": len(beats)},
                  seed=seed, p_valid=p_valid, p_ready=p_ready)
    r.out["o"] = [o for o, k in zip(from_beats(r.out["o"], lanes, ("x",)), keep) if k]
    return r


def check(r, vecs, B, lanes=1):
    got, at = r.out["o"], 0
    for v in vecs:
        xq, m, e = quantize_int8(v, B)
        g, at = got[at:at + len(v)], at + len(v)
        assert [o["x"] for o in g] == xq.tolist()
        assert {(o["m"], o["e"]) for o in g} == {(int(m), int(e))}
        tail = len(v) - lanes * (-(-len(v) // lanes) - 1)          # elements in the last beat
        assert [o["last"] for o in g] == [False] * (len(v) - tail) + [True] * tail


@pytest.mark.parametrize("in_bits,B,seed", [(20, 16, 1), (39, 16, 2), (32, 20, 3), (8, 8, 4), (1, 12, 5)])
def test_vectors_match_golden_under_stalls(in_bits, B, seed):
    vecs = vectors(in_bits, np.random.default_rng(seed))
    check(run(in_bits, B, vecs, seed=seed, p_valid=0.7, p_ready=0.6), vecs, B)


@pytest.mark.parametrize("lanes", [2, 3, 8])
def test_lanes_match_golden_under_stalls(lanes):
    vecs = vectors(31, np.random.default_rng(lanes))
    check(run(31, 16, vecs, seed=lanes, p_valid=0.7, p_ready=0.6, lanes=lanes), vecs, 16, lanes)


def test_full_rate_back_to_back():
    vecs = vectors(31, np.random.default_rng(9))
    check(run(31, 16, vecs, seed=9), vecs, 16)


@pytest.mark.parametrize("n,B,lanes", [(1, 16, 1), (16, 16, 1), (64, 16, 1), (40, 12, 1), (64, 16, 4), (30, 16, 4)])
def test_cycles_match_closed_form(n, B, lanes):
    v = np.random.default_rng(n).integers(-1000, 1000, size=n)
    r = run(20, B, [v], max_n=64, lanes=lanes)
    check(r, [v], B, lanes)
    assert r.cycles == int8quant_cycles(n, B, lanes)


@pytest.mark.parametrize("lanes,seed", [(1, 6), (3, 7)])
def test_two_banks_match_golden_under_stalls(lanes, seed):
    """With two banks a vector comes in while the previous one is divided and read out."""
    vecs = vectors(31, np.random.default_rng(seed)) * 2
    check(run(31, 16, vecs, seed=seed, p_valid=0.8, p_ready=0.5, lanes=lanes, banks=2), vecs, 16, lanes)


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("n,count,B,lanes", [(64, 3, 16, 1), (64, 6, 16, 1), (20, 4, 16, 1), (7, 5, 8, 1),
                                             (64, 4, 12, 8), (1, 3, 16, 1)])
def test_back_to_back_cycles_match_closed_form(n, count, B, lanes, banks):
    """Vectors back to back at full rate: sim.vectorcycles.int8quant_stream_cycles (two banks:
    the next receive overlaps the division and the output pass; 78 and 81 cycles apart at
    n = 64, B = 16, against 159 with one)."""
    vecs = [np.random.default_rng(n + k).integers(-1000, 1000, size=n) for k in range(count)]
    r = run(20, B, vecs, max_n=64, lanes=lanes, banks=banks)
    check(r, vecs, B, lanes)
    assert r.cycles == int8quant_stream_cycles(n, count, B, lanes, banks)


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("n,B,offers", [(64, 16, [0, 0, 300, 301, 305]), (20, 16, [3, 60, 61, 200]),
                                        (7, 8, [0, 10, 20, 30, 31, 32]), (1, 12, [0, 5, 5, 40])])
def test_offered_vectors_cycles_match_closed_form(n, B, offers, banks):
    """Vectors offered no earlier than given cycles (a gap before some, back to back after
    others, as the layer's readers give the query heads of its attention jobs):
    sim.vectorcycles.Int8QuantStream, vector by vector, the cycle after each last output."""
    dut = Int8Quantizer(20, B, 64, banks=banks)
    rng = np.random.default_rng(n + len(offers))
    vecs = [rng.integers(-1000, 1000, size=n) for _ in offers]
    ends = []

    async def feed(ctx):
        cycle = 0
        for v, offer in zip(vecs, offers):
            for j, x in enumerate(v):
                while cycle < offer:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.v, int(x))
                ctx.set(dut.i.payload.last, j == n - 1)
                while not ctx.get(dut.i.ready):
                    await ctx.tick()
                    cycle += 1
                await ctx.tick()
                cycle += 1
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(ends) < len(offers):
            if ctx.get(dut.o.valid) and ctx.get(dut.o.payload.last):
                ends.append(cycle + 1)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(sink)
    sim.run_until(1e-6 * 5000)
    stream = Int8QuantStream(n, B, banks=banks)
    assert ends == [stream.vector(offer) for offer in offers]


@pytest.mark.parametrize("args,exc", [((40, 16, 8), ValueError), ((0, 16, 8), ValueError),
                                      ((20, 7, 8), ValueError), ((20, 21, 8), ValueError),
                                      ((20, 16, 0), ValueError), ((20.0, 16, 8), TypeError),
                                      ((20, "16", 8), TypeError), ((20, 16, None), TypeError),
                                      ((20, 16, 8, 0), ValueError), ((20, 16, 8, None), TypeError),
                                      ((20, 16, 8, 1, 0), ValueError), ((20, 16, 8, 1, 3), ValueError),
                                      ((20, 16, 8, 1, 2.0), TypeError)])
def test_bad_parameters_are_refused(args, exc):
    with pytest.raises(exc):
        Int8Quantizer(*args[:3], lanes=args[3] if len(args) > 3 else 1, banks=args[4] if len(args) > 4 else 1)


@pytest.mark.parametrize("banks", [1, 2])
def test_converts_to_verilog(banks):
    convert(Int8Quantizer(39, 16, 1536, banks=banks), int8quant_ports(39, 16))


def test_smollm2_sized_vectors():
    """The attention output (576) and the SiLU·mul output (1536) of SmolLM2-135M."""
    rng = np.random.default_rng(11)
    vecs = [rng.integers(-(1 << 31) + 1, 1 << 31, size=576), rng.integers(-(1 << 20), 1 << 20, size=1536)]
    feeds = [{"v": int(x), "last": j == len(v) - 1} for v in vecs for j, x in enumerate(v)]
    r = run_ports(Int8Quantizer(31, 16, 1536), int8quant_ports(31, 16), {"i": feeds}, {"o": len(feeds)},
                  seed=11, p_valid=0.9, p_ready=0.9)
    check(r, vecs, 16)
    assert run(31, 16, vecs[:1], max_n=1536).cycles == int8quant_cycles(576, 16)
