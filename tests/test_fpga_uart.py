"""UART transmitter and receiver in the Amaranth simulator: loopback, framing and overrun."""
import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from tritforge.errors import TritforgeError
from tritforge.fpga.uart import UartRx, UartTx, check_divisor, divisor_for


class Loop(wiring.Component):
    """UartTx -> line -> UartRx; the testbench can also drive the line itself."""
    force: In(1)
    line: In(1, init=1)

    def __init__(self, divisor):
        self.tx = UartTx(divisor)
        self.rx = UartRx(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx & (self.line | ~self.force))
        return m


@pytest.mark.parametrize("divisor", [4, 5, 8])
def test_loopback_random_bytes_with_stalls(divisor):
    rng = random.Random(divisor)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(24)]
    dut = Loop(divisor)
    got = []

    async def send(ctx):
        for b in data:
            ctx.set(dut.tx.data.payload, b)
            ctx.set(dut.tx.data.valid, 1)
            await ctx.tick().until(dut.tx.data.ready)
            ctx.set(dut.tx.data.valid, 0)
            await ctx.tick().repeat(1 + rng.randrange(3))   # idle gaps between bytes

    async def receive(ctx):
        while len(got) < len(data):
            ctx.set(dut.rx.data.ready, rng.random() < 0.5)   # the reader stalls too
            if ctx.get(dut.rx.data.valid) and ctx.get(dut.rx.data.ready):
                got.append(ctx.get(dut.rx.data.payload))
            await ctx.tick()
            assert not ctx.get(dut.rx.overrun) and not ctx.get(dut.rx.frame_error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run()
    assert got == data


def _drive_byte(ctx, line, byte, divisor, stop=1):
    async def go():
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
            ctx.set(line, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(line, 1)
    return go()


def test_frame_error_and_overrun_are_flagged():
    div = 4
    dut = Loop(div)
    seen = {"frame_error": 0, "overrun": 0, "bytes": []}

    async def bench(ctx):
        ctx.set(dut.force, 1)
        await _drive_byte(ctx, dut.line, 0x3C, div, stop=0)       # bad stop bit
        await ctx.tick().repeat(3 * div)
        ctx.set(dut.rx.data.ready, 0)                              # nobody reads:
        await _drive_byte(ctx, dut.line, 0x11, div)                # the first byte waits,
        await _drive_byte(ctx, dut.line, 0x22, div)                # the second overruns it
        await ctx.tick().repeat(2 * div)

    async def watch(ctx):
        while True:
            await ctx.tick()
            seen["frame_error"] += ctx.get(dut.rx.frame_error)
            seen["overrun"] += ctx.get(dut.rx.overrun)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert seen["frame_error"] == 1
    assert seen["overrun"] == 1


def test_divisor_checks():
    assert divisor_for(12e6, 3_000_000) == 4
    assert divisor_for(25e6, 115200) == 217
    with pytest.raises(TritforgeError, match="too fast"):
        divisor_for(12e6, 6_000_000)
    with pytest.raises(TritforgeError, match="off"):
        divisor_for(12e6, 2_500_000)   # 12/5 = 2.4 MBd: 4 % off
    with pytest.raises(TritforgeError, match="at least 4"):
        check_divisor(3)
