"""Board top: the engine with its UART host link on a real board (through amaranth-boards).

``BoardTop(hw, baud, primitives)`` requests ``uart`` 0 of the platform (the board's USB serial
bridge), runs everything in the platform's default clock domain (ULX3S: 25 MHz,
iCEBreaker: 12 MHz) and shows ``busy`` on LED 0 and any error (engine ``err`` or link
error) on LED 1. The UART divisor is the platform clock / ``baud`` (checked to within 2 %).
"""
from __future__ import annotations

from amaranth import Elaboratable, Module

from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .linktop import LinkTop
from .uart import divisor_for


class BoardTop(Elaboratable):
    def __init__(self, hw: HwConfig, baud: int, primitives: str = "generic"):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"BoardTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        self.baud = baud
        self.primitives = primitives
        self.divisor = None      # known once the platform (its clock) is

    def elaborate(self, platform):
        if platform is None:
            raise TritforgeError("BoardTop: needs a board platform (amaranth-boards)")
        self.divisor = divisor_for(platform.default_clk_frequency, self.baud)
        m = Module()
        m.submodules.link = top = LinkTop(self.hw, self.divisor, primitives=self.primitives)
        uart = platform.request("uart", 0)
        m.d.comb += [top.rx.eq(uart.rx.i), uart.tx.o.eq(top.tx)]
        leds = [platform.request("led", i) for i in range(2)]
        m.d.comb += [leds[0].o.eq(top.busy), leds[1].o.eq(top.error)]
        return m
