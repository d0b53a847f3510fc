"""Stream buffers whose input's ready is a flip-flop, so that a consumer's ready never
reaches the producer in the same cycle: the chains of handshakes through several units (a
requantizer whose stages advance with its output's ready, a serializer whose input's ready
is its output's) end at the buffer's ``full`` flag. Ports of both: ``i``, ``o``, streams of
one shape (a shape or a layout).

``SkidBuffer``: one entry, no cycle of latency. ``o`` shows the buffered element, else the
one on ``i`` (``o.valid`` = buffer full or ``i.valid``). A beat offered while ``o`` is not
ready is taken into the buffer; the buffer drains the next cycle ``o`` is ready, while
``i`` waits that one cycle. So the consumer sees every element in the same cycle as
without the buffer; at full rate the buffer stays empty. Of the buffer only ``full``
depends on ``o.ready``.

``RegisterSlice``: ``o``, its valid and ``i.ready`` all flip-flops, so neither the payload's
nor the handshake's logic runs through it; one cycle of latency. ``o`` is loaded whenever
it is empty or being taken; a second entry (the skid) takes the beat offered in a cycle
whose output is held, and the input waits while it is full. At full rate the slice passes
a beat per cycle and the skid stays empty; under back-pressure it holds two beats.
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class _StreamBuffer(wiring.Component):
    def __new__(cls, shape):
        Shape.cast(shape)            # a ``TypeError`` for anything that is not a shape
        return super().__new__(cls)

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})


class SkidBuffer(_StreamBuffer):
    """One entry beside the wire: ``i.ready`` a register, no latency."""

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


class RegisterSlice(_StreamBuffer):
    """A register stage with its skid: ``o`` and ``i.ready`` registers, one cycle."""

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.i.payload.shape())
        out, skid = Signal(width), Signal(width)
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full), self.o.payload.eq(out)]
        # the skid takes the input's payload in every cycle it is empty (its enable is
        # ``full`` alone); it holds the beat taken while the output was held
        with m.If(~full):
            m.d.sync += skid.eq(self.i.payload)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(full):
                m.d.sync += [out.eq(skid), full.eq(0)]
            with m.Else():
                m.d.sync += [out.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~full):
            m.d.sync += full.eq(1)
        return m
