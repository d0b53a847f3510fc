"""Group dot product: R rows x 16 lanes x d trit planes, multiply-free.

For every row r, the 16*d trits select among precomputed exact multiples of the int8
activations, ``+3**i * x_j``, ``-3**i * x_j`` or 0 (trit +1, -1, 0 of plane i), and one
balanced adder tree sums the 16*d terms::

    P[r] = sum_i sum_j t_i[r, j] * 3**i * x_j          (codec.golden.group_dots_by_planes)

The multiples (``multiples_layout``) are shared by all R rows and come from
``hw.actmultiples.ActMultiples``, which the engine runs beside the trit decoder, so a
row needs neither a negation nor a correction for one's complements nor a Horner step:
a term is one 4-input LUT per bit (nonzero, negative, the two multiples' bits).

Widths: x is any int8 (-128..127), so a multiple of plane i, |3**i x| <= 3**i * 128,
fits ``multiple_bits(i)`` signed bits (9 for -x at x = -128), and |P| <= 16*L*128 fits
``HwConfig.widths.dot`` (``codec.golden.widths``).

Pipelined stream block: the terms are registered, then one adder level per register
stage (an ECP5 carry chain and one routing hop per stage, for 200 MHz): ``latency`` =
``groupdot_stages(d)`` = 1 + ceil(log2(16*d)) stages (5, 6, 7, 7 for d = 1..4). It
advances when ``o.ready`` is high (``i.ready = o.ready``); with ``enable_copies`` = n the
registers take that enable from copies of it (hw/replica.py): per group of R/n rows,
``TERM_COPIES`` for the terms (by lane), ``LEVEL0_COPIES`` for the first adder level and
one per further level, so each copy reaches a part of one stage of a few rows.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..codec.golden import ACT_ABS, ACT_BITS
from ..hwconfig import HwConfig, groupdot_stages
from .decoder import plane_layout
from .checks import check_config, check_int
from .replica import replicas

ACT = signed(ACT_BITS)
#: copies of the enable for a row group's term registers (each serves 16/TERM_COPIES lanes
#: of every plane: the terms of a row spread as wide as the shared multiples they select)
TERM_COPIES = 4
#: copies of the enable for a row group's first adder level (its widest: 8·d sums)
LEVEL0_COPIES = 2


def act_layout() -> data.ArrayLayout:
    """One activation group: 16 int8 lanes (lane j in bits 8j..8j+7, as codec.layout)."""
    return data.ArrayLayout(ACT, layout.GROUP)


def times_bits(c: int) -> int:
    """Signed width of +-c * x for every int8 x (|x| <= ACT_ABS = 128)."""
    return (ACT_ABS * c).bit_length() + 1


def multiple_bits(plane: int) -> int:
    """Signed width of +-3**plane * x for every int8 x."""
    return times_bits(3 ** plane)


def multiples_layout(depth: int) -> data.StructLayout:
    """``pos{i}``/``neg{i}``: the 16 lanes' +3**i x and -3**i x, for planes i < depth."""
    fields = {}
    for i in range(depth):
        lanes = data.ArrayLayout(signed(multiple_bits(i)), layout.GROUP)
        fields.update({f"pos{i}": lanes, f"neg{i}": lanes})
    return data.StructLayout(fields)


class GroupDot(wiring.Component):
    """Ports: ``i`` stream of ``{planes, mult, tag}``; ``o`` stream of ``{p, tag}``."""

    def __new__(cls, cfg: HwConfig, *, tag_shape=unsigned(0), enable_copies: int = 0,
                adv_inputs: int = 1):
        check_config("GroupDot", cfg)
        check_int("GroupDot", "enable_copies", enable_copies)
        check_int("GroupDot", "adv_inputs", adv_inputs, 1)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig, *, tag_shape=unsigned(0), enable_copies: int = 0,
                 adv_inputs: int = 1):
        #: > 0: the rows' registers take their enable from copies of the advance: per group
        #: of R/enable_copies rows, TERM_COPIES for the terms, LEVEL0_COPIES for the first
        #: adder level and one per further level
        #: (hw/replica.py), loaded from the ``adv_next`` port, which the caller drives with
        #: the value ``o.ready`` will have in the next cycle; 0: from ``o.ready`` itself
        #: (no ``adv_next`` port)
        self.enable_copies = enable_copies
        self.cfg = cfg
        self.dot_width = cfg.widths.dot
        self.in_layout = data.StructLayout({
            "planes": plane_layout(cfg), "mult": multiples_layout(cfg.depth), "tag": tag_shape})
        self.out_layout = data.StructLayout({
            "p": data.ArrayLayout(signed(self.dot_width), cfg.rows), "tag": tag_shape})
        members = {"i": In(stream.Signature(self.in_layout)),
                   "o": Out(stream.Signature(self.out_layout))}
        #: with ``adv_inputs`` = k > 1, ``adv_next`` is k copies of that value (a level of the
        #: engine's advance tree): input i loads the copies of the i-th k-th of the row groups
        self.adv_inputs = adv_inputs
        if enable_copies:
            members["adv_next"] = In(adv_inputs)
        super().__init__(members)

    @staticmethod
    def stages(depth: int) -> int:
        """Register stages at depth d: the terms, then one per adder level of the tree over
        the 16*d terms (``elaborate`` asserts its tree has that many levels)."""
        return groupdot_stages(depth)

    @property
    def latency(self) -> int:
        return self.stages(self.cfg.depth)

    def elaborate(self, platform):
        cfg = self.cfg
        d, R, G = cfg.depth, cfg.rows, layout.GROUP
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(self.o.ready), self.i.ready.eq(en)]
        ip = self.i.payload
        # enables per row group: TERM_COPIES for the term registers (by lane), LEVEL0_COPIES
        # for the first adder level (by sum), then one per adder level
        per = TERM_COPIES + LEVEL0_COPIES + self.latency - 2
        ens = replicas(m, "en", [self.adv_next[i] for i in range(self.adv_inputs)],
                       self.enable_copies * per, init=1) if self.enable_copies else [en] * per
        row_en = [ens[(r * len(ens) // per // R) * per:][:per] for r in range(R)]

        # the terms of a row, plane by plane (neighbours in the tree have like widths)
        levels = []
        for r in range(R):
            terms = []
            for i in range(d):
                pos, neg = ip.mult[f"pos{i}"], ip.mult[f"neg{i}"]
                for j in range(G):
                    t = ip.planes[r][i][j]
                    term = Signal(signed(multiple_bits(i)), name=f"term_r{r}_p{i}_l{j}",
                                  reset_less=True)
                    with m.If(row_en[r][j * TERM_COPIES // G]):
                        m.d.sync += term.eq(Mux(t[0], Mux(t[1], neg[j], pos[j]), 0))
                    terms.append(term)
            levels.append(terms)
        valid, tag = Signal(name="v0"), Signal.like(ip.tag, name="tag0")
        with m.If(en):
            m.d.sync += [valid.eq(self.i.valid), tag.eq(ip.tag)]

        # one adder level per stage: every sum (or an odd operand passed on) registered
        for lvl in range(self.latency - 1):
            nv = Signal(name=f"v{lvl + 1}")
            ntag = Signal.like(tag, name=f"tag{lvl + 1}")
            with m.If(en):
                m.d.sync += [nv.eq(valid), ntag.eq(tag)]
            valid, tag = nv, ntag
            for r in range(R):
                vals, nxt = levels[r], []
                for n in range(0, len(vals), 2):
                    pair = vals[n:n + 2]
                    width = max(len(v) for v in pair) + (len(pair) - 1)
                    s = Signal(signed(width), name=f"s_r{r}_l{lvl}_{n // 2}", reset_less=True)
                    copy = (TERM_COPIES + n * LEVEL0_COPIES // len(vals) if lvl == 0
                            else TERM_COPIES + LEVEL0_COPIES + lvl - 1)
                    with m.If(row_en[r][copy]):
                        m.d.sync += s.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
                    nxt.append(s)
                levels[r] = nxt
        assert all(len(vals) == 1 for vals in levels), "tree_levels disagrees with the tree"
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.tag.eq(tag)]
        for r in range(R):
            m.d.comb += self.o.payload.p[r].eq(levels[r][0])
        return m
