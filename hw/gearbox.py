"""The variable-depth engine's gearbox: column stream bytes in, depth-D beats out.

Reads the variable-depth hardware stream (``codec.layout.var_stream_columns``, hw/ENGINE.md
"Variable-depth stream") from its byte FIFO (``ByteWindow``: bytes decoded into base-3
digits, slot 0 always the next column's first byte) and writes each column as a uniform
depth-D beat (``codec.layout.stream_beats``' layout) with a ``bad`` flag into a beat queue,
from which ``o`` offers it to the engine's issue stage. A column whose last byte is
accepted on ``mem`` in cycle x is offered from cycle x + ``GEARBOX_CYCLES``:

1. ``ByteWindow``'s two registers; the byte is in the window from x + 3;
2. the take, from x + 4 (``GEARBOX_TAKE_CYCLES``: the window's ``avail``, its bytes of the
   cycle before): the *head* register holds the length of the column at slot 0 (from its R
   depth trits, fixed slots of the window; an invalid byte reads as zero trits). The
   column is taken once ``avail`` covers it and fewer than ``GEARBOX_QUEUE`` columns are
   between the take and the issue stage: its first ``column_bytes_max`` slots are
   registered and it is popped, at most one column a cycle. The head of the next column
   is read in the same cycle from the slots after the taken one, for every possible length
   at once (one of ``R*D + 1``), so the next column can be taken in the next cycle; a
   header not yet in the window is read from slot 0 once it is;
3. assemble: row r's planes start at trit ``4R + 16 sum(k_i, i < r)`` (one of ``r D + 1``
   offsets); its top k_r planes are taken, the rest are zero trits; registered with its
   codebook index trits and ``bad``: a byte >= 243 in the column, a depth below 0 (only at
   D = 1) or a depth-0 group with a non-zero index (``layout.scan_var_columns``);
4. re-pack: the beat's trits laid out as uniform groups (weight by weight, digits least
   significant first), five per byte (``b = sum(digit_m 3^m)`` by shifts and adds),
   written to the queue, which offers it from the next cycle.

``GEARBOX_QUEUE`` columns between take and issue keep one column a cycle going at T = 1,
so the gearbox never delays a beat the cycle models issue.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import GEARBOX_CYCLES, GEARBOX_QUEUE, GEARBOX_TAKE_CYCLES, HwConfig
from .bytewindow import SLOT_BITS, WINDOW_CYCLES, ByteWindow, mem_layout
from .checks import check_config

#: base-3 digit (trit + 1) of a zero trit
ZERO_DIGIT = 1
#: registers from the take to the beat offered: the column, the assembled planes, the queue
TAKE_TO_OFFER = 3


def beat_out_layout(cfg: HwConfig) -> data.StructLayout:
    return data.StructLayout({"beat": unsigned(8 * cfg.beat_bytes), "bad": 1})


def _times(v, c: int):
    """``v * c`` for a constant c as shifts and adds (no multiplier)."""
    terms = [v << b for b in range(c.bit_length()) if c >> b & 1]
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


class Gearbox(wiring.Component):
    """Ports: ``mem`` (the column stream, ``tritforge.ports.mem_port``), ``o`` (depth-D
    beats with their ``bad`` flag)."""

    def __new__(cls, cfg: HwConfig):
        check_config("Gearbox", cfg)
        if (WINDOW_CYCLES + 1 != GEARBOX_TAKE_CYCLES
                or GEARBOX_TAKE_CYCLES + TAKE_TO_OFFER != GEARBOX_CYCLES):
            raise AssertionError(f"gearbox of {WINDOW_CYCLES} + 1 + {TAKE_TO_OFFER} cycles, but "
                                 f"GEARBOX_TAKE_CYCLES = {GEARBOX_TAKE_CYCLES}, "
                                 f"GEARBOX_CYCLES = {GEARBOX_CYCLES}")
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        R, D = cfg.rows, cfg.depth
        self.header_bytes = layout.var_header_bytes(R)
        self.col_bytes = cfg.column_bytes_max
        #: column bytes by the sum of its depths (0..R*D)
        self.lengths = [layout.packed_bytes(layout.VAR_HEADER_TRITS * R + layout.GROUP * s)
                        for s in range(R * D + 1)]
        self.window = ByteWindow(cfg.mem_bytes, self.col_bytes + self.header_bytes,
                                 cfg.window_bytes, self.lengths)
        self.queue = fifo.SyncFIFO(width=8 * cfg.beat_bytes + 1, depth=GEARBOX_QUEUE)
        super().__init__({"mem": In(stream.Signature(mem_layout(cfg.mem_bytes))),
                          "o": Out(stream.Signature(beat_out_layout(cfg)))})

    def _digit(self, slots, trit: int):
        b, pos = divmod(trit, layout.TRITS_PER_BYTE)
        return slots[SLOT_BITS * b + 2 * pos:SLOT_BITS * b + 2 * pos + 2]

    def _depths(self, m, slots, offset: int, name: str):
        """The R clipped depths of the header at slot ``offset`` and their sum."""
        R, D = self.cfg.rows, self.cfg.depth
        depth = []
        for r in range(R):
            f = self._digit(slots, layout.TRITS_PER_BYTE * offset + layout.VAR_HEADER_TRITS * r)
            k = Signal(3, name=f"{name}_k{r}")
            m.d.comb += k.eq(Mux(f + D >= 2, f + D - 2, 0))
            depth.append(k)
        total = Signal(range(R * D + 1), name=f"{name}_sum")
        m.d.comb += total.eq(sum(depth))
        return depth, total

    # --- the take ---------------------------------------------------------------------
    def _take(self, m, win, room):
        R, D = self.cfg.rows, self.cfg.depth
        hb = self.header_bytes
        head_valid = Signal()
        head_s = Signal(range(R * D + 1))
        head_len = Signal(range(self.col_bytes + 1))
        take = Signal()
        m.d.comb += take.eq(head_valid & (win.avail >= head_len) & room)
        m.d.comb += [win.pop.eq(take), win.pop_index.eq(head_s)]

        # the head after each possible length of the column taken now, and at slot 0
        after = [self._depths(m, win.slots, n, f"next{v}")[1] for v, n in enumerate(self.lengths)]
        here = self._depths(m, win.slots, 0, "head")[1]
        s = Signal.like(head_s)
        ok = Signal()
        with m.Switch(head_s):
            for v, n in enumerate(self.lengths):
                with m.Case(v) if v < len(self.lengths) - 1 else m.Default():
                    m.d.comb += [s.eq(after[v]), ok.eq(win.fill >= n + hb)]
        with m.If(~take):
            m.d.comb += [s.eq(here), ok.eq(win.fill >= hb)]
        length = Signal.like(head_len)
        with m.Switch(s):
            for v, n in enumerate(self.lengths):
                with m.Case(v) if v < len(self.lengths) - 1 else m.Default():
                    m.d.comb += length.eq(n)
        with m.If(take | ~head_valid):
            m.d.sync += [head_valid.eq(ok), head_s.eq(s), head_len.eq(length)]

        col = Signal(SLOT_BITS * self.col_bytes)
        col_len = Signal.like(head_len)
        col_valid = Signal()
        m.d.sync += col_valid.eq(take)
        with m.If(take):
            m.d.sync += [col.eq(win.slots[:SLOT_BITS * self.col_bytes]), col_len.eq(head_len)]
        return take, col_valid, col, col_len

    # --- assemble -----------------------------------------------------------------------
    def _assemble(self, m, col_valid, col, col_len):
        cfg = self.cfg
        R, D, G = cfg.rows, cfg.depth, layout.GROUP
        digit = [self._digit(col, t) for t in range(layout.TRITS_PER_BYTE * self.col_bytes)]
        depth, _ = self._depths(m, col, 0, "col")
        zero = Const(ZERO_DIGIT, 2)
        rows = []                                # per row: index digits, then its D planes
        bad_index, neg = [], []
        before = Const(0, 1)
        for r in range(R):
            h = layout.VAR_HEADER_TRITS * r
            index = digit[h + 1:h + 1 + layout.SCALE_TRITS]
            offset = Signal(range(r * D + 2), name=f"before{r}")
            m.d.comb += offset.eq(before)
            planes = [Signal(2 * G, name=f"row{r}_plane{j}") for j in range(D)]
            with m.Switch(offset):               # the last offset as the default
                for p in range(r * D + 1):
                    start = layout.VAR_HEADER_TRITS * R + G * p
                    with m.Case(p) if p < r * D else m.Default():
                        m.d.comb += [planes[j].eq(Cat(digit[start + G * j:start + G * (j + 1)]))
                                     for j in range(D)]
            rows.append(Cat(*index, *(Mux(depth[r] > j, planes[j], Cat([zero] * G)) for j in range(D))))
            f = digit[h]
            neg.append(f + D < 2)
            bad_index.append((f + D == 2) & (Cat(index) != 0))
            before = before + depth[r]
        bad_byte = Cat(col[SLOT_BITS * b + SLOT_BITS - 1] & (col_len > b)
                       for b in range(self.col_bytes)).any()
        asm = Signal(len(Cat(*rows)))
        asm_bad = Signal()
        asm_valid = Signal()
        m.d.sync += [asm.eq(Cat(*rows)), asm_bad.eq(bad_byte | Cat(*neg).any() | Cat(*bad_index).any()),
                     asm_valid.eq(col_valid)]
        return asm_valid, asm, asm_bad

    # --- re-pack ------------------------------------------------------------------------
    def _repack(self, m, asm):
        cfg = self.cfg
        R, D, G = cfg.rows, cfg.depth, layout.GROUP
        per_row = 2 * (layout.SCALE_TRITS + G * D)
        beat = []
        for r in range(R):
            row = asm[per_row * r:per_row * (r + 1)]
            beat += [row[2 * i:2 * i + 2] for i in range(layout.SCALE_TRITS)]
            planes = [row[2 * (layout.SCALE_TRITS + G * j):2 * (layout.SCALE_TRITS + G * (j + 1))]
                      for j in range(D)]
            for lane in range(G):                # digit i of a weight is plane D-1-i
                beat += [planes[D - 1 - i][2 * lane:2 * lane + 2] for i in range(D)]
        beat += [Const(ZERO_DIGIT, 2)] * (cfg.beat_bytes * layout.TRITS_PER_BYTE - len(beat))
        out = []
        for b in range(cfg.beat_bytes):
            d = beat[layout.TRITS_PER_BYTE * b:layout.TRITS_PER_BYTE * (b + 1)]
            byte = Signal(8, name=f"beat{b}")
            m.d.comb += byte.eq(sum(_times(d[i], 3 ** i) for i in range(layout.TRITS_PER_BYTE)))
            out.append(byte)
        return Cat(*out)

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = win = self.window
        m.submodules.queue = q = self.queue
        wiring.connect(m, wiring.flipped(self.mem), win.i)
        # columns taken and not yet accepted by the issue stage
        held = Signal(range(GEARBOX_QUEUE + 1))
        take, *col = self._take(m, win, held < GEARBOX_QUEUE)
        asm_valid, asm, asm_bad = self._assemble(m, *col)
        m.d.comb += [q.w_en.eq(asm_valid), q.w_data.eq(Cat(self._repack(m, asm), asm_bad))]
        out = self.o.payload
        m.d.comb += [self.o.valid.eq(q.r_rdy), out.beat.eq(q.r_data[:-1]), out.bad.eq(q.r_data[-1]),
                     q.r_en.eq(self.o.ready)]
        m.d.sync += held.eq(held + take - (self.o.valid & self.o.ready))
        return m
