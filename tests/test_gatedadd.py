"""hw/gatedadd.py: the generic gated add in the Amaranth simulator, and the ECP5 CCU2C chain
proved equal to it by Yosys's SAT solver over every input, with the CCU2C's behaviour taken
from Yosys's own simulation model (share/ecp5/cells_sim.v), not from our Verilator model
(tests/ecp5_models.py), which the cocotb ECP5-primitive engine test uses."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal, signed
from amaranth.sim import Simulator

import ecp5_models
from tritforge.errors import TritforgeError
from tritforge.hw.gatedadd import gated_add


class _Pair(Elaboratable):
    """Both sets side by side: ``ok`` = the ECP5 sum equals the generic one."""

    def __init__(self, wa, wb, width, cin, primitives=("generic",)):
        self.a, self.b = Signal(signed(wa)), Signal(signed(wb))
        self.gate, self.cin = Signal(), Signal() if cin else None
        self.width, self.prims = width, primitives
        self.outs = {p: Signal(width, name=f"out_{p}") for p in primitives}
        self.ok = Signal()

    def elaborate(self, platform):
        m = Module()
        for p in self.prims:
            s = gated_add(m, f"sum_{p}", self.a, self.gate, self.b, self.width, cin=self.cin,
                          primitives=p)
            m.d.comb += self.outs[p].eq(s)
        if len(self.prims) == 2:
            m.d.comb += self.ok.eq(self.outs["generic"] == self.outs["ecp5"])
        return m


@pytest.mark.parametrize("cin", [False, True])
def test_generic_gated_add(cin):
    dut = _Pair(9, 6, 10, cin)
    rng = random.Random(5)

    async def bench(ctx):
        for _ in range(400):
            a, b = rng.randrange(-256, 256), rng.randrange(-32, 32)
            g, c = rng.randrange(2), rng.randrange(2)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.gate, g)
            if cin:
                ctx.set(dut.cin, c)
            want = ((0 if g else a) + b + (c if cin and not g else 0)) % 2 ** 10
            assert ctx.get(dut.outs["generic"]) == want, (a, b, g, c)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("wa,wb,width,cin", [(25, 25, 26, False), (25, 14, 25, True),
                                             (6, 3, 7, True), (5, 5, 5, False)])
def test_ecp5_chain_equals_generic(tmp_path, wa, wb, width, cin):
    dut = _Pair(wa, wb, width, cin, primitives=("generic", "ecp5"))
    ports = [dut.a, dut.b, dut.gate, dut.ok] + ([dut.cin] if cin else [])
    ecp5_models.prove_ok_with_ccu2c(tmp_path, dut, ports)


def test_gated_add_refuses_unknown_primitives():
    with pytest.raises(TritforgeError, match="primitives 'xilinx'"):
        gated_add(Module(), "s", Signal(4), Signal(), Signal(4), 4, primitives="xilinx")
