"""The attention unit: one query token's attention for one KV head and its group of query
heads, exactly ``codec.intattention.attend`` (docs/NUMERIC.md, "Attention"); ports and
timing in hw/ATTENTION.md.

A job (``cmd``: N keys) loads the group's g int8 query heads (``q``), then streams the KV
head's cache in blocks of ``AttentionConfig.block`` keys (``kv``: a block's K rows, then
its V rows) and ends with the g normalized output heads (``out``). Nothing holds the whole
context: per head the unit keeps the online softmax's running max m, sum l and output
accumulator o (head_dim elements), and per block the block's logits z.

Datapath, per accepted ``kv`` beat of ``lanes`` int8 elements (one beat per cycle):

* acceptance: the beat is registered (stage 1); on a V row's first beat the row's weights
  w_h = rshift_round(p_h · m_v, e_v + FR - OVF), p_h = 2^(z_h - m_h), are formed for the
  g heads from the logits of the block and the row's step, and l_h += p_h;
* stage 1, K: g dot products of ``lanes`` int8 products each (q_h's beat times the row's
  beat) accumulate the g scores; after a row's last beat the scores go to
* stage 2, K: the logits z_h = clamp(rshift_round(s_h · m_c,h · m_k, e_c,h + e_k + 2 FR - SF))
  into the block's logit registers, and the block's running maxima;
* stage 1, V: o_h += w_h · v for the beat's ``lanes`` elements (on a block's first row
  the accumulator is first rescaled, rshift_round(o_h · c_h, PF), or starts at 0 in the
  first block).

Between a block's K and V rows one cycle (SOFT) forms, per head, m' = max(m, block max),
c = 2^(m - m') and l = rshift_round(l · c, PF). At the end each head's 1/l comes from a
restoring divider (hw/divider.py) and its output beats are
sat(rshift_round(rshift_round(o, sl) · R, 2 RL + OVF - FR)).

Errors (sticky ``err``; the job still runs to its end so the streams stay aligned): a
command of 0 or more than ``max_context`` keys (dropped); an int8 element -128; a step
mantissa outside [2^(B-1), 2^B) (not normalized); a logit shift below 0 or a weight shift
left of ``w_left_max`` (a scale outside the contract's range, which the golden reference
refuses too).
"""
from __future__ import annotations

import enum

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from ..attentionports import attention_ports
from ..attentionunit import AttentionUnitConfig
from ..vectorports import EXP_BITS
from .divider import RestoringDivider
from .fixedops import bitlen, clamp, rshift_round, saturate, scale_mul
from .indexing import pick, step, write
from .signature import members

#: right shifts beyond 63 give 0 for every operand of the contract (|x| < 2^62)
MAX_SHIFT = 63


class Phase(enum.Enum):
    """The control states, in the order a job passes them (hw/ATTENTION.md, "Timing")."""

    IDLE = 0
    QLOAD = 1
    KROWS = 2
    KDRAIN = 3
    SOFT = 4
    VROWS = 5
    VDRAIN = 6
    DIVIDE = 7
    RECIP = 8
    OUT = 9


def exp2neg(a, table, sf: int, pf: int, lut_bits: int):
    """2^-a for a >= 0 with ``sf`` fraction bits -> 0..2^pf (``codec.intsoftmax.exp2neg``,
    LUT method): the integer part k shifts, the fraction indexes the table."""
    k = a >> sf
    f = a[:sf]
    idx = rshift_round(f, sf - lut_bits)[:lut_bits + 1]
    base = pick([Const(v, pf + 1) for v in table], idx)
    kk = Mux(k > pf + 1, pf + 2, k)[:max(1, (pf + 2).bit_length())]
    return Mux(k > pf + 1, 0, rshift_round(base, kk))


def shift_signed(x, sh, right_max: int, left_max: int):
    """rshift_round(x, sh) for sh >= 0 (clamped at ``right_max``), x << -sh for sh < 0
    (at most ``left_max``); ``sh`` a signed value."""
    rs = Mux(sh > right_max, right_max, sh)[:max(1, right_max.bit_length())]
    ls = Mux(-sh > left_max, left_max, -sh)[:max(1, left_max.bit_length())]
    return Mux(sh >= 0, rshift_round(x, rs), x << ls)


class AttentionUnit(wiring.Component):
    """Ports (tritforge/attentionports.py): ``cmd``, ``q``, ``kv`` in; ``out``; ``err``, ``busy``."""

    def __new__(cls, ucfg: AttentionUnitConfig):
        if not isinstance(ucfg, AttentionUnitConfig):
            raise TypeError(f"AttentionUnit ucfg must be an AttentionUnitConfig, not {ucfg!r}")
        if ucfg.attention.exp_method != "lut":
            raise ValueError(f"AttentionUnit exp_method {ucfg.attention.exp_method!r}: the RTL "
                             "builds the 'lut' method")
        return super().__new__(cls)

    def __init__(self, ucfg: AttentionUnitConfig):
        self.ucfg = ucfg
        super().__init__(members(attention_ports(ucfg)))

    def elaborate(self, platform):
        u = self.ucfg
        a, v = u.attention, u.vector
        g, NB, L, blk = u.group, u.beats, u.lanes, a.block
        B, SF, PF, RL = a.scale_bits, a.score_frac_bits, a.prob_frac_bits, a.recip_bits
        zlim = (1 << (a.score_int_bits + SF)) - 1
        floor = -2 * (zlim + 1)
        Mc, ec = u.query_constant
        table = u.exp_table
        m = Module()
        m.submodules.div = div = RestoringDivider(u.quotient_bits, RL + 1)

        def per_head(shape, name, init=0):
            return [Signal(shape, name=f"{name}{h}", init=init) for h in range(g)]

        beat = data.ArrayLayout(signed(8), L)
        ebits = EXP_BITS + 3
        # job state
        keys = Signal(u.keys_bits)
        j0 = Signal(u.keys_bits + 1)               # first key of the block
        bk = Signal(range(blk + 1))                # keys in the block
        jj = Signal(range(blk))                    # row within the block
        bb = Signal(range(NB))                     # beat within the row
        hh = Signal(range(g))                      # head (query load, output)
        first_block = Signal()
        err = Signal()
        # per head
        qmem = [Signal(8 * L, name=f"q{i}") for i in range(g * NB)]
        cm, ce = per_head(B, "cm"), per_head(signed(ebits), "ce")
        acc, score = per_head(signed(u.score_bits), "acc"), per_head(signed(u.score_bits), "score")
        zbuf = [[Signal(signed(u.z_bits), name=f"z{h}_{j}") for j in range(blk)] for h in range(g)]
        bmax, mrun = per_head(signed(u.z_bits), "bmax", floor), per_head(signed(u.z_bits), "m", floor)
        cfac, lsum = per_head(u.p_bits, "c"), per_head(u.l_bits, "l")
        w = per_head(signed(u.w_bits), "w")
        omem = [[Signal(signed(u.o_bits), name=f"o{i}_{k}") for k in range(L)] for i in range(g * NB)]
        # stage 1: the accepted kv beat
        s1 = Signal()
        s1_elems = Signal(beat)
        s1_b = Signal(range(NB))
        s1_first, s1_last, s1_v = Signal(), Signal(), Signal()
        s1_mode = Signal(2)                        # V: 0 accumulate, 1 rescale first, 2 start at 0
        s1_j = Signal(range(blk))
        row_m, row_e = Signal(B), Signal(signed(EXP_BITS))
        # stage 2: logits
        s2 = Signal()
        s2_j = Signal(range(blk))
        s2_m, s2_e = Signal(B), Signal(signed(EXP_BITS))
        # normalization
        sl = Signal(range(u.l_bits + 1))
        recip = Signal(u.quotient_bits)

        m.d.comb += [self.err.eq(err)]

        def check_beat(payload, first):
            bad = Const(0)
            for k in range(L):
                bad = bad | (payload.elems[k] == -128)
            bad = bad | (first & ~payload.m[B - 1])
            with m.If(bad):
                m.d.sync += err.eq(1)

        # ---- stage 1 ----------------------------------------------------------------
        with m.If(s1 & ~s1_v):
            for h in range(g):
                qb = pick(qmem[h * NB:(h + 1) * NB], s1_b)
                dot = sum(qb.word_select(k, 8).as_signed() * s1_elems[k] for k in range(L))
                nxt = Mux(s1_first, 0, acc[h]) + dot
                m.d.sync += acc[h].eq(nxt)
                with m.If(s1_last):
                    m.d.sync += score[h].eq(nxt)
            m.d.sync += [s2.eq(s1_last), s2_j.eq(s1_j), s2_m.eq(row_m), s2_e.eq(row_e)]
        with m.Else():
            m.d.sync += s2.eq(0)
        with m.If(s1 & s1_v):
            # one rescale and one update multiplier per (head, lane): the beat's accumulator
            # is selected, updated and written back
            for h in range(g):
                for k in range(L):
                    regs = [omem[h * NB + b][k] for b in range(NB)]
                    o = Signal(signed(u.o_bits), name=f"osel{h}_{k}")
                    upd = Signal(signed(u.o_bits), name=f"oupd{h}_{k}")
                    m.d.comb += o.eq(pick(regs, s1_b))
                    rescaled = rshift_round(o * cfac[h], PF)
                    base = Mux(s1_mode == 0, o, Mux(s1_mode == 1, rescaled, 0))
                    m.d.comb += upd.eq(base + w[h] * s1_elems[k])
                    write(m, regs, s1_b, upd)

        # ---- stage 2: logits ---------------------------------------------------------
        with m.If(s2):
            for h in range(g):
                sh = Signal(signed(ebits + 2), name=f"zsh{h}")
                z = Signal(signed(u.z_bits), name=f"zval{h}")
                prod = score[h] * cm[h] * s2_m
                m.d.comb += [sh.eq(ce[h] + s2_e + u.z_shift_fixed),
                             z.eq(clamp(Mux(sh < 0, prod, shift_signed(prod, sh, MAX_SHIFT, 0)), zlim))]
                with m.If(sh < 0):
                    m.d.sync += err.eq(1)
                write(m, zbuf[h], s2_j, z)
                m.d.sync += bmax[h].eq(Mux(z > bmax[h], z, bmax[h]))

        # ---- control ---------------------------------------------------------------------
        drain = Signal(2)
        m.d.comb += self.busy.eq(1)
        state = Signal(Phase)
        with m.If(state == Phase.IDLE):
            m.d.comb += [self.cmd.ready.eq(1), self.busy.eq(0)]
            with m.If(self.cmd.valid):
                n = self.cmd.payload.keys
                with m.If((n == 0) | (n > a.max_context)):
                    m.d.sync += err.eq(1)
                with m.Else():
                    m.d.sync += [keys.eq(n), j0.eq(0), bk.eq(Mux(n > blk, blk, n)),
                                 hh.eq(0), bb.eq(0), jj.eq(0), first_block.eq(1)]
                    m.d.sync += [mrun[h].eq(floor) for h in range(g)]
                    m.d.sync += state.eq(Phase.QLOAD)
        with m.If(state == Phase.QLOAD):
            m.d.comb += self.q.ready.eq(1)
            with m.If(self.q.valid):
                p = self.q.payload
                check_beat(p, bb == 0)
                write(m, qmem, hh * NB + bb, p.elems)
                with m.If(bb == 0):
                    qm, qe = scale_mul(m, p.m, p.e, Const(Mc, B), ec, B, "qscale")
                    write(m, cm, hh, qm)
                    write(m, ce, hh, qe)
                with m.If(step(m, bb, hh, NB - 1, g - 1)):
                    m.d.sync += state.eq(Phase.KROWS)
        with m.If(state == Phase.KROWS):
            m.d.comb += self.kv.ready.eq(1)
            with m.If(self.kv.valid):
                p = self.kv.payload
                check_beat(p, bb == 0)
                m.d.sync += [s1.eq(1), s1_elems.eq(p.elems), s1_b.eq(bb), s1_first.eq(bb == 0),
                             s1_last.eq(bb == NB - 1), s1_v.eq(0), s1_j.eq(jj)]
                with m.If(bb == 0):
                    m.d.sync += [row_m.eq(p.m), row_e.eq(p.e)]
                    with m.If(jj == 0):
                        m.d.sync += [bmax[h].eq(floor) for h in range(g)]
                step(m, bb, jj, NB - 1, bk - 1)
                with m.If((bb == NB - 1) & (jj == bk - 1)):
                    m.d.sync += drain.eq(2)
                    m.d.sync += state.eq(Phase.KDRAIN)
            with m.Else():
                m.d.sync += s1.eq(0)
        with m.If(state == Phase.KDRAIN):
            m.d.sync += [s1.eq(0), drain.eq(drain - 1)]
            with m.If(drain == 1):
                m.d.sync += state.eq(Phase.SOFT)
        with m.If(state == Phase.SOFT):
            for h in range(g):
                mn = Mux(bmax[h] > mrun[h], bmax[h], mrun[h])
                c = Signal(u.p_bits, name=f"cnew{h}")
                m.d.comb += c.eq(exp2neg((mn - mrun[h]).as_unsigned(), table, SF, PF, a.exp_lut_bits))
                m.d.sync += [mrun[h].eq(mn), cfac[h].eq(c),
                             lsum[h].eq(Mux(first_block, 0, rshift_round(lsum[h] * c, PF)))]
            m.d.sync += state.eq(Phase.VROWS)
        with m.If(state == Phase.VROWS):
            m.d.comb += self.kv.ready.eq(1)
            with m.If(self.kv.valid):
                p = self.kv.payload
                check_beat(p, bb == 0)
                m.d.sync += [s1.eq(1), s1_elems.eq(p.elems), s1_b.eq(bb), s1_v.eq(1),
                             s1_mode.eq(Mux(jj == 0, Mux(first_block, 2, 1), 0))]
                with m.If(bb == 0):
                    wsh = Signal(signed(ebits + 2), name="wsh")
                    m.d.comb += wsh.eq(p.e + u.w_shift_fixed)
                    with m.If(wsh < -u.w_left_max):
                        m.d.sync += err.eq(1)
                    for h in range(g):
                        ph = Signal(u.p_bits, name=f"p{h}")
                        m.d.comb += ph.eq(exp2neg((mrun[h] - pick(zbuf[h], jj)).as_unsigned(), table, SF, PF,
                                                  a.exp_lut_bits))
                        m.d.sync += [w[h].eq(shift_signed(ph * p.m, wsh, MAX_SHIFT, u.w_left_max)),
                                     lsum[h].eq(lsum[h] + ph)]
                step(m, bb, jj, NB - 1, bk - 1)
                with m.If((bb == NB - 1) & (jj == bk - 1)):
                    nj = j0 + bk
                    m.d.sync += [j0.eq(nj), first_block.eq(0),
                                 bk.eq(Mux(keys - nj > blk, blk, keys - nj))]
                    with m.If(nj == keys):
                        m.d.sync += state.eq(Phase.VDRAIN)
                    with m.Else():
                        m.d.sync += state.eq(Phase.KROWS)
            with m.Else():
                m.d.sync += s1.eq(0)
        with m.If(state == Phase.VDRAIN):
            m.d.sync += [s1.eq(0), state.eq(Phase.DIVIDE)]
        with m.If(state == Phase.DIVIDE):
            lh = Mux(pick(lsum, hh) == 0, 1, pick(lsum, hh))
            shift = Signal(range(u.l_bits + 1), name="lshift")
            nl = bitlen(m, lh, "lbits")
            m.d.comb += [shift.eq(Mux(nl > RL, nl - RL, 0)),
                         div.i.valid.eq(1), div.i.payload.num.eq(1 << (2 * RL)),
                         div.i.payload.den.eq(rshift_round(lh, shift))]
            with m.If(div.i.ready):
                m.d.sync += [sl.eq(shift), state.eq(Phase.RECIP)]
        with m.If(state == Phase.RECIP):
            m.d.comb += div.o.ready.eq(1)
            with m.If(div.o.valid):
                m.d.sync += [recip.eq(div.o.payload.quo), bb.eq(0)]
                m.d.sync += state.eq(Phase.OUT)
        with m.If(state == Phase.OUT):
            m.d.comb += [self.out.valid.eq(1),
                         self.out.payload.last.eq((hh == g - 1) & (bb == NB - 1))]
            for k in range(L):
                ot = rshift_round(pick([omem[i][k] for i in range(g * NB)], hh * NB + bb), sl)
                m.d.comb += self.out.payload.elems[k].eq(
                    saturate(rshift_round(ot * recip, u.out_shift), v.resid_bits))
            with m.If(self.out.ready):
                with m.If(step(m, bb, hh, NB - 1, g - 1)):
                    m.d.sync += state.eq(Phase.IDLE)
                with m.Elif(bb == NB - 1):
                    m.d.sync += state.eq(Phase.DIVIDE)
        with m.If(state >= len(Phase)):      # unreachable encodings
            m.d.sync += state.eq(Phase.IDLE)
        return m
