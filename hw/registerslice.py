"""A stream through a register slice: the output, its valid and the input's ready are all
flip-flops, so neither the payload's nor the handshake's logic runs through it.

``o`` is a register (one cycle of latency) loaded whenever it is empty or being taken;
``i.ready`` is a register too: a second entry (the skid) takes the beat offered in a cycle
whose output is held, and the input waits while it is full. At full rate the slice passes
a beat per cycle and the skid stays empty; under back-pressure it holds two beats.
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class RegisterSlice(wiring.Component):
    """Ports: ``i``, ``o``: streams of ``shape`` (a shape or a layout); ``o`` in the cycle
    after ``i`` at full rate."""

    def __new__(cls, shape):
        Shape.cast(shape)            # a ``TypeError`` for anything that is not a shape
        return super().__new__(cls)

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

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
