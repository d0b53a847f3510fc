"""The attention unit: one query token's attention for one KV head and its group of query
heads, exactly ``codec.intattention.attend`` (docs/NUMERIC.md, "Attention"); ports and
timing in hw/ATTENTION.md.

A job (``cmd``: N keys) loads the group's g int8 query heads (``q``), then streams the KV
head's cache in blocks of ``AttentionConfig.block`` keys (``kv``: a block's K rows, then
its V rows) and ends with the g normalized output heads (``out``). Nothing holds the whole
context: per head the unit keeps the online softmax's running max m, sum l and output o
(head_dim elements), and per block the block's logits z.

Four pipelines, each a few register stages per operation so that no path holds more than
one wide add or one multiplier stage (the stage counts are ``AttentionUnitConfig``'s):

* **K** (a K beat per cycle): the beat and the head's query word (a ring of registers
  that turns one word per beat), the g dot products as partial products in logic and a
  pipelined adder tree, the score accumulated over the row; per row and head the logit
  z = clamp(rshift_round(s · m_c · m_k, e_c + e_k + 2 FR - SF)) through two multipliers
  and a two-step shift into the block's logit memory, and the block's maximum.
* **SOFT** (per block): m' = max(m, block max), c = 2^(m - m') (``Exp2Neg``).
* **V** (a V beat per cycle): per row and head p = 2^(z - m') and l_b += p, the weight
  w = rshift_round(p · m_v, e_v + FR - OVF) through a multiplier and a two-step shift; per
  beat the g · lanes products w · v added into the block's sums o_b (registers that turn
  one beat's word per beat).
* **merge** (per block, one element per cycle, beside the next block's K rows): o and l
  live in block RAM, g · (head_dim + 1) words (read through the block's output register);
  each is read, scaled,
  o = rshift_round(o · c, PF) + o_b (o = o_b in the first block), and written back, while
  the block's sums shift out of their registers (which leaves them 0 for the next block).

At the end (beside the last merge) each head's 1/l comes from a sequential divider
(hw/divider.py; the next head's divides while this head's elements leave; its divisor
l_t and shift prepared in a few register stages as the last merge writes l) and its elements
leave one per cycle, sat(rshift_round(rshift_round(o, sl) · R, 2 RL + OVF - FR)), packed
``lanes`` to a beat into an output register (the element pipeline stalls as a whole only
while a formed beat finds that register held). Every multiplier is a
``hw.multiplier.WideMultiplier`` of the build's ``primitives`` (hw/primitives.py).

Errors (sticky ``err``; the job still runs to its end so the streams stay aligned): a
command of 0 or more than ``max_context`` keys (dropped); an int8 element -128; a step
mantissa outside [2^(B-1), 2^B) (not normalized); a logit shift below 0 or a weight shift
left of ``w_left_max`` (a scale outside the contract's range, which the golden reference
refuses too).
"""
from __future__ import annotations

import enum

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring

from ..attentionports import attention_ports
from ..attentionunit import EXP_LATENCY, MUL_LATENCY, O_READ_LATENCY, AttentionUnitConfig
from ..vectorports import EXP_BITS
from ..vectortiming import BITLEN_STAGES
from .actbuffer import ActivationBuffer
from .divider import Divider
from .elementpipe import delay
from .exp2neg import Exp2Neg
from .fixedops import bitlen_staged, clamp, rshift_round, saturate
from .indexing import pick, step, write
from .multiplier import PipelinedMultiplier, WideMultiplier
from .primitives import check_primitives
from .signature import members
from .treesum import partial_products, tree_sum

#: right shifts beyond 63 give 0 for every operand of the contract (|x| < 2^62)
MAX_SHIFT = 63
ALWAYS = Const(1)


class Phase(enum.Enum):
    """The control states, in the order a job passes them (hw/ATTENTION.md, "Timing")."""

    IDLE = 0
    QLOAD = 1
    KROWS = 2
    KDRAIN = 3
    SOFT = 4
    VROWS = 5
    FINAL = 6
    DIVIDE = 7
    RECIP = 8
    OUT = 9


def shift_signed(x, sh, right_max: int, left_max: int):
    """rshift_round(x, sh) for sh >= 0 (clamped at ``right_max``), x << -sh for sh < 0
    (at most ``left_max``); ``sh`` a signed value."""
    rs = Mux(sh > right_max, right_max, sh)[:max(1, right_max.bit_length())]
    ls = Mux(-sh > left_max, left_max, -sh)[:max(1, left_max.bit_length())]
    return Mux(sh >= 0, rshift_round(x, rs), x << ls)


class AttentionUnit(wiring.Component):
    """Ports (tritforge/attentionports.py): ``cmd``, ``q``, ``kv`` in; ``out``; ``err``, ``busy``."""

    def __new__(cls, ucfg: AttentionUnitConfig, *, primitives: str = "generic"):
        check_primitives(primitives, "attention unit")
        if not isinstance(ucfg, AttentionUnitConfig):
            raise TypeError(f"AttentionUnit ucfg must be an AttentionUnitConfig, not {ucfg!r}")
        if ucfg.attention.exp_method != "lut":
            raise ValueError(f"AttentionUnit exp_method {ucfg.attention.exp_method!r}: the RTL "
                             "builds the 'lut' method")
        if WideMultiplier.latency != MUL_LATENCY or Exp2Neg.latency != EXP_LATENCY:
            raise ValueError("AttentionUnit: the multiplier or exponential latency differs from "
                             "tritforge.attentionunit's timing constants")
        return super().__new__(cls)

    def __init__(self, ucfg: AttentionUnitConfig, *, primitives: str = "generic"):
        self.ucfg = ucfg
        self.primitives = primitives
        super().__init__(members(attention_ports(ucfg)))

    def _mul(self, m, name: str, a_bits: int, b_bits: int, a, b, en=1):
        """A ``WideMultiplier`` of the build's primitive set: a · b, MUL_LATENCY cycles on."""
        m.submodules[name] = mul = WideMultiplier(a_bits, b_bits, primitives=self.primitives)
        m.d.comb += [mul.a.eq(a), mul.b.eq(b), mul.en.eq(en)]
        return mul.p

    def elaborate(self, platform):
        u = self.ucfg
        a = u.attention
        g, NB, blk = u.group, u.beats, a.block
        B, PF = a.scale_bits, a.prob_frac_bits
        m = Module()
        self.floor = -2 * ((1 << (a.score_int_bits + a.score_frac_bits)) - 1 + 1)
        self.exps = []
        for h in range(g):
            e = Exp2Neg(u.z_bits + 1, a.score_frac_bits, PF, a.exp_lut_bits, u.exp_table)
            m.submodules[f"exp{h}"] = e
            self.exps.append(e)
        # o and l: one block RAM for the merge's reads and one for the output's (the last
        # merge runs while the first heads are normalized and leave), written alike; a
        # read takes the block's address and output registers (O_READ_LATENCY)
        self.obufs = []
        for name in ("omem_merge", "omem_out"):
            buf = ActivationBuffer(u.merge_elements, u.o_bits, primitives=self.primitives, fabric=False)
            if buf.latency != O_READ_LATENCY:
                raise ValueError("AttentionUnit: the o memory's read latency differs from "
                                 "tritforge.attentionunit's O_READ_LATENCY")
            m.submodules[name] = buf
            self.obufs.append(buf)
        self.o_rd, self.o_out = self.obufs

        # job state
        self.state = state = Signal(Phase)
        self.sticky = Signal()
        self.keys = Signal(u.keys_bits)
        self.j0 = Signal(u.keys_bits + 1)              # first key of the block
        self.bk = Signal(range(blk + 1))               # keys in the block
        self.jj = Signal(range(blk))                   # row within the block
        self.bb = Signal(range(NB))                    # beat within the row
        self.hh = Signal(range(g))                     # head (query load, output)
        self.mwait = Signal(range(u.merge_wait))       # cycles until the merge is done
        self.ofirst = Signal()                         # the first block's merge: o = o_b
        self.lready = Signal(range(g + 1))             # heads whose l the last merge has written
        # per head
        self.cm = [Signal(B, name=f"cm{h}") for h in range(g)]
        self.ce = [Signal(signed(EXP_BITS + 3), name=f"ce{h}") for h in range(g)]
        self.mrun = [Signal(signed(u.z_bits), name=f"m{h}", init=self.floor) for h in range(g)]
        self.bmax = [Signal(signed(u.z_bits), name=f"bmax{h}", init=self.floor) for h in range(g)]
        self.cfac = [Signal(u.p_bits, name=f"c{h}") for h in range(g)]
        # per head the divisor of the last merge's l: l_t and its shift sl (``_divisors``)
        self.lden = [Signal(a.recip_bits + 1, name=f"lden{h}") for h in range(g)]
        self.lshift = [Signal(range(u.l_bits + 1), name=f"lshift{h}") for h in range(g)]
        # the block's sums, in the merge's order: per head l_b, then o_b by beat and lane
        self.chain = [Signal(signed(u.o_bits), name=f"ob{i}") for i in range(u.merge_elements)]
        self.zmem = []
        for h in range(g):
            z = memory.Memory(shape=signed(u.z_bits), depth=blk, init=[])
            m.submodules[f"zmem{h}"] = z
            self.zmem.append((z.read_port(), z.write_port()))

        m.d.comb += [self.err.eq(self.sticky), self.busy.eq(state != Phase.IDLE)]
        with m.If(self.mwait != 0):
            m.d.sync += self.mwait.eq(self.mwait - 1)
        self._control(m)
        self._k_path(m)
        self._v_path(m)
        self._merge(m)
        self._output(m)
        with m.If(state >= len(Phase)):      # unreachable encodings
            m.d.sync += state.eq(Phase.IDLE)
        return m

    # ---- checks on an accepted beat ------------------------------------------------------
    def _check_beat(self, m, payload, first):
        B = self.ucfg.attention.scale_bits
        bad = Const(0)
        for k in range(self.ucfg.lanes):
            bad = bad | (payload.elems[k] == -128)
        bad = bad | (first & ~payload.m[B - 1])
        with m.If(bad):
            m.d.sync += self.sticky.eq(1)

    # ---- control: query load, row counters, phases ---------------------------------------
    def _control(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, blk = u.group, u.beats, a.block
        B = a.scale_bits
        Mc, ec = u.query_constant
        state, keys, j0, bk, jj, bb, hh = (self.state, self.keys, self.j0, self.bk, self.jj,
                                           self.bb, self.hh)
        self.qwords = [Signal(8 * u.lanes, name=f"q{i}") for i in range(g * NB)]
        self.k_accept, self.v_accept = Signal(), Signal()
        drain = Signal(range(u.k_drain))
        soft = Signal(range(u.soft_cycles))
        fin = Signal(range(u.final_wait))
        # the query step joins the build's constant (one multiplier tile) after the head's
        # first beat; the logits need it MUL_LATENCY cycles after the first K row at the
        # earliest, later than this
        qs_go, qs_h = Signal(), Signal(range(g))
        qs_m, qs_e = Signal(B), Signal(signed(EXP_BITS))
        m.d.sync += qs_go.eq(0)
        m.submodules.qscale = qmul = PipelinedMultiplier(B + 1, B + 1, primitives=self.primitives)
        m.d.comb += [qmul.a.eq(qs_m), qmul.b.eq(Mc), qmul.en.eq(1)]
        lat = PipelinedMultiplier.latency
        go3, h3, e3 = (delay(m, ALWAYS, s, lat, n) for s, n in ((qs_go, "qsgo"), (qs_h, "qsh"), (qs_e, "qse")))
        with m.If(go3):
            prod = qmul.p[:2 * B]
            top = prod[2 * B - 1]
            write(m, self.cm, h3, Mux(top, prod[B:], prod[B - 1:2 * B - 1]))
            write(m, self.ce, h3, e3 + ec - Mux(top, B, B - 1))
        with m.If(state == Phase.IDLE):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                n = self.cmd.payload.keys
                with m.If((n == 0) | (n > a.max_context)):
                    m.d.sync += self.sticky.eq(1)
                with m.Else():
                    m.d.sync += [keys.eq(n), j0.eq(0), bk.eq(Mux(n > blk, blk, n)), hh.eq(0),
                                 bb.eq(0), jj.eq(0), self.ofirst.eq(1), self.mwait.eq(0)]
                    m.d.sync += [r.eq(self.floor) for r in self.mrun]
                    m.d.sync += state.eq(Phase.QLOAD)
        with m.If(state == Phase.QLOAD):
            m.d.comb += self.q.ready.eq(1)
            with m.If(self.q.valid):
                p = self.q.payload
                self._check_beat(m, p, bb == 0)
                m.d.sync += [w.eq(nxt) for w, nxt in zip(self.qwords, self.qwords[1:])]
                m.d.sync += self.qwords[-1].eq(p.elems.as_value())
                with m.If(bb == 0):
                    m.d.sync += [qs_go.eq(1), qs_h.eq(hh), qs_m.eq(p.m), qs_e.eq(p.e)]
                with m.If(step(m, bb, hh, NB - 1, g - 1)):
                    m.d.sync += state.eq(Phase.KROWS)
        with m.If(state == Phase.KROWS):
            m.d.comb += [self.kv.ready.eq(1), self.k_accept.eq(self.kv.valid)]
            with m.If(self.kv.valid):
                self._check_beat(m, self.kv.payload, bb == 0)
                with m.If((bb == 0) & (jj == 0)):
                    m.d.sync += [r.eq(self.floor) for r in self.bmax]
                step(m, bb, jj, NB - 1, bk - 1)
                with m.If((bb == NB - 1) & (jj == bk - 1)):
                    m.d.sync += [drain.eq(u.k_drain - 2), state.eq(Phase.KDRAIN)]
        with m.If(state == Phase.KDRAIN):
            m.d.sync += drain.eq(drain - (drain != 0))
            with m.If((drain == 0) & (self.mwait == 0)):
                m.d.sync += [soft.eq(0), state.eq(Phase.SOFT)]
        with m.If(state == Phase.SOFT):
            m.d.sync += soft.eq(soft + 1)
            with m.If(soft == 0):
                for h in range(g):
                    mn = Signal(signed(u.z_bits), name=f"mnew{h}")
                    m.d.comb += [mn.eq(Mux(self.bmax[h] > self.mrun[h], self.bmax[h], self.mrun[h])),
                                 self.exps[h].a.eq((mn - self.mrun[h]).as_unsigned())]
                    m.d.sync += self.mrun[h].eq(mn)
            with m.If(soft == u.soft_cycles - 1):
                m.d.sync += [c.eq(e.p) for c, e in zip(self.cfac, self.exps)]
                m.d.sync += state.eq(Phase.VROWS)
        with m.If(state == Phase.VROWS):
            m.d.comb += [self.kv.ready.eq(1), self.v_accept.eq(self.kv.valid)]
            with m.If(self.kv.valid):
                self._check_beat(m, self.kv.payload, bb == 0)
                with m.If((bb == 0) & (self.kv.payload.e + u.w_shift_fixed < -u.w_left_max)):
                    m.d.sync += self.sticky.eq(1)
                step(m, bb, jj, NB - 1, bk - 1)
                with m.If((bb == NB - 1) & (jj == bk - 1)):
                    nj = j0 + bk
                    m.d.sync += [j0.eq(nj), bk.eq(Mux(keys - nj > blk, blk, keys - nj)),
                                 self.mwait.eq(u.merge_wait - 2)]
                    with m.If(nj == keys):
                        m.d.sync += [fin.eq(u.final_wait - 2), self.lready.eq(0), state.eq(Phase.FINAL)]
                    with m.Else():
                        m.d.sync += state.eq(Phase.KROWS)
        with m.If(state == Phase.FINAL):
            m.d.sync += fin.eq(fin - 1)
            with m.If(fin == 0):
                m.d.sync += [hh.eq(0), state.eq(Phase.DIVIDE)]

    # ---- K: dot products, scores, logits -------------------------------------------------
    def _k_path(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, L = u.group, u.beats, u.lanes
        B, SF = a.scale_bits, a.score_frac_bits
        zlim = (1 << (a.score_int_bits + SF)) - 1
        beat = data.ArrayLayout(signed(8), L)
        p = self.kv.payload
        # stage 1: the beat and each head's query word (the ring turns one word per K beat)
        v1, first, last = Signal(), Signal(), Signal()
        elems = Signal(beat)
        km, ke, kj = Signal(B), Signal(signed(EXP_BITS)), Signal(range(a.block))
        qw = [Signal(beat, name=f"kq{h}") for h in range(g)]
        m.d.sync += v1.eq(self.k_accept)
        with m.If(self.k_accept):
            m.d.sync += [elems.eq(p.elems), first.eq(self.bb == 0), last.eq(self.bb == NB - 1),
                         km.eq(p.m), ke.eq(p.e), kj.eq(self.jj)]
            for h in range(g):
                ring = self.qwords[h * NB:(h + 1) * NB]
                m.d.sync += qw[h].eq(ring[0])
                m.d.sync += [w.eq(nxt) for w, nxt in zip(ring, ring[1:] + ring[:1])]
        # the dot products: 8 partial products per lane, an adder tree of dot_stages stages
        dots = []
        for h in range(g):
            terms = [t for k in range(L) for t in partial_products(qw[h][k], elems[k])]
            dots.append(tree_sum(m, terms, signed(u.score_bits), u.dot_stages, f"dot{h}"))
        D = u.dot_stages
        dv, dfirst, dlast = (delay(m, ALWAYS, s, D, n) for s, n in ((v1, "dv"), (first, "df"), (last, "dl")))
        dm, de, dj = (delay(m, ALWAYS, s, D, n) for s, n in ((km, "dm"), (ke, "de"), (kj, "dj")))
        # the score over the row; the row's step and key latched from its first beat
        acc = [Signal(signed(u.score_bits), name=f"acc{h}") for h in range(g)]
        score = [Signal(signed(u.score_bits), name=f"score{h}") for h in range(g)]
        rm, re, rj = Signal(B), Signal(signed(EXP_BITS)), Signal(range(a.block))
        zgo = Signal()
        zm, ze, zj = Signal(B), Signal(signed(EXP_BITS)), Signal(range(a.block))
        m.d.sync += zgo.eq(dv & dlast)
        with m.If(dv):
            with m.If(dfirst):
                m.d.sync += [rm.eq(dm), re.eq(de), rj.eq(dj)]
            for h in range(g):
                nxt = Signal(signed(u.score_bits), name=f"snext{h}")
                m.d.comb += nxt.eq(Mux(dfirst, 0, acc[h]) + dots[h])
                m.d.sync += acc[h].eq(nxt)
                with m.If(dlast):
                    m.d.sync += score[h].eq(nxt)
            with m.If(dlast):
                m.d.sync += [zm.eq(Mux(dfirst, dm, rm)), ze.eq(Mux(dfirst, de, re)), zj.eq(Mux(dfirst, dj, rj))]
        # the logits: s · m_c, then · m_k, then the two-step rounding shift and the clamp
        go3, zm3 = delay(m, ALWAYS, zgo, MUL_LATENCY, "zgo"), delay(m, ALWAYS, zm, MUL_LATENCY, "zm")
        go6 = delay(m, ALWAYS, go3, MUL_LATENCY, "zgo3")
        ze6 = delay(m, ALWAYS, ze, 2 * MUL_LATENCY, "ze")
        zj8 = delay(m, ALWAYS, zj, 2 * MUL_LATENCY + 2, "zj")
        go8 = delay(m, ALWAYS, go6, 2, "zgo6")
        for h in range(g):
            pa = self._mul(m, f"sc{h}", u.score_bits, B + 1, score[h], self.cm[h])
            pb = self._mul(m, f"sk{h}", u.score_bits + B + 1, B + 1, pa, zm3)
            sh = Signal(signed(EXP_BITS + 5), name=f"zsh{h}")
            rs = Signal(6, name=f"zrs{h}")
            m.d.comb += [sh.eq(self.ce[h] + ze6 + u.z_shift_fixed),
                         rs.eq(Mux(sh < 0, 0, Mux(sh > MAX_SHIFT, MAX_SHIFT, sh)))]
            with m.If(go6 & (sh < 0)):
                m.d.sync += self.sticky.eq(1)
            y1 = Signal(signed(len(pb) + 1), name=f"zy1_{h}")
            y2 = Signal(signed(len(pb) + 1), name=f"zy2_{h}")
            lo = Signal(3, name=f"zlo{h}")
            m.d.sync += [y1.eq((pb << 1) >> (rs & 0x38)), lo.eq(rs[:3]), y2.eq(y1 >> lo)]
            z = Signal(signed(u.z_bits), name=f"z{h}")
            m.d.comb += z.eq(clamp((y2 + 1) >> 1, zlim))
            _, wr = self.zmem[h]
            m.d.comb += [wr.addr.eq(zj8), wr.data.eq(z), wr.en.eq(go8)]
            with m.If(go8):
                m.d.sync += self.bmax[h].eq(Mux(z > self.bmax[h], z, self.bmax[h]))

    # ---- V: weights, products, the block's sums ------------------------------------------
    def _v_path(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, L = u.group, u.beats, u.lanes
        B = a.scale_bits
        beat = data.ArrayLayout(signed(8), L)
        p = self.kv.payload
        v1, first, blast = Signal(), Signal(), Signal()
        elems = Signal(beat)
        vm = Signal(B)
        wsh = Signal(signed(EXP_BITS + 2))
        m.d.sync += v1.eq(self.v_accept)
        with m.If(self.v_accept):
            m.d.sync += [elems.eq(p.elems), first.eq(self.bb == 0), vm.eq(p.m),
                         wsh.eq(p.e + u.w_shift_fixed),
                         blast.eq((self.bb == NB - 1) & (self.jj == self.bk - 1))]
        for h in range(g):
            rd, _ = self.zmem[h]
            m.d.comb += rd.addr.eq(self.jj)
            with m.If(self.state != Phase.SOFT):
                m.d.comb += self.exps[h].a.eq((self.mrun[h] - rd.data).as_unsigned())
        E = EXP_LATENCY
        v4, f4 = delay(m, ALWAYS, v1, E, "v4"), delay(m, ALWAYS, first, E, "vf4")
        vm4 = delay(m, ALWAYS, vm, E, "vm4")
        v7 = delay(m, ALWAYS, v4, MUL_LATENCY, "v7")
        wsh7 = delay(m, ALWAYS, wsh, E + MUL_LATENCY, "wsh7")
        v9, f9 = delay(m, ALWAYS, v7, 2, "v9"), delay(m, ALWAYS, f4, MUL_LATENCY + 2, "vf9")
        e9 = delay(m, ALWAYS, elems, E + MUL_LATENCY + 2, "ve9")
        b12 = delay(m, ALWAYS, blast, E + MUL_LATENCY + 2 + MUL_LATENCY, "vb12")
        v12 = delay(m, ALWAYS, v9, MUL_LATENCY, "v12")
        self.v_block_end = v12 & b12
        lmax = u.w_left_max
        prods = []
        dsp = None if u.pv_multiplier == "lut" else True
        if dsp:
            # the row's left shift, applied to the beat's elements (common to the g heads)
            ls9 = Signal(range(lmax + 1))
            lsrow = Signal(range(lmax + 1))
            lscur = Mux(f9, ls9, lsrow)
            with m.If(v9 & f9):
                m.d.sync += lsrow.eq(ls9)
            vs = [Signal(signed(8 + lmax), name=f"vs{k}") for k in range(L)]
            m.d.comb += [vs[k].eq(e9[k] << lscur) for k in range(L)]
        for h in range(g):
            ph = self.exps[h].p
            with m.If(v4 & f4):
                self._add_l(m, h, ph)
            pm = self._mul(m, f"pm{h}", u.p_bits + 1, B + 1, ph, vm4)
            # w: the right shift in two steps, or the left shift (which the "dsp" products
            # move onto v: w · v = pm · (v << ls), operands of at most 18 bits but pm)
            rs = Signal(6, name=f"wrs{h}")
            m.d.comb += rs.eq(Mux(wsh7 < 0, 0, Mux(wsh7 > MAX_SHIFT, MAX_SHIFT, wsh7)))
            r1 = Signal(2 * B + 2, name=f"wr1_{h}")
            pm1 = Signal(2 * B + 1, name=f"wpm{h}")
            lo, wsh8 = Signal(3, name=f"wlo{h}"), Signal.like(wsh7, name=f"wsh8_{h}")
            m.d.sync += [r1.eq((pm[:2 * B + 1] << 1) >> (rs & 0x38)), lo.eq(rs[:3]),
                         pm1.eq(pm[:2 * B + 1]), wsh8.eq(wsh7)]
            ls = Mux(wsh8 >= 0, 0, Mux(-wsh8 > lmax, lmax, -wsh8))[:max(1, lmax.bit_length())]
            right = ((r1 >> lo) + 1) >> 1
            w9, wrow = Signal(signed(u.w_bits), name=f"w{h}"), Signal(signed(u.w_bits), name=f"wrow{h}")
            m.d.sync += w9.eq(Mux(wsh8 >= 0, right, pm1 << ls if dsp is None else pm1))
            if dsp is not None and h == 0:
                m.d.sync += ls9.eq(ls)
            wcur = Signal(signed(u.w_bits), name=f"wcur{h}")
            m.d.comb += wcur.eq(Mux(f9, w9, wrow))
            with m.If(v9 & f9):
                m.d.sync += wrow.eq(w9)
            if dsp is None:
                prods.append([self._lut_product(m, wcur, e9[k], f"pv{h}_{k}") for k in range(L)])
            else:
                prods.append([self._dsp_product(m, wcur, vs[k], f"pv{h}_{k}") for k in range(L)])
        # the block's sums: each head's words turn one beat per V beat, the last one gets
        # the first one plus the beat's products
        with m.If(v12):
            for h in range(g):
                words = [self._o_word(h, b) for b in range(NB)]
                for b in range(NB - 1):
                    m.d.sync += [d.eq(s) for d, s in zip(words[b], words[b + 1])]
                m.d.sync += [d.eq(s + pr) for d, s, pr in zip(words[NB - 1], words[0], prods[h])]

    def _o_word(self, h: int, b: int):
        """The block-sum registers of head h, beat b (lanes elements)."""
        base = h * (self.ucfg.head_dim + 1) + 1 + b * self.ucfg.lanes
        return self.chain[base:base + self.ucfg.lanes]

    def _add_l(self, m, h: int, p):
        i = h * (self.ucfg.head_dim + 1)
        m.d.sync += self.chain[i].eq(self.chain[i] + p)

    def _lut_product(self, m, w, v, name: str):
        """w · v, MUL_LATENCY cycles later, as shift-and-add in logic: the operands
        registered, the 8 partial products summed in two register stages."""
        u = self.ucfg
        wr, vr = Signal(signed(u.w_bits), name=f"{name}_w"), Signal(signed(8), name=f"{name}_v")
        m.d.sync += [wr.eq(w), vr.eq(v)]
        return tree_sum(m, partial_products(wr, vr), signed(u.w_bits + 8), MUL_LATENCY - 1, name)

    def _dsp_product(self, m, w, vs, name: str):
        """pm · (v << ls), MUL_LATENCY cycles later, on a multiplier: pm < 2^(PF + B + 1)
        (two MULT18X18D on ECP5 at the default widths), v << ls within 18 bits."""
        u = self.ucfg
        return self._mul(m, name, u.p_bits + u.attention.scale_bits + 1, len(vs), w, vs)

    # ---- merge: o = rshift_round(o · c, PF) + o_b, l likewise ----------------------------
    def _merge(self, m):
        u = self.ucfg
        g, hd, n = u.group, u.head_dim, u.merge_elements
        PF = u.attention.prob_frac_bits
        active = Signal()
        i = Signal(range(n))
        head, elem = Signal(range(g)), Signal(range(hd + 1))
        final = Signal()                               # the job's last merge (its l count)
        with m.If(self.v_block_end):
            m.d.sync += [active.eq(1), i.eq(0), head.eq(0), elem.eq(0),
                         final.eq(self.state == Phase.FINAL)]
        rd = self.o_rd
        m.d.comb += [rd.r_addr.eq(i), rd.r_en.eq(1)]
        # the element's state beside its read (O_READ_LATENCY cycles)
        first = Signal()                               # the l of a head, in the last merge
        m.d.comb += first.eq((elem == 0) & final)
        v1, h1, i1, l1, ob1 = (delay(m, ALWAYS, s, O_READ_LATENCY, f"m{nm}r") for s, nm in
                               ((active, "v"), (head, "h"), (i, "i"), (first, "l"), (self.chain[0], "ob")))
        with m.If(active):
            m.d.sync += [d.eq(s) for d, s in zip(self.chain, self.chain[1:] + [Const(0)])]
            m.d.sync += i.eq(i + 1)
            step(m, elem, head, hd, g - 1)
            with m.If(i == n - 1):
                m.d.sync += active.eq(0)
        oc = self._mul(m, "mc", u.o_bits, u.p_bits + 1, rd.r_data.as_signed(), pick(self.cfac, h1))
        v4, h4, i4, l4 = (delay(m, ALWAYS, s, MUL_LATENCY, f"m{nm}") for s, nm in
                          ((v1, "v"), (h1, "h"), (i1, "i"), (l1, "l")))
        ob5 = delay(m, ALWAYS, ob1, MUL_LATENCY + 1, "mob")
        v5, h5, i5, l5 = (delay(m, ALWAYS, s, 1, f"m{nm}4") for s, nm in
                          ((v4, "v"), (h4, "h"), (i4, "i"), (l4, "l")))
        r5 = Signal(signed(u.o_bits + 1))
        m.d.sync += r5.eq(Mux(self.ofirst, 0, rshift_round(oc, PF)))
        res = Signal(signed(u.o_bits))
        m.d.comb += res.eq(r5 + ob5)
        for buf in self.obufs:
            m.d.comb += [buf.w_addr.eq(i5), buf.w_data.eq(res), buf.w_en.eq(v5)]
        # the last merge's l: each head's divisor
        self._divisors(m, v5 & l5, h5, res[:u.l_bits])
        with m.If(v5 & (i5 == n - 1)):
            m.d.sync += self.ofirst.eq(0)

    def _divisors(self, m, valid, head, lval):
        """A head's divisor from the l the merge writes, ``DEN_STAGES`` registers later:
        l registered, lh = max(l, 1), its bit length (``bitlen_staged``), the shift
        sl = max(0, bitlen - RL), l_t = rshift_round(lh, sl); then the head's ``lden``,
        ``lshift`` written and ``lready`` counted."""
        u = self.ucfg
        RL = u.attention.recip_bits
        lw, vw, hw = Signal(u.l_bits), Signal(), Signal.like(head)
        m.d.sync += [lw.eq(lval), vw.eq(valid), hw.eq(head)]
        lh, v1, h1 = Signal(u.l_bits), Signal(), Signal.like(head)
        m.d.sync += [lh.eq(Mux(lw == 0, 1, lw)), v1.eq(vw), h1.eq(hw)]
        nl = bitlen_staged(m, ALWAYS, lh, "lbits")
        lh3, v3, h3 = (delay(m, ALWAYS, x, BITLEN_STAGES, n) for x, n in ((lh, "lh"), (v1, "lv"), (h1, "lhd")))
        sh4 = Signal(range(u.l_bits + 1))
        lh4, v4, h4 = (delay(m, ALWAYS, x, 1, n) for x, n in ((lh3, "lh3"), (v3, "lv3"), (h3, "lh3d")))
        m.d.sync += sh4.eq(Mux(nl > RL, nl - RL, 0))
        with m.If(v4):
            write(m, self.lden, h4, rshift_round(lh4, sh4)[:RL + 1])
            write(m, self.lshift, h4, sh4)
            m.d.sync += self.lready.eq(self.lready + 1)

    # ---- the end: 1/l per head, the output elements --------------------------------------
    def _output(self, m):
        u = self.ucfg
        g, NB, L, hd = u.group, u.beats, u.lanes, u.head_dim
        RL = u.attention.recip_bits
        state, hh = self.state, self.hh
        m.submodules.div = div = Divider(u.quotient_bits, RL + 1, primitives=self.primitives)
        sl = Signal(range(u.l_bits + 1))
        recip = Signal(u.quotient_bits)
        d = Signal(range(hd + 1))                      # elements read
        ob = Signal(range(NB))                         # the head's beats formed
        cnt = Signal(range(L + 1))                     # elements collected for the next beat
        coll = [Signal(signed(u.vector.resid_bits), name=f"coll{k}") for k in range(L)]
        ov, olast = Signal(), Signal()                 # the output register
        oelems = [Signal(signed(u.vector.resid_bits), name=f"out{k}") for k in range(L)]
        full = cnt == L
        move = full & (~ov | self.out.ready)           # a formed beat into the output register
        en = Signal()                                  # the element pipeline advances
        m.d.comb += en.eq(~full | move)
        # the element pipeline: read, o_t, o_t · R, round and saturate, into the beat
        out = state == Phase.OUT
        issue = out & (d < hd)
        rd = self.o_out
        m.d.comb += [rd.r_addr.eq(hh * (hd + 1) + 1 + d), rd.r_en.eq(en)]
        v1, v2 = delay(m, en, issue, O_READ_LATENCY, "ovr"), Signal()
        ot = Signal(signed(u.ot_bits))
        otr = self._mul(m, "mo", u.ot_bits, u.quotient_bits + 1, ot, recip, en)
        v5 = delay(m, en, v2, MUL_LATENCY, "ov")
        v6 = Signal()
        y = Signal(signed(u.vector.resid_bits))
        with m.If(en):
            m.d.sync += [d.eq(d + issue), v2.eq(v1),
                         ot.eq(rshift_round(rd.r_data.as_signed(), sl)), v6.eq(v5),
                         y.eq(saturate(rshift_round(otr, u.out_shift), u.vector.resid_bits)),
                         cnt.eq(Mux(full, 0, cnt) + v6)]
            with m.If(v6):
                m.d.sync += [r.eq(s) for r, s in zip(coll, coll[1:] + [y])]
        # the divisions, after the pipeline (their counter resets take precedence): a head's
        # 1/l once the last merge has written its l (``lready`` heads so far); the next
        # head's starts while this head's elements leave (its result waits in the divider)
        def divide(head):
            m.d.comb += [div.i.valid.eq(1), div.i.payload.num.eq(1 << (2 * RL)),
                         div.i.payload.den.eq(pick(self.lden, head))]
            return pick(self.lshift, head)
        nstart = Signal()                              # the next head's division started
        sl_next = Signal.like(sl)
        start_now = Signal()
        with m.If((state == Phase.DIVIDE) & (self.lready > hh)):
            shift = divide(hh)
            with m.If(div.i.ready):
                m.d.sync += [sl.eq(shift), state.eq(Phase.RECIP)]
        with m.If(out & ~nstart & (hh != g - 1) & (self.lready > hh + 1)):
            nshift = divide(hh + 1)
            m.d.comb += start_now.eq(div.i.ready)
            with m.If(div.i.ready):
                m.d.sync += [nstart.eq(1), sl_next.eq(nshift)]
        with m.If(state == Phase.RECIP):
            m.d.comb += div.o.ready.eq(1)
            with m.If(div.o.valid):
                m.d.sync += [recip.eq(div.o.payload.quo), d.eq(0), ob.eq(0), cnt.eq(0),
                             state.eq(Phase.OUT)]
        m.d.comb += [self.out.valid.eq(ov), self.out.payload.last.eq(olast)]
        m.d.comb += [self.out.payload.elems[k].eq(oelems[k]) for k in range(L)]
        with m.If(self.out.ready):
            m.d.sync += ov.eq(0)
        with m.If(move):
            m.d.sync += [ov.eq(1), olast.eq((hh == g - 1) & (ob == NB - 1)),
                         ob.eq(Mux(ob == NB - 1, 0, ob + 1))]
            m.d.sync += [r.eq(s) for r, s in zip(oelems, coll)]
        # once a head's last beat is formed the next head takes its started division's
        # result (or divides now); the job ends when its last beat is taken
        with m.If(out & move & (ob == NB - 1) & (hh != g - 1)):
            m.d.sync += [hh.eq(hh + 1), nstart.eq(0)]
            with m.If(nstart | start_now):
                m.d.sync += [sl.eq(Mux(nstart, sl_next, nshift)), state.eq(Phase.RECIP)]
            with m.Else():
                m.d.sync += state.eq(Phase.DIVIDE)
        with m.If(out & ov & olast & self.out.ready):
            m.d.sync += [hh.eq(0), state.eq(Phase.IDLE)]
