"""The variable-depth engine's gearbox: column stream bytes in, depth-D beats out.

Reads the variable-depth hardware stream (``codec.layout.var_stream_columns``, hw/ENGINE.md
"Variable-depth stream") from its byte FIFO (``ByteWindow``, whose byte 0 is always the
next column's first byte) and writes each column as a uniform depth-D beat
(``codec.layout.stream_beats``' layout) with a ``bad`` flag into a beat queue, from which
``o`` offers it to the engine's issue stage. A column whose last byte enters the FIFO in
cycle x is offered from cycle x + ``GEARBOX_CYCLES``:

1. the FIFO's register (cycle x's bytes are held from x + 1);
2. take: the R depth trits of the header (fixed positions in the first
   ``layout.var_header_bytes(R)`` bytes; an invalid byte reads as zero trits) give the
   depths k_r and the column's length; once ``fill`` covers it (and the queue has room),
   its first ``column_bytes_max`` bytes, depths and length are registered and the column
   is popped from the FIFO: at most one column a cycle;
3. decode: every byte into its five base-3 digits (``decoder.byte_digits``), and the
   invalid-byte flag of the column's own bytes;
4. assemble: row r's planes start at trit ``4R + 16 sum(k_i, i < r)`` (one of
   ``r D + 1`` offsets); its top k_r planes are taken, the rest are zero trits; with its
   codebook index trits they are laid out as a uniform group (weight by weight, digits
   least significant first), packed five trits per byte (``b = sum(digit_m 3^m)``) and
   written to the queue with ``bad``: a byte >= 243 in the column, a depth below 0 (only
   at D = 1) or a depth-0 group with a non-zero index (``layout.scan_var_columns``).

The queue is read in the next cycle. A column is taken only while fewer than
``GEARBOX_QUEUE`` columns are between the take and the issue stage, so the queue never
overflows, and with ``GEARBOX_QUEUE = GEARBOX_CYCLES`` a beat is never later than the
cycle models give (the issue stage takes one beat every T >= 1 cycles).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import GEARBOX_QUEUE, HwConfig
from .bytewindow import ByteWindow, mem_layout
from .checks import check_config
from .decoder import byte_digits, byte_invalid

#: base-3 digit (trit + 1) of a zero trit
ZERO_DIGIT = 1


def beat_out_layout(cfg: HwConfig) -> data.StructLayout:
    return data.StructLayout({"beat": unsigned(8 * cfg.beat_bytes), "bad": 1})


def _digit_table(m: Module, byte, pos: int, name: str):
    """Digit ``pos`` of ``byte`` (zero trit's digit for an invalid byte): one table."""
    out = Signal(2, name=name)
    with m.Switch(byte):
        for b in range(layout.BYTE_LIMIT):
            with m.Case(b):
                m.d.comb += out.eq(layout.byte_trits(b)[pos] + 1)
        with m.Default():
            m.d.comb += out.eq(ZERO_DIGIT)
    return out


class Gearbox(wiring.Component):
    """Ports: ``mem`` (the column stream, ``tritforge.ports.mem_port``), ``o`` (depth-D
    beats with their ``bad`` flag)."""

    def __new__(cls, cfg: HwConfig):
        check_config("Gearbox", cfg)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        R, D = cfg.rows, cfg.depth
        self.header_bytes = layout.var_header_bytes(R)
        self.col_bytes = cfg.column_bytes_max
        self.window = ByteWindow(cfg.mem_bytes, self.col_bytes, cfg.window_bytes)
        #: column bytes by the sum of its depths (0..R*D)
        self.lengths = [layout.packed_bytes(layout.VAR_HEADER_TRITS * R + layout.GROUP * s)
                        for s in range(R * D + 1)]
        self.queue = fifo.SyncFIFO(width=8 * cfg.beat_bytes + 1, depth=GEARBOX_QUEUE)
        super().__init__({"mem": In(stream.Signature(mem_layout(cfg.mem_bytes))),
                          "o": Out(stream.Signature(beat_out_layout(cfg)))})

    # --- stage 2: take ------------------------------------------------------------------
    def _take(self, m, win, room):
        cfg = self.cfg
        R, D = cfg.rows, cfg.depth
        hw = win.window
        digit = []
        for r in range(R):
            t = layout.VAR_HEADER_TRITS * r
            b = t // layout.TRITS_PER_BYTE
            digit.append(_digit_table(m, hw[8 * b:8 * b + 8], t % layout.TRITS_PER_BYTE, f"f{r}"))
        # depth k_r = D - 2 + digit_r; a depth below 0 (D = 1, digit 0) holds no planes
        depth = [Signal(3, name=f"k{r}") for r in range(R)]
        for r in range(R):
            m.d.comb += depth[r].eq(Mux(digit[r] + D >= 2, digit[r] + D - 2, 0))
        total = Signal(range(R * D + 1))
        m.d.comb += total.eq(sum(depth))
        length = Signal(range(self.col_bytes + 1))
        with m.Switch(total):                # every value of ``total`` is one of the sums
            for s, n in enumerate(self.lengths[:-1]):
                with m.Case(s):
                    m.d.comb += length.eq(n)
            with m.Default():
                m.d.comb += length.eq(self.lengths[-1])
        take = Signal()
        m.d.comb += take.eq((win.fill >= self.header_bytes) & (win.fill >= length) & room)
        m.d.comb += [win.pop.eq(take), win.pop_bytes.eq(length)]
        col = Signal(8 * self.col_bytes)
        col_len = Signal.like(length)
        col_depth = Signal(3 * R)
        col_neg = Signal(R)
        col_valid = Signal()
        m.d.sync += col_valid.eq(take)
        with m.If(take):
            m.d.sync += [col.eq(hw), col_len.eq(length),
                         col_depth.eq(Cat(depth)),
                         col_neg.eq(Cat(digit[r] + D < 2 for r in range(R)))]
        return take, col_valid, col, col_len, col_depth, col_neg

    # --- stage 3: decode ------------------------------------------------------------------
    def _decode(self, m, col_valid, col, col_len, col_depth, col_neg):
        nb = self.col_bytes
        digits = Signal(2 * layout.TRITS_PER_BYTE * nb)
        bad_byte = Signal()
        dec_valid = Signal()
        depth = Signal.like(col_depth)
        neg = Signal.like(col_neg)
        m.d.sync += [dec_valid.eq(col_valid), depth.eq(col_depth), neg.eq(col_neg)]
        ds = []
        for b in range(nb):
            ds += byte_digits(m, col[8 * b:8 * b + 8], f"b{b}")
        m.d.sync += digits.eq(Cat(d[:2] for d in ds))
        m.d.sync += bad_byte.eq(Cat(byte_invalid(col[8 * b:8 * b + 8]) & (col_len > b)
                                    for b in range(nb)).any())
        return dec_valid, digits, bad_byte, depth, neg

    # --- stage 4: assemble ----------------------------------------------------------------
    def _assemble(self, m, digits, bad_byte, depth_bits, neg):
        cfg = self.cfg
        R, D, G = cfg.rows, cfg.depth, layout.GROUP
        digit = [digits[2 * t:2 * t + 2] for t in range(len(digits) // 2)]
        depth = [depth_bits[3 * r:3 * r + 3] for r in range(R)]
        zero = Const(ZERO_DIGIT, 2)
        beat = []            # the uniform beat's digits, row by row
        bad_index = []
        before = Const(0, 1)
        for r in range(R):
            h = layout.VAR_HEADER_TRITS * r
            index = digit[h + 1:h + 1 + layout.SCALE_TRITS]
            # planes of row r from each possible offset: the D planes after p planes
            offset = Signal(range(r * D + 2), name=f"before{r}")
            m.d.comb += offset.eq(before)
            planes = [Signal(2 * G, name=f"row{r}_plane{j}") for j in range(D)]
            with m.Switch(offset):            # the last offset as the default
                for p in range(r * D + 1):
                    start = layout.VAR_HEADER_TRITS * R + G * p
                    with m.Case(p) if p < r * D else m.Default():
                        m.d.comb += [planes[j].eq(Cat(digit[start + G * j:start + G * (j + 1)]))
                                     for j in range(D)]
            stored = [Mux(depth[r] > j, planes[j], Cat([zero] * G)) for j in range(D)]
            beat += index
            for lane in range(G):               # digit i of a weight is plane D-1-i
                beat += [stored[D - 1 - i][2 * lane:2 * lane + 2] for i in range(D)]
            bad_index.append((depth[r] == 0) & ~neg[r] & (Cat(index) != 0))
            before = before + depth[r]
        beat += [zero] * (cfg.beat_bytes * layout.TRITS_PER_BYTE - len(beat))
        out = []
        for b in range(cfg.beat_bytes):
            ds = beat[layout.TRITS_PER_BYTE * b:layout.TRITS_PER_BYTE * (b + 1)]
            byte = Signal(8, name=f"beat{b}")
            m.d.comb += byte.eq(sum(d * 3 ** i for i, d in enumerate(ds)))
            out.append(byte)
        bad = bad_byte | neg.any() | Cat(bad_index).any()
        return Cat(*out), bad

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = win = self.window
        m.submodules.queue = q = self.queue
        wiring.connect(m, wiring.flipped(self.mem), win.i)
        # columns taken and not yet accepted by the issue stage
        held = Signal(range(GEARBOX_QUEUE + 1))
        room = held < GEARBOX_QUEUE
        take, *col = self._take(m, win, room)
        dec_valid, digits, bad_byte, depth, neg = self._decode(m, *col)
        beat, bad = self._assemble(m, digits, bad_byte, depth, neg)
        m.d.comb += [q.w_en.eq(dec_valid), q.w_data.eq(Cat(beat, bad))]
        out = self.o.payload
        m.d.comb += [self.o.valid.eq(q.r_rdy), out.beat.eq(q.r_data[:-1]), out.bad.eq(q.r_data[-1]),
                     q.r_en.eq(self.o.ready)]
        m.d.sync += held.eq(held + take - (self.o.valid & self.o.ready))
        return m
