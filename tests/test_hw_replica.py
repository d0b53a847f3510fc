"""hw/replica.py: copies of registers in Amaranth's simulator, each copy with the value and
enable the parameters give it, and parameter checks."""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from tritforge.hw.replica import RegisterReplicas, Replicas


@pytest.mark.parametrize("n,enables", [(1, 1), (4, 1), (8, 8), (6, 3)])
def test_register_replicas_load_on_their_own_enable(n, enables):
    dut = RegisterReplicas(5, n, enables=enables)
    rng = random.Random(n * 10 + enables)
    want = [0] * n

    async def bench(ctx):
        for _ in range(60):
            d, en = rng.randrange(32), rng.randrange(1 << enables)
            ctx.set(dut.d, d)
            ctx.set(dut.en, en)
            await ctx.tick()
            for i in range(n):
                if en >> (i * enables // n) & 1:
                    want[i] = d
                assert ctx.get(dut.q[i]) == want[i], (i, d, en)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_replicas_take_their_input_every_cycle():
    dut = Replicas(6, inputs=3)
    rng = random.Random(1)

    async def bench(ctx):
        for _ in range(30):
            d = rng.randrange(8)
            ctx.set(dut.d, d)
            await ctx.tick()
            assert [ctx.get(dut.q[i]) for i in range(6)] == [d >> (i * 3 // 6) & 1 for i in range(6)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("kw", [{"width": 0, "n": 2}, {"width": 4, "n": 0}, {"width": 4, "n": 2, "enables": 0},
                                {"width": 4, "n": 2, "enables": 1.5}])
def test_register_replicas_parameters_checked(kw):
    with pytest.raises((TypeError, ValueError)):
        RegisterReplicas(**kw)
