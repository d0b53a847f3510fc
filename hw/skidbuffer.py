"""A stream through a one-entry skid buffer: the consumer's ready stops here.

``i.ready`` is a register (the buffer is empty), so a consumer's ready never reaches the
producer in the same cycle, and of the buffer only the register ``full`` depends on it:
the chains of handshakes through several units (a requantizer whose stages advance with
its output's ready, a serializer whose input's ready is its output's) end at that one
flip-flop. ``o`` shows the buffered element, else the one on ``i`` (``o.valid`` = buffer
full or ``i.valid``): no cycle of latency. A beat offered while ``o`` is not ready is
taken into the buffer; the buffer drains the next cycle ``o`` is ready, while ``i`` waits
that one cycle. So the consumer sees every element in the same cycle as without the
buffer, and the producer is never held longer; at full rate the buffer stays empty.
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """Ports: ``i``, ``o``: streams of ``shape`` (a shape or a layout)."""

    def __new__(cls, shape):
        Shape.cast(shape)            # a ``TypeError`` for anything that is not a shape
        return super().__new__(cls)

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        buf = Signal(Shape.cast(self.i.payload.shape()))
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full | self.i.valid)]
        with m.If(full):
            m.d.comb += self.o.payload.eq(buf)
            with m.If(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Else():
            # the buffer takes ``i``'s payload in every cycle it is empty (its enable is
            # the register ``full`` alone): what it holds once full is the beat it skidded
            m.d.comb += self.o.payload.eq(self.i.payload)
            m.d.sync += buf.eq(self.i.payload)
            with m.If(self.i.valid & ~self.o.ready):
                m.d.sync += full.eq(1)
        return m
