"""hw/multiplier.py's WideMultiplier with ``spare_first`` (the spare adder levels as
registers before the adders) in Amaranth's simulator: the same products after the same
MUL_STAGES registers as without, for one tile and several."""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from tritforge.hw.multiplier import WideMultiplier
from tritforge.vectortiming import MUL_STAGES


@pytest.mark.parametrize("a_bits,b_bits", [(18, 18), (18, 36), (18, 21), (22, 22), (40, 30)])
@pytest.mark.parametrize("spare_first", [False, True])
def test_products_after_mul_stages(a_bits, b_bits, spare_first):
    dut = WideMultiplier(a_bits, b_bits, spare_first=spare_first)
    rng = random.Random(a_bits * 100 + b_bits)
    pairs = [(rng.randrange(-(1 << (a_bits - 1)), 1 << (a_bits - 1)),
              rng.randrange(-(1 << (b_bits - 1)), 1 << (b_bits - 1))) for _ in range(20)]
    pairs += [(-(1 << (a_bits - 1)), -(1 << (b_bits - 1))), ((1 << (a_bits - 1)) - 1, -(1 << (b_bits - 1)))]

    async def bench(ctx):
        ctx.set(dut.en, 1)
        got = []
        for k in range(len(pairs) + MUL_STAGES):
            if k < len(pairs):
                ctx.set(dut.a, pairs[k][0])
                ctx.set(dut.b, pairs[k][1])
            await ctx.tick()
            if k + 1 >= MUL_STAGES:
                got.append(ctx.get(dut.p))
        assert got[:len(pairs)] == [a * b for a, b in pairs]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
