"""The variable-depth engine's word FIFO and column finder: memory beats in, one column of
the variable-depth stream a cycle out (hw/ENGINE.md "Variable-depth stream").

Memory beats (``i``, ``tritforge.ports.mem_port``: ``mem_bytes`` = P bytes, the first
``count`` valid) are kept whole, one per *slot* of a circular buffer of
``HwConfig.window_words`` = N slots; a beat of ``count = 0`` carries nothing and is
dropped, a beat of fewer than P bytes ends a job's stream (its bytes from ``count`` on are
*pad*, never a column). Nothing is shifted: a column is found by its slot and byte offset.

Every byte offset of a beat may start a column, and where that column ends follows from its
header alone (its R depth trits, ``codec.layout.var_column_bytes``). So for every offset o
of every beat the finder computes, before the column is wanted, an *entry*: the offset
``(o + L) mod P`` where the next column starts, the beats it advances ``(o + L) div P`` and
the beat holding its last byte ``(o + L - 1) div P`` (L the column's bytes). The take loop is
then one lookup a cycle: the entry at the current (slot, offset) says whether the column is
complete (its last beat is in the buffer), and gives the next position. A pad offset's entry
says "start again at the next beat's byte 0".

A beat accepted in cycle x, in registers:

1. x: the beat into the input pipeline, a slot allocated to it;
2. x + 1: its bytes decoded into base-3 digits and an invalid flag (``SLOT_BITS`` a byte;
   an invalid byte's digits are zero trits);
3. x + 2: the decoded beat into its slot; the depth sums of the columns that start at its
   first ``P - h + 1`` offsets and at the previous beat's last ``h - 1`` (h = header bytes:
   their headers end in this beat);
4. x + 3: their entries written (this beat's pad entries too), the beat marked present;

so a column whose last beat is accepted in x can be taken from x + 4
(``GEARBOX_TAKE_CYCLES``). ``take`` is high in a cycle the loop takes a column (complete and
``room``); the column's decoded beats (``span`` of them from its first, read from the
slots' memory) and where it lies in them are registered, so ``col_valid`` and ``words``,
``offset``, ``length`` and ``cross`` (the column runs past a partial beat's end: its bytes
there are pad) show it the cycle after.
The beats before the next column's are freed in the take's edge; ``i.ready`` is high while
a slot is free (from registers).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import GEARBOX_TAKE_CYCLES, HwConfig
from .checks import check_config
from .decoder import byte_digits, byte_invalid
from .signature import payload_shape
from ..ports import mem_port


#: bits of one decoded byte in a slot: five 2-bit base-3 digits (an invalid byte's read as
#: zero trits) and the invalid flag
SLOT_BITS = 2 * layout.TRITS_PER_BYTE + 1


def column_lengths(cfg: HwConfig) -> list[int]:
    """A column's bytes by the sum of its R depths (0..R*D): ``layout.var_column_bytes``
    depends on the sum only."""
    sums = np.zeros((cfg.rows * cfg.depth + 1, cfg.rows), dtype=np.int64)
    sums[:, 0] = np.arange(cfg.rows * cfg.depth + 1)
    return layout.var_column_bytes(sums).tolist()


def depth_digit(digits, header_trit: int):
    """The digit of a header's trit ``header_trit``, its header starting at byte 0 of the
    per-byte digit lists ``digits``."""
    b, pos = divmod(header_trit, layout.TRITS_PER_BYTE)
    return digits[b][pos]


def clipped_depth(digit, depth: int):
    """A group's depth k = D - 2 + digit, read as 0 below (a depth outside the base depth's
    range is flagged by the gearbox, not here)."""
    return Mux(digit + depth >= 2, (digit + depth - 2).as_unsigned(), 0)


class ColumnFinder(wiring.Component):
    """Ports: ``i`` (memory beats), ``room`` (a column may be taken), ``take``,
    ``col_valid`` with ``words``, ``offset``, ``length``, ``cross`` (module docstring)."""

    #: registers from a beat accepted to its entries read by the take loop
    TAKE_CYCLES = 4

    def __new__(cls, cfg: HwConfig):
        check_config("ColumnFinder", cfg)
        if not cfg.variable:
            raise ValueError(f"ColumnFinder cfg.weight_stream must be 'variable', not "
                             f"{cfg.weight_stream!r}")
        if cls.TAKE_CYCLES != GEARBOX_TAKE_CYCLES:
            raise AssertionError(f"a column is taken {cls.TAKE_CYCLES} cycles after its beat, "
                                 f"but GEARBOX_TAKE_CYCLES = {GEARBOX_TAKE_CYCLES}")
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.P, self.N, self.span = cfg.mem_bytes, cfg.window_words, cfg.column_span
        self.head = layout.var_header_bytes(cfg.rows)
        self.lengths = column_lengths(cfg)
        self.adv_max = (self.P - 1 + max(self.lengths)) // self.P
        #: an entry's fields: next offset, beats advanced, beat of the last byte
        self.field_shapes = (Shape.cast(range(self.P)), Shape.cast(range(self.adv_max + 1)),
                             Shape.cast(range(self.span)))
        super().__init__({"i": In(stream.Signature(payload_shape(mem_port(cfg)))), "room": In(1),
                          "take": Out(1), "col_valid": Out(1),
                          "words": Out(SLOT_BITS * self.P * self.span), "offset": Out(range(self.P)),
                          "length": Out(range(max(self.lengths) + 1)), "cross": Out(1)})

    def _fields(self, value):
        """An entry's fields (``field_shapes``), sliced from a packed ``value``."""
        out, at = [], 0
        for shape in self.field_shapes:
            out.append(value[at:at + shape.width])
            at += shape.width
        return out

    def _rom(self, m, o: int, s, name: str):
        """(next offset, beats advanced, beat of the last byte) of a column at byte offset
        o whose depths sum to ``s``: a constant table per offset."""
        P = self.P
        nxt, adv, last = (Signal(shape, name=f"{name}_{field}")
                          for shape, field in zip(self.field_shapes, ("next", "adv", "last")))
        with m.Switch(s):                    # the largest sum as the default
            for v, n in enumerate(self.lengths):
                with m.Case(v) if v < len(self.lengths) - 1 else m.Default():
                    m.d.comb += [nxt.eq((o + n) % P), adv.eq((o + n) // P), last.eq((o + n - 1) // P)]
        return nxt, adv, last

    def elaborate(self, platform):
        cfg, P, N, h = self.cfg, self.P, self.N, self.head
        R, D = cfg.rows, cfg.depth
        A = N.bit_length() - 1
        m = Module()

        # --- the slots (decoded beats with their count) and the entry table -----------
        count_bits = (P + 1).bit_length()
        m.submodules.slots = slots = Memory(shape=unsigned(SLOT_BITS * P + count_bits), depth=N, init=[])
        slot_w = slots.write_port()
        slot_r = [slots.read_port() for _ in range(self.span)]
        # per offset o, a memory of every slot's entry at o (LUT RAM: written by one beat a
        # cycle, read at the take loop's slot); its valid and pad flags in flip-flops
        entry_shape = unsigned(sum(shape.width for shape in self.field_shapes))
        ent_mem = []
        for o in range(P):
            mem = Memory(shape=entry_shape, depth=N, init=[])
            m.submodules[f"entries{o}"] = mem
            ent_mem.append((mem.write_port(), mem.read_port(domain="comb")))
        ent_pad = [Signal(P, name=f"e{s}_pad") for s in range(N)]
        ent_valid = [Signal(P, name=f"e{s}_valid") for s in range(N)]

        wr = Signal(A + 1)
        rd = Signal(A + 1)
        m.d.comb += self.i.ready.eq((wr - rd)[:A + 1] != N)
        accept = self.i.valid & self.i.ready & (self.i.payload.count != 0)
        # a slot's entries are invalidated when it is allocated to a new beat: the previous
        # beat's tail entries are written 3 cycles after the next beat's accept, and a slot
        # freed before that is allocated again only N - 1 > 3 accepts later
        with m.If(accept):
            m.d.sync += wr.eq(wr + 1)
            for s in range(N):
                with m.If(wr[:A] == s):
                    m.d.sync += ent_valid[s].eq(0)

        # --- input pipeline: 1 the beat, 2 its digits, 3 the depth sums -----------------
        v1, raw, n1, s1 = Signal(), Signal(8 * P), Signal(range(P + 1)), Signal(A)
        m.d.sync += [v1.eq(accept), raw.eq(self.i.payload.data), n1.eq(self.i.payload.count),
                     s1.eq(wr[:A])]
        v2, n2, s2 = Signal(), Signal(range(P + 1)), Signal(A)
        digits2 = [[Signal(2, name=f"d2_{b}_{p}") for p in range(layout.TRITS_PER_BYTE)] for b in range(P)]
        invalid2 = Signal(P)
        for b in range(P):
            byte = raw[8 * b:8 * b + 8]
            m.d.sync += [d.eq(v) for d, v in zip(digits2[b], byte_digits(m, byte, f"in{b}"))]
            m.d.sync += invalid2[b].eq(byte_invalid(byte))
        m.d.sync += [v2.eq(v1), n2.eq(n1), s2.eq(s1)]
        # the decoded beat into its slot, read from 2 cycles later
        m.d.comb += [slot_w.en.eq(v2), slot_w.addr.eq(s2),
                     slot_w.data.eq(Cat(*(Cat(*digits2[b], invalid2[b]) for b in range(P)), n2))]
        # the previous beat's last h - 1 bytes, its slot and count
        tail = [[Signal(2, name=f"tail{b}_{p}") for p in range(layout.TRITS_PER_BYTE)] for b in range(h - 1)]
        have_prev, prev_slot, prev_n = Signal(), Signal(A), Signal(range(P + 1))
        ext = tail + digits2                     # offset e of ext: tail offset or this beat's
        sums3 = []
        for e in range(P):
            k = [clipped_depth(depth_digit(ext[e:], layout.VAR_HEADER_TRITS * r), D) for r in range(R)]
            s = Signal(range(R * D + 1), name=f"sum{e}")
            m.d.sync += s.eq(sum(k))
            sums3.append(s)
        v3, n3, s3 = Signal(), Signal(range(P + 1)), Signal(A)
        prev3, prev_slot3, prev_n3 = Signal(), Signal(A), Signal(range(P + 1))
        m.d.sync += [v3.eq(v2), n3.eq(n2), s3.eq(s2), prev3.eq(have_prev), prev_slot3.eq(prev_slot),
                     prev_n3.eq(prev_n)]
        with m.If(v2):
            m.d.sync += [have_prev.eq(1), prev_slot.eq(s2), prev_n.eq(n2)]
            m.d.sync += [t.eq(d) for tb, db in zip(tail, digits2[P - h + 1:]) for t, d in zip(tb, db)]

        # --- the take loop ------------------------------------------------------------
        # (rd, pos): the next column's slot and byte offset; ``avail``: the beats present
        # from slot rd on (the present ones are rd, rd + 1, ...: marked in accept order,
        # freed from rd)
        pos = Signal(range(P))
        avail = Signal(range(N + 1))
        more = Signal(self.span)                 # more[k]: avail > k, registered
        for w, r in ent_mem:
            m.d.comb += r.addr.eq(rd[:A])
        sel_next, sel_adv, sel_last = self._fields(Array(r.data for _, r in ent_mem)[pos])
        sel_valid = Array(ent_valid)[rd[:A]].bit_select(pos, 1)
        sel_pad = Array(ent_pad)[rd[:A]].bit_select(pos, 1)
        complete, move, gone = Signal(), Signal(), Signal(range(self.adv_max + 1))
        m.d.comb += [complete.eq(sel_valid & (sel_pad | more.bit_select(sel_last, 1))),
                     self.take.eq(complete & ~sel_pad & self.room),
                     move.eq(complete & (sel_pad | self.room)),
                     gone.eq(Mux(move, Mux(sel_pad, 1, sel_adv), 0))]
        # the next state for each number of beats the loop may leave, selected by ``gone``
        with m.Switch(gone):
            for g in range(self.adv_max + 1):
                with m.Case(g) if g < self.adv_max else m.Default():
                    after = avail + v3 - g
                    m.d.sync += [rd.eq(rd + g), avail.eq(after),
                                 more.eq(Cat(after > k for k in range(self.span)))]
        with m.If(move):
            m.d.sync += pos.eq(Mux(sel_pad, 0, sel_next))

        # --- entries written: this beat's head and pad offsets, the previous beat's tail --
        # ext offset e holds the previous beat's tail offset P - h + 1 + e (e < h - 1) or
        # this beat's offset e - h + 1; one table lookup each
        rom = [self._rom(m, e - h + 1 if e >= h - 1 else P - h + 1 + e, sums3[e], f"rom{e}")
               for e in range(P)]
        for o, (w, _) in enumerate(ent_mem):
            if o + h - 1 < P:                    # a head offset: its column's header is here
                m.d.comb += [w.en.eq(v3 & (o < n3)), w.addr.eq(s3), w.data.eq(Cat(*rom[o + h - 1]))]
            else:                                # a tail offset: its header ends in the next beat
                m.d.comb += [w.en.eq(v3 & prev3 & (o < prev_n3)), w.addr.eq(prev_slot3),
                             w.data.eq(Cat(*rom[o - (P - h + 1)]))]
        for s in range(N):
            here = v3 & (s3 == s)
            back = v3 & prev3 & (prev_slot3 == s)
            for o in range(P):
                # a head offset's entry (or a pad entry) is this beat's, a tail offset's is
                # written with the next beat
                now = here if o + h - 1 < P else here & (o >= n3) | back & (o < prev_n3)
                with m.If(now):
                    m.d.sync += ent_valid[s][o].eq(1)
                with m.If(here):
                    m.d.sync += ent_pad[s][o].eq(o >= n3)

        # --- the taken column: its beats and where it lies in them ---------------------
        # read every cycle (no enable from the loop), shown while ``col_valid``
        off, adv1, last1, next1 = Signal(range(P)), Signal.like(sel_adv), Signal.like(sel_last), Signal(range(P))
        m.d.comb += [r.addr.eq((rd[:A] + k)[:A]) for k, r in enumerate(slot_r)]
        m.d.sync += [self.col_valid.eq(self.take), off.eq(pos), adv1.eq(sel_adv), last1.eq(sel_last),
                     next1.eq(sel_next)]
        words = Cat(r.data[:SLOT_BITS * P] for r in slot_r)
        counts = [r.data[SLOT_BITS * P:] for r in slot_r]
        # the column ends at byte ``end`` of its last beat: P when the next starts a new beat
        end = Mux(adv1 > last1, P, next1)
        m.d.comb += [self.words.eq(words), self.offset.eq(off),
                     self.length.eq(adv1 * P + next1 - off),
                     self.cross.eq(Cat(*((counts[k] != P) & (last1 > k) for k in range(self.span - 1)),
                                       *((counts[k] < end) & (last1 == k) for k in range(self.span))).any())]
        return m
