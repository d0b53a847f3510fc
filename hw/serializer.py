"""Beats of ``count`` elements -> one element per beat: the GEMV engine's result beats (R
row accumulators) into the requantizer, the attention unit's output beats into the vector
memory.

``i`` {items}: ``count`` signed elements; ``o`` {x}: item 0, 1, ... of each beat in turn.
``limit`` (held by the user from ``start`` on) is the number of elements a job passes:
elements past it are dropped (the padded rows of the engine's last tile). ``start`` (one
cycle) begins a job. Combinational: ``o`` shows the current item of the beat on ``i``, and
``i.ready`` is high when the beat's last item is taken (or dropped).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .indexing import pick
from .checks import check_int


class Serializer(wiring.Component):
    """Ports: ``i`` {items}; ``o`` {x}; ``limit``, ``start``."""

    def __new__(cls, width: int, count: int, max_limit: int):
        check_int("Serializer", "width", width, 1)
        check_int("Serializer", "count", count, 1)
        check_int("Serializer", "max_limit", max_limit, 1)
        return super().__new__(cls)

    def __init__(self, width: int, count: int, max_limit: int):
        self.count = count
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"items": data.ArrayLayout(signed(width), count)}))),
            "o": Out(stream.Signature(data.StructLayout({"x": signed(width)}))),
            "limit": In(range(max_limit + 1)), "start": In(1),
        })
        self.max_limit = max_limit

    def elaborate(self, platform):
        m = Module()
        idx = Signal(range(self.count))
        total = Signal(range(self.max_limit + 1))
        keep = Signal()
        take = Signal()
        m.d.comb += [keep.eq(total < self.limit),
                     self.o.valid.eq(self.i.valid & keep),
                     self.o.payload.x.eq(pick([self.i.payload.items[k] for k in range(self.count)], idx)),
                     take.eq(self.i.valid & (self.o.ready | ~keep)),
                     self.i.ready.eq(take & (idx == self.count - 1))]
        with m.If(take):
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == self.count - 1):
                m.d.sync += idx.eq(0)
            with m.If(keep):
                m.d.sync += total.eq(total + 1)
        with m.If(self.start):
            m.d.sync += [idx.eq(0), total.eq(0)]
        return m
