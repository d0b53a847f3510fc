"""The variable-depth engine's byte FIFO, kept as a window: its oldest byte is always byte 0.

The memory's beats (``i``: up to ``in_bytes`` bytes, the first ``count`` of them valid)
append behind the bytes held; ``pop`` removes the first ``pop_bytes`` bytes in the same
edge (a column taken by the gearbox), so the next column starts at byte 0 again and its
header is read from fixed positions (hw/ENGINE.md "Variable-depth stream"). ``window``
shows the first ``window_bytes`` bytes, ``fill`` how many bytes are held; bytes at and
above ``fill`` are zero (the shift brings in zeros and only valid bytes are placed).

``i.ready`` is high while at most ``capacity - in_bytes`` bytes are held, a function of
the registers only: a beat always fits, whatever its ``count`` and whatever is popped.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int


def mem_layout(in_bytes: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(8 * in_bytes),
                              "count": unsigned(max(1, in_bytes.bit_length()))})


class ByteWindow(wiring.Component):
    """Ports: ``i`` (memory beats ``{data, count}``), ``pop`` and ``pop_bytes`` (at most
    ``fill``), ``window`` (the first ``window_bytes`` bytes), ``fill``."""

    def __new__(cls, in_bytes: int, window_bytes: int, capacity: int):
        check_int("ByteWindow", "in_bytes", in_bytes, 1)
        check_int("ByteWindow", "window_bytes", window_bytes, 1)
        check_int("ByteWindow", "capacity", capacity, window_bytes + in_bytes - 1)
        return super().__new__(cls)

    def __init__(self, in_bytes: int, window_bytes: int, capacity: int):
        self.in_bytes, self.window_bytes, self.capacity = in_bytes, window_bytes, capacity
        super().__init__({"i": In(stream.Signature(mem_layout(in_bytes))),
                          "pop": In(1), "pop_bytes": In(range(window_bytes + 1)),
                          "window": Out(8 * window_bytes), "fill": Out(range(capacity + 1))})

    def elaborate(self, platform):
        C, W = self.capacity, self.in_bytes
        m = Module()
        buf = Signal(8 * C)
        m.d.comb += [self.window.eq(buf[:8 * self.window_bytes]),
                     self.i.ready.eq(self.fill <= C - W)]
        gone = Signal(range(self.window_bytes + 1))
        m.d.comb += gone.eq(Mux(self.pop, self.pop_bytes, 0))
        base = Signal(range(C + 1))
        m.d.comb += base.eq(self.fill - gone)
        take = self.i.valid & self.i.ready
        count = Signal.like(self.i.payload.count)
        m.d.comb += count.eq(Mux(take, self.i.payload.count, 0))
        beat = Signal(8 * W)
        m.d.comb += beat.eq(Cat(Mux(b < count, self.i.payload.data[8 * b:8 * b + 8], 0)
                                for b in range(W)))
        kept = buf >> Cat(Const(0, 3), gone)
        placed = beat << Cat(Const(0, 3), base)
        m.d.sync += [buf.eq(kept | placed[:8 * C]), self.fill.eq(base + count)]
        return m
