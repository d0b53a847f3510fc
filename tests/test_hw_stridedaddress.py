"""hw/stridedaddress.py: the walk through one token of an interleaved vector-memory region
is LayerConfig.address's, element by element; unstrided it counts on by one."""
from __future__ import annotations

import dataclasses

import pytest
from amaranth.sim import Simulator

from tritforge.hw.stridedaddress import StridedAddress
from tritforge.layerconfig import LayerConfig


def walk(dut, base, strided, n, hold_every=3):
    """The addresses of n steps after a load, with a cycle without a step every
    ``hold_every`` cycles (the walk holds)."""
    seen = []

    async def bench(ctx):
        ctx.set(dut.load, 1)
        ctx.set(dut.base, base)
        ctx.set(dut.strided, strided)
        await ctx.tick()
        ctx.set(dut.load, 0)
        cycle = 0
        while len(seen) < n:
            step = cycle % hold_every != hold_every - 1
            ctx.set(dut.step, step)
            if step:
                seen.append(ctx.get(dut.addr))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("tokens,rows", [(3, 4), (2, 8)])
def test_walk_is_the_interleaved_layout(tokens, rows):
    base = LayerConfig()
    engine = dataclasses.replace(base.accel.engine, rows=rows, vectors=tokens)
    lcfg = dataclasses.replace(base, accel=dataclasses.replace(base.accel, engine=engine))
    dut = StridedAddress(16, rows, tokens * rows)
    for region in ("h", "k"):
        for t in range(tokens):
            n = lcfg.regions[region][1]
            got = walk(dut, lcfg.address(region, t, 0), 1, n)
            assert got == [lcfg.address(region, t, i) for i in range(n)]


def test_unstrided_walk_counts_on():
    assert walk(StridedAddress(8, 4, 12), 5, 0, 10) == list(range(5, 15))
    assert walk(StridedAddress(8, 4, 4), 5, 1, 10) == list(range(5, 15))


def test_parameters_checked():
    with pytest.raises(ValueError, match="stride must be at least 4"):
        StridedAddress(8, 4, 2)
    with pytest.raises(TypeError):
        StridedAddress(8, 4.0, 8)
