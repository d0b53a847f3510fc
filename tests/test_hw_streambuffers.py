"""hw/streambuffers.py (SkidBuffer, RegisterSlice) in Amaranth's simulator: every element
passes once and in order under random valid and ready, ``i.ready`` does not follow
``o.ready`` within a cycle (nor, in the register slice, ``o`` follow ``i``), and a
producer that is always valid keeps ``o`` valid in every cycle (the skid buffer's consumer
sees a wire's timing, the slice's a cycle later)."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from tritforge.hw.streambuffers import RegisterSlice, SkidBuffer


def run(dut, p_valid, p_ready, cycles=400, seed=0):
    """Offers 0, 1, 2, ... on ``i`` (valid with probability ``p_valid``, a garbage payload
    when not), takes ``o`` with probability ``p_ready``; returns the elements taken and the
    cycles ``o`` was not valid."""
    rng = random.Random(seed)
    taken, idle = [], []

    async def bench(ctx):
        nxt = 0
        for cycle in range(cycles):
            valid = rng.random() < p_valid
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, nxt % 256 if valid else rng.randrange(1 << 8))
            ctx.set(dut.o.ready, 0)
            held = ctx.get(dut.i.ready)
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            assert ctx.get(dut.i.ready) == held, f"cycle {cycle}: i.ready follows o.ready"
            if isinstance(dut, RegisterSlice):
                shown = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
                ctx.set(dut.i.valid, not valid)
                ctx.set(dut.i.payload, 255 - (nxt % 256))
                assert (ctx.get(dut.o.valid), ctx.get(dut.o.payload)) == shown, f"cycle {cycle}: o follows i"
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.i.payload, nxt % 256 if valid else 0)
            if not ctx.get(dut.o.valid):
                idle.append(cycle)
            elif ready:
                taken.append(ctx.get(dut.o.payload))
            if valid and held:
                nxt += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return taken, idle


@pytest.mark.parametrize("kind", [SkidBuffer, RegisterSlice])
@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 0.5), (0.5, 0.5), (0.7, 0.9), (0.3, 1.0), (1.0, 1.0)])
def test_elements_pass_once_in_order(kind, p_valid, p_ready):
    taken, idle = run(kind(8), p_valid, p_ready, seed=int(p_valid * 10 + p_ready * 100))
    assert taken == [k % 256 for k in range(len(taken))]
    assert len(taken) > 50
    if p_valid == 1.0:
        assert idle == ([] if kind is SkidBuffer else [0])


def test_a_layout_passes():
    layout = data.StructLayout({"x": signed(5), "last": 1})
    dut = SkidBuffer(layout)
    assert dut.o.payload.shape() == layout

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"x": -3, "last": 1})
        ctx.set(dut.o.ready, 0)
        await ctx.tick()                          # taken into the buffer
        ctx.set(dut.i.payload, {"x": 7, "last": 0})
        assert (ctx.get(dut.o.payload.x), ctx.get(dut.o.payload.last), ctx.get(dut.i.ready)) == (-3, 1, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("kind", [SkidBuffer, RegisterSlice])
def test_shape_checked(kind):
    with pytest.raises(TypeError):
        kind("eight")
