"""The variable-depth engine's gearbox: memory beats of the column stream in, depth-D beats out.

Reads the variable-depth hardware stream (``codec.layout.var_stream_columns``, hw/ENGINE.md
"Variable-depth stream") through its word FIFO and column finder (``ColumnFinder``: whole
memory beats in slots, each beat's chains of columns found by a pipeline, one column a
cycle given by a popper) and writes each column
as a uniform depth-D beat (``codec.layout.stream_beats``' layout) with a ``bad`` flag into
a beat queue, from which ``o`` offers it to the engine's issue stage. A column whose last
memory beat is accepted on ``mem`` in cycle x is offered from cycle x +
``HwConfig.gearbox_cycles``:

1. ``ColumnFinder``: the column can be taken from x + ``HwConfig.gearbox_take_cycles``, once
   fewer than ``GEARBOX_QUEUE`` columns are between the take and the issue stage, at most
   one a cycle; its decoded beats are registered with its byte offset in the first;
2. rotate: its ``column_bytes_max`` decoded bytes from that offset (a shifter of
   ``log2(mem_bytes)`` levels);
3. header: row r's planes start at trit ``4R + 16 sum(k_i, i < r)`` (one of ``r D + 1``
   offsets, registered one-hot) and it has its top k_r planes; ``bad``: a byte >= 243 in
   the column, a column running past a partial beat's end, a depth below 0 (only at D = 1)
   or a depth-0 group with a non-zero index (``layout.scan_var_columns``);
4. assemble: each row's codebook index trits and planes, zero trits for those it does not
   have;
5. re-pack: the beat's trits laid out as uniform groups (weight by weight, digits least
   significant first), five per byte (``b = sum(digit_m 3^m)`` by shifts and adds),
   registered (stage 5) and written to the queue, which offers it from the next cycle.

``GEARBOX_QUEUE`` columns between take and issue keep one column a cycle going at T = 1,
so the gearbox never delays a beat the cycle models issue.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import GEARBOX_OFFER_CYCLES, GEARBOX_QUEUE, HwConfig
from ..ports import mem_port
from .checks import check_config
from .columnfinder import SLOT_BITS, ColumnFinder, clipped_depth
from .replica import Replicas
from .signature import payload_shape

#: FIFOs the beat queue is split into (a share of the beat each, written together)
QUEUE_PARTS = 4
#: base-3 digit (trit + 1) of a zero trit
ZERO_DIGIT = 1
#: registers from the take to the beat offered: the column's beats, its rotated bytes, its
#: header's row offsets, the assembled planes, the re-packed beat, the queue
TAKE_TO_OFFER = 6


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
        if TAKE_TO_OFFER != GEARBOX_OFFER_CYCLES:
            raise AssertionError(f"{TAKE_TO_OFFER} registers from the take to the beat offered, but "
                                 f"GEARBOX_OFFER_CYCLES = {GEARBOX_OFFER_CYCLES}")
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.col_bytes = cfg.column_bytes_max
        self.finder = ColumnFinder(cfg)
        # the beat queue in QUEUE_PARTS FIFOs of a share of the beat each (the first with
        # ``bad``), written and read together, each with its own copy of the write enable
        width = 8 * cfg.beat_bytes + 1
        self.queue_widths = [(p + 1) * width // QUEUE_PARTS - p * width // QUEUE_PARTS
                             for p in range(QUEUE_PARTS)]
        self.queue = [fifo.SyncFIFO(width=w, depth=GEARBOX_QUEUE) for w in self.queue_widths]
        super().__init__({"mem": In(stream.Signature(payload_shape(mem_port(cfg)))),
                          "o": Out(stream.Signature(beat_out_layout(cfg)))})

    def _digit(self, slots, trit: int):
        b, pos = divmod(trit, layout.TRITS_PER_BYTE)
        return slots[SLOT_BITS * b + 2 * pos:SLOT_BITS * b + 2 * pos + 2]

    # --- rotate -----------------------------------------------------------------------
    def _rotate(self, m, f):
        """The column's decoded bytes from its offset, registered (stage 2): a shifter of
        one level per offset bit, each level as wide as the bytes the levels after it
        still need."""
        S = SLOT_BITS
        col, col_len = Signal(S * self.col_bytes), Signal.like(f.length)
        col_cross, col_valid = Signal(), Signal()
        cur = f.words
        for j in reversed(range(len(f.offset))):
            keep = self.col_bytes + (1 << j) - 1          # bytes the lower levels may reach
            step = S * (1 << j)
            cur = Mux(f.offset[j], cur[step:step + S * keep], cur[:S * keep])
        m.d.sync += [col.eq(cur), col_len.eq(f.length), col_cross.eq(f.cross), col_valid.eq(f.col_valid)]
        return col_valid, col, col_len, col_cross

    # --- assemble -----------------------------------------------------------------------
    def _header(self, m, col_valid, col, col_len, col_cross):
        """From the column's header, registered (stage 3): per row a one-hot of where its
        planes start (one of ``r D + 1`` offsets) and which of its D planes it has; the
        ``bad`` flag; the index and plane digits as they are."""
        R, D = self.cfg.rows, self.cfg.depth
        digit = [self._digit(col, t) for t in range(layout.TRITS_PER_BYTE * self.col_bytes)]
        depth = [clipped_depth(digit[layout.VAR_HEADER_TRITS * r], D) for r in range(R)]
        at = [Signal(r * D + 1, name=f"at{r}") for r in range(R)]
        keep = [Signal(D, name=f"keep{r}") for r in range(R)]
        bad_index, neg = [], []
        before = Const(0, 1)
        for r in range(R):
            h = layout.VAR_HEADER_TRITS * r
            m.d.sync += [at[r].eq(Const(1, r * D + 1) << before), keep[r].eq(Cat(depth[r] > j for j in range(D)))]
            f = digit[h]
            neg.append(f + D < 2)
            bad_index.append((f + D == 2) & (Cat(digit[h + 1:h + 1 + layout.SCALE_TRITS]) != 0))
            before = before + depth[r]
        bad_byte = Cat(col[SLOT_BITS * b + SLOT_BITS - 1] & (col_len > b)
                       for b in range(self.col_bytes)).any()
        digits = Signal(2 * len(digit))
        bad, valid = Signal(), Signal()
        m.d.sync += [digits.eq(Cat(*digit)), valid.eq(col_valid),
                     bad.eq(bad_byte | col_cross | Cat(*neg).any() | Cat(*bad_index).any())]
        return valid, digits, at, keep, bad

    def _assemble(self, m, valid, digits, at, keep, bad):
        """Each row's index digits and its D planes, a zero plane for each it does not
        have, registered (stage 4): an AND-OR over the one-hot of its offset."""
        R, D, G = self.cfg.rows, self.cfg.depth, layout.GROUP
        digit = [digits[2 * t:2 * t + 2] for t in range(len(digits) // 2)]
        zero = Cat([Const(ZERO_DIGIT, 2)] * G)
        rows = []                                # per row: index digits, then its D planes
        for r in range(R):
            h = layout.VAR_HEADER_TRITS * r
            planes = []
            for j in range(D):
                starts = [layout.VAR_HEADER_TRITS * R + G * (p + j) for p in range(r * D + 1)]
                plane = reduce(operator.or_, [Mux(at[r][p], Cat(digit[t:t + G]), 0) for p, t in enumerate(starts)])
                planes.append(Mux(keep[r][j], plane, zero))
            rows.append(Cat(*digit[h + 1:h + 1 + layout.SCALE_TRITS], *planes))
        asm = Signal(len(Cat(*rows)))
        asm_bad, asm_valid = Signal(), Signal()
        m.d.sync += [asm.eq(Cat(*rows)), asm_bad.eq(bad), asm_valid.eq(valid)]
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
        m.submodules.finder = f = self.finder
        for p, part in enumerate(self.queue):
            m.submodules[f"queue{p}"] = part
        wiring.connect(m, wiring.flipped(self.mem), f.i)
        # columns taken and not yet accepted by the issue stage
        held = Signal(range(GEARBOX_QUEUE + 1))
        room = Signal(init=1, name="room")       # held < GEARBOX_QUEUE, registered with held
        m.d.comb += f.room.eq(room)
        asm_valid, asm, asm_bad = self._assemble(m, *self._header(m, *self._rotate(m, f)))
        packed, packed_bad = Signal(8 * self.cfg.beat_bytes), Signal()
        m.d.sync += [packed.eq(self._repack(m, asm)), packed_bad.eq(asm_bad)]
        m.submodules.packed_valid = packed_valid = Replicas(QUEUE_PARTS)
        m.d.comb += packed_valid.d.eq(asm_valid)
        word, at = Cat(packed_bad, packed), 0
        for p, (part, w) in enumerate(zip(self.queue, self.queue_widths)):
            m.d.comb += [part.w_en.eq(packed_valid.q[p]), part.w_data.eq(word[at:at + w]),
                         part.r_en.eq(self.o.ready)]
            at += w
        out_word = Cat(part.r_data for part in self.queue)
        out = self.o.payload
        m.d.comb += [self.o.valid.eq(self.queue[0].r_rdy), out.bad.eq(out_word[0]), out.beat.eq(out_word[1:])]
        popped = self.o.valid & self.o.ready
        m.d.sync += [held.eq(held + f.take - popped),
                     room.eq(Mux(f.take, Mux(popped, held < GEARBOX_QUEUE, held + 1 < GEARBOX_QUEUE),
                                 Mux(popped, held - 1 < GEARBOX_QUEUE, held < GEARBOX_QUEUE)))]
        return m
