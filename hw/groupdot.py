"""Group dot product: R rows x 16 lanes x d trit planes, multiply-free.

For every row r and trit plane i, each lane j adds, subtracts or skips its int8
activation x_j (trit +1, -1, 0); the 16 terms meet in an adder tree; the planes are then
combined by shift-and-add, Horner style from the top plane (3a = 2a + a)::

    P[r] = sum_i 3**i * sum_j t_i[r, j] * x_j          (codec.golden.group_dots_by_planes)

Subtraction uses the one's complement: ``-x = ~x + 1``; a lane with trit -1 feeds ``~x``
into the tree and the count of such lanes (0..16) is added once per plane.

Widths: |x| <= 127, so a plane sum is at most 16*127 = 2032 (signed 12 bits), and
|P| <= 16*L*127 fits ``HwConfig.widths.dot`` (``codec.golden.widths``).

Pipelined stream block, ``latency`` = 3 register stages:
    1. lane terms and the first two tree levels (16 -> 4 partial sums) plus the negative
       lanes of each quad (0..4), per row and plane;
    2. the last two tree levels and the correction (the four quad counts summed beside
       the tree): one sum per row and plane;
    3. planes combined: P per row.
It advances when ``o.ready`` is high (``i.ready = o.ready``).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..codec.errors import TritforgeError
from ..hwconfig import HwConfig
from .decoder import plane_layout

ACT = signed(8)
PLANE_SUM = signed(12)     # |sum_j t_j x_j| <= 16 * 127 = 2032
QUAD = 4                   # terms per partial sum after stage 1


def act_layout() -> data.ArrayLayout:
    """One activation group: 16 int8 lanes (lane j in bits 8j..8j+7, as codec.layout)."""
    return data.ArrayLayout(ACT, layout.GROUP)


def _tree(m, values, name):
    """Balanced adder tree (pairs summed level by level). Every partial sum is its own
    signal marked ``keep``, so that Yosys maps each add to a carry chain instead of merging
    the tree into one multi-operand adder (which it builds from LUT full adders)."""
    vals = list(values)
    level = 0
    while len(vals) > 1:
        nxt = []
        for n in range(0, len(vals) - 1, 2):
            a, b = vals[n], vals[n + 1]
            s = Signal(signed(max(len(a), len(b)) + 1), name=f"{name}_l{level}_{n // 2}",
                       attrs={"keep": 1})
            m.d.comb += s.eq(a + b)
            nxt.append(s)
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
        level += 1
    return vals[0]


class GroupDot(wiring.Component):
    """Ports: ``i`` stream of ``{planes, act, tag}``; ``o`` stream of ``{p, tag}``."""

    latency = 3

    def __init__(self, cfg: HwConfig, *, tag_shape=unsigned(0)):
        if not isinstance(cfg, HwConfig):
            self._MustUse__silence = True   # refused: no unused-elaboratable warning
            raise TritforgeError(f"GroupDot cfg={cfg!r}: expected a HwConfig")
        self.cfg = cfg
        self.dot_width = cfg.widths.dot
        self.in_layout = data.StructLayout({
            "planes": plane_layout(cfg), "act": act_layout(), "tag": tag_shape})
        self.out_layout = data.StructLayout({
            "p": data.ArrayLayout(signed(self.dot_width), cfg.rows), "tag": tag_shape})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        d, R, G = cfg.depth, cfg.rows, layout.GROUP
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(self.o.ready), self.i.ready.eq(en)]
        ip = self.i.payload

        # stage 1: lane terms, 16 -> 4 partial sums, negative count
        v1 = Signal()
        tag1 = Signal(self.in_layout["tag"].shape)
        quads = [[[Signal(signed(10), name=f"q_r{r}_p{i}_{n}") for n in range(G // QUAD)]
                  for i in range(d)] for r in range(R)]
        # negative lanes per quad (0..4), summed in stage 2 beside the tree
        negs = [[[Signal(signed(4), name=f"neg_r{r}_p{i}_{n}") for n in range(G // QUAD)]
                 for i in range(d)] for r in range(R)]
        # stage 2: one sum per row and plane
        v2 = Signal()
        tag2 = Signal.like(tag1)
        sums = [[Signal(PLANE_SUM, name=f"s_r{r}_p{i}") for i in range(d)] for r in range(R)]

        # combinational logic first, outside any enable: the advance only reaches the
        # registers' clock enables, never a data path
        quad_in, neg_in, sum_in, p_in = {}, {}, {}, []
        for r in range(R):
            for i in range(d):
                terms, nbits = [], []
                for j in range(G):
                    t = ip.planes[r][i][j]
                    x = ip.act[j]
                    nz, neg = t[0], t[1]
                    term = Signal(ACT, name=f"term_r{r}_p{i}_l{j}")
                    m.d.comb += term.eq(Mux(nz, Mux(neg, ~x, x), 0))
                    terms.append(term)
                    nbits.append(nz & neg)
                for n in range(G // QUAD):
                    quad_in[r, i, n] = _tree(m, terms[QUAD * n:QUAD * (n + 1)], f"t_r{r}_p{i}_q{n}")
                for n in range(G // QUAD):
                    neg_in[r, i, n] = sum(nbits[QUAD * n:QUAD * (n + 1)])
                sum_in[r, i] = (_tree(m, quads[r][i], f"s_r{r}_p{i}") +
                                _tree(m, negs[r][i], f"n_r{r}_p{i}"))
            acc = sums[r][d - 1]
            for i in reversed(range(d - 1)):          # Horner: acc = 3 acc + plane_i
                acc = (acc << 1) + acc + sums[r][i]
            p_in.append(acc)

        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), tag1.eq(ip.tag),
                         v2.eq(v1), tag2.eq(tag1),
                         self.o.valid.eq(v2), self.o.payload.tag.eq(tag2)]
            for r in range(R):
                for i in range(d):
                    for n in range(G // QUAD):
                        m.d.sync += [quads[r][i][n].eq(quad_in[r, i, n]),
                                     negs[r][i][n].eq(neg_in[r, i, n])]
                    m.d.sync += sums[r][i].eq(sum_in[r, i])
                m.d.sync += self.o.payload.p[r].eq(p_in[r])
        return m
