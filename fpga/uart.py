"""UART transmitter and receiver (8 data bits, no parity, one stop bit, LSB first).

No UART library is installed with tritforge (amaranth-stdio is not on PyPI in a version
that matches Amaranth 0.5), so the board tops use these two small components.

Both take ``divisor``: clock cycles per bit (clock / baud), at least 4. Bytes move as
``amaranth.lib.stream`` payloads of 8 bits.

* :class:`UartTx` — ``data`` stream in (ready while idle), ``tx`` line out (idle high).
* :class:`UartRx` — ``rx`` line in (synchronised by two flip-flops), ``data`` stream out.
  A UART cannot be back-pressured: a received byte waits in the output register until
  taken; if the next byte completes first it replaces the old one and ``overrun`` pulses
  for one cycle. A stop bit that is not high drops the byte and pulses ``frame_error``.
  The receiver samples in the middle of each bit, so with a divisor of 4 or more it
  tolerates the usual +-2 % baud mismatch.
"""
from __future__ import annotations

import operator

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError

MIN_DIVISOR = 4


def check_divisor(divisor) -> int:
    try:
        d = operator.index(divisor)
    except TypeError:
        raise TritforgeError(f"UART divisor {divisor!r}: expected an integer") from None
    if d < MIN_DIVISOR:
        raise TritforgeError(f"UART divisor {d}: expected at least {MIN_DIVISOR} clock cycles per bit")
    return d


def divisor_for(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz``; refuses more than 2 % baud error."""
    if baud <= 0:
        raise TritforgeError(f"baud rate {baud}: expected a positive number")
    d = round(clock_hz / baud)
    if d < MIN_DIVISOR:
        raise TritforgeError(f"baud rate {baud}: too fast for a {clock_hz / 1e6:g} MHz clock "
                             f"(at most {int(clock_hz // MIN_DIVISOR)})")
    err = abs(clock_hz / d / baud - 1)
    if err > 0.02:
        raise TritforgeError(f"baud rate {baud}: {clock_hz / 1e6:g} MHz / {d} is {err:.1%} off (> 2 %)")
    return d


class UartTx(wiring.Component):
    """Byte stream in, serial line out."""

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        # start bit, 8 data bits, stop bit, shifted out LSB first; ones shift in behind
        # them, so the line (bit 0 of a register: no glitches) idles high.
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))

        m.d.comb += [self.tx.eq(shreg[0]), self.data.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.data.valid):
                m.d.sync += [shreg.eq((1 << 9) | (self.data.payload << 1)),
                             bits.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [timer.eq(self.divisor - 1), bits.eq(bits - 1),
                         shreg.eq((1 << 9) | (shreg >> 1))]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """Serial line in, byte stream out."""

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)),
                          "overrun": Out(1), "frame_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bits = Signal(range(11))     # 0: idle; 10: start bit; 9..2: data bits; 1: stop bit
        shreg = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.overrun.eq(0), self.frame_error.eq(0)]

        with m.If(bits == 0):
            with m.If(~rx):                                    # falling edge: start bit
                m.d.sync += [bits.eq(10), timer.eq(self.divisor // 2 - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += timer.eq(self.divisor - 1)
            with m.If(bits == 10):                             # middle of the start bit
                with m.If(rx):
                    m.d.sync += bits.eq(0)                     # glitch: back to idle
                with m.Else():
                    m.d.sync += bits.eq(bits - 1)
            with m.Elif(bits >= 2):                            # data bits, LSB first
                m.d.sync += [shreg.eq((rx << 7) | (shreg >> 1)), bits.eq(bits - 1)]
            with m.Else():                                     # middle of the stop bit
                m.d.sync += bits.eq(0)
                with m.If(rx):
                    m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                    m.d.sync += self.overrun.eq(self.data.valid & ~self.data.ready)
                with m.Else():
                    m.d.sync += self.frame_error.eq(1)
        return m
