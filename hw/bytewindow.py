"""The variable-depth engine's byte FIFO, kept as a window of decoded bytes whose oldest
byte is always slot 0.

The memory's beats (``i``: up to ``in_bytes`` bytes, the first ``count`` of them valid) go
through two registers (the beat as it came, then every byte decoded into its five base-3
digits and its invalid flag, ``decoder.byte_digits``) and are placed behind the bytes
held; ``pop`` removes the first ``lengths[pop_index]`` slots in the same edge (a column
taken by the gearbox), so the next column starts at slot 0 again and its header is read
from fixed slots (hw/ENGINE.md "Variable-depth stream"). A byte accepted on ``i`` in cycle
x is in the window from cycle x + 3 (``WINDOW_CYCLES``).

``slots`` shows the first ``window_slots`` slots (``SLOT_BITS`` each: digit m of the byte in
bits 2m..2m+1, the invalid flag in bit 10), ``fill`` how many are held, ``avail`` how many
were already held in the cycle before (the bytes the gearbox may take: a column's header is
read one cycle before the column is taken). Slots at and above ``fill`` are zero.

Timing: the new bytes are placed by a one-hot register of ``fill`` (an AND-OR per slot),
then the window is shifted by the popped length (one of ``len(lengths) + 1`` wirings,
selected by ``pop`` and ``pop_index``): no shifter from a computed amount in the loop.
``i.ready`` is high while the window and the two registers hold at most ``capacity -
in_bytes`` bytes, from registers only.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from .checks import check_int
from .decoder import byte_digits, byte_invalid

#: bits of one window slot: five 2-bit digits and the invalid flag
SLOT_BITS = 2 * layout.TRITS_PER_BYTE + 1
#: cycles from a byte accepted on ``i`` to its slot in the window
WINDOW_CYCLES = 3


def mem_layout(in_bytes: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(8 * in_bytes),
                              "count": unsigned(max(1, in_bytes.bit_length()))})


class ByteWindow(wiring.Component):
    """Ports: ``i`` (memory beats ``{data, count}``), ``pop`` and ``pop_index`` (into
    ``lengths``; at most ``avail`` slots), ``slots`` (the first ``window_slots`` slots),
    ``fill``, ``avail``."""

    def __new__(cls, in_bytes: int, window_slots: int, capacity: int, lengths):
        check_int("ByteWindow", "in_bytes", in_bytes, 1)
        check_int("ByteWindow", "window_slots", window_slots, 1)
        check_int("ByteWindow", "capacity", capacity, window_slots + in_bytes - 1)
        lengths = tuple(lengths)
        if not lengths or any(not isinstance(n, int) or not 1 <= n <= window_slots for n in lengths):
            raise ValueError(f"ByteWindow lengths must be integers 1..{window_slots}, not {lengths!r}")
        return super().__new__(cls)

    def __init__(self, in_bytes: int, window_slots: int, capacity: int, lengths):
        self.in_bytes, self.window_slots, self.capacity = in_bytes, window_slots, capacity
        self.lengths = tuple(lengths)
        super().__init__({"i": In(stream.Signature(mem_layout(in_bytes))),
                          "pop": In(1), "pop_index": In(range(len(self.lengths))),
                          "slots": Out(SLOT_BITS * window_slots),
                          "fill": Out(range(capacity + 1)), "avail": Out(range(capacity + 1))})

    def elaborate(self, platform):
        C, W, S = self.capacity, self.in_bytes, SLOT_BITS
        m = Module()
        # two input registers: the beat, then its bytes decoded
        raw = Signal(8 * W)
        n1 = Signal(range(W + 1))
        dec = Signal(S * W)
        n2 = Signal(range(W + 1))
        m.d.comb += self.i.ready.eq(self.fill + n1 + n2 <= C - W)
        take = self.i.valid & self.i.ready
        m.d.sync += [raw.eq(self.i.payload.data), n1.eq(Mux(take, self.i.payload.count, 0))]
        slots = []
        for b in range(W):
            byte = raw[8 * b:8 * b + 8]
            digits = byte_digits(m, byte, f"in{b}")
            valid = n1 > b
            slots.append(Mux(valid, Cat(*(d[:2] for d in digits), byte_invalid(byte)), 0))
        m.d.sync += [dec.eq(Cat(*slots)), n2.eq(n1)]
        # the window: the new slots placed at ``fill`` (one-hot), then the popped length
        buf = Signal(S * C)
        at = Signal(C + 1, init=1)              # one-hot of fill
        placed = []
        for i in range(C):
            terms = [Mux(at[i - j], dec[S * j:S * (j + 1)], 0) for j in range(W) if i - j >= 0]
            placed.append(buf[S * i:S * (i + 1)] | (_or(terms) if terms else 0))
        merged = Cat(*placed)
        at_in = Signal(C + 1)
        with m.Switch(n2):                      # n2 <= W: the last count as the default
            for n in range(W + 1):
                with m.Case(n) if n < W else m.Default():
                    m.d.comb += at_in.eq(at << n)
        kept = Signal(S * C)
        at_next = Signal(C + 1)
        gone = Signal(range(max(self.lengths) + 1))
        m.d.comb += [kept.eq(merged), at_next.eq(at_in), gone.eq(0)]
        with m.If(self.pop):
            with m.Switch(self.pop_index):
                for k, n in enumerate(self.lengths):
                    with m.Case(k) if k < len(self.lengths) - 1 else m.Default():
                        m.d.comb += [kept.eq(merged >> (S * n)), at_next.eq(at_in >> n), gone.eq(n)]
        m.d.sync += [buf.eq(kept), at.eq(at_next), self.fill.eq(self.fill + n2 - gone),
                     self.avail.eq(self.fill - gone)]
        m.d.comb += self.slots.eq(buf[:S * self.window_slots])
        return m


def _or(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
