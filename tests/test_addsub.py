"""hw/addsub.py: the generic add/sub in the Amaranth simulator, and the ECP5 CCU2C chain
proved equal to it by Yosys's SAT solver over every input, with the CCU2C's behaviour taken
from Yosys's own simulation model (share/ecp5/ccu2c_sim.vh)."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

import ecp5_models
from tritforge.errors import TritforgeError
from tritforge.hw.addsub import add_sub


class _Pair(Elaboratable):
    """Both sets side by side: ``ok`` = the ECP5 result equals the generic one (the
    select's copies all equal)."""

    def __init__(self, wa, wb, width, copies, primitives=("generic",)):
        self.a, self.b, self.neg = Signal(wa), Signal(wb), Signal()
        self.width, self.copies, self.prims = width, copies, primitives
        self.outs = {p: Signal(width, name=f"out_{p}") for p in primitives}
        self.ok = Signal()

    def elaborate(self, platform):
        m = Module()
        for p in self.prims:
            s = add_sub(m, f"s_{p}", self.a, self.b, [self.neg] * self.copies, self.width, primitives=p)
            m.d.comb += self.outs[p].eq(s)
        if len(self.prims) == 2:
            m.d.comb += self.ok.eq(self.outs["generic"] == self.outs["ecp5"])
        return m


def test_generic_add_sub():
    dut = _Pair(10, 9, 11, 3)
    rng = random.Random(3)

    async def bench(ctx):
        for _ in range(400):
            a, b, neg = rng.randrange(1 << 10), rng.randrange(1 << 9), rng.randrange(2)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.neg, neg)
            assert ctx.get(dut.outs["generic"]) == (a + b if neg else a - b) % 2 ** 11, (a, b, neg)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("wa,wb,width,copies", [(32, 31, 32, 4), (9, 8, 9, 1), (6, 6, 7, 2), (5, 3, 4, 4)])
def test_ecp5_chain_equals_generic(tmp_path, wa, wb, width, copies):
    dut = _Pair(wa, wb, width, copies, primitives=("generic", "ecp5"))
    ecp5_models.prove_ok_with_ccu2c(tmp_path, dut, [dut.a, dut.b, dut.neg, dut.ok])


def test_add_sub_refuses_unknown_primitives():
    with pytest.raises(TritforgeError, match="primitives 'xilinx'"):
        add_sub(Module(), "s", Signal(4), Signal(4), [Signal()], 4, primitives="xilinx")
