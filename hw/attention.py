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

* **K** (a K beat per cycle): the beat and the head's query word (q and -q, from a small
  memory per head at the beat's index), the g dot products as partial products in logic
  and a pipelined adder tree, the score accumulated over the row; per row and head the logit
  z = clamp(rshift_round(s · m_c · m_k, e_c + e_k + 2 FR - SF)) through two multipliers
  and a two-step shift into the block's logit memory, and the block's maximum.
* **SOFT** (per block): m' = max(m, block max), c = 2^(m - m') (``Exp2Neg``).
* **V** (a V beat per cycle): per row and head p = 2^(z - m') and l_b += p, the weight
  w = rshift_round(p · m_v, e_v + FR - OVF) through a multiplier and a two-step shift into
  one register per product; per beat the g · lanes products w · v added into the block's
  sums o_b (per head and lane a LUT RAM of one word per beat, the beat's word read a cycle
  before its products, written back with them added).
* **merge** (per block, one element per cycle, beside the next block's K rows): o and l
  live in block RAM, g · (head_dim + 1) words (read through the block's output register);
  each is read, scaled,
  o = rshift_round(o · c, PF) + o_b (o = o_b in the first block), and written back; o_b
  is read from its LUT RAM and selected over two register stages (the next block's first
  V row writes its sums without reading them, so nothing clears them).

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

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed
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
from .replica import KEEP_PREFIX, RegisterReplicas, replicas
from .signature import members
from .treesum import partial_products, tree_sum

#: right shifts beyond 63 give 0 for every operand of the contract (|x| < 2^62)
MAX_SHIFT = 63
ALWAYS = Const(1)


#: copies of the output's enables (``_OutEnable``): the control, the memory read, o_t,
#: o_t · R, the rounding and saturation, two for the beat being formed and two for the
#: output register (a half of the lanes each)
OUT_ENABLE_COPIES = 9


class _OutEnable(Elaboratable):
    """One copy of the output's enables from its own copies of ``full`` (a beat is formed)
    and ``ov`` (the output register holds a beat): ``move`` (the formed beat moves into the
    output register), ``en`` (the element pipeline advances) and ``en_v`` (``en`` and the
    input ``v``). Named with hw.replica's ``KEEP_PREFIX``, so synthesis keeps the copies
    apart and each drives a share of the loads."""

    def __init__(self):
        self.full, self.ov, self.ready, self.v = Signal(), Signal(), Signal(), Signal(init=1)
        self.en, self.move, self.en_v = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.move.eq(self.full & (~self.ov | self.ready)), self.en.eq(~self.full | self.move),
                     self.en_v.eq(self.en & self.v)]
        return m


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

    def at(self, phase: Phase):
        """The job is in ``phase`` (its one-hot state's bit)."""
        return self.state[phase.value]

    def go(self, phase: Phase):
        """The state's next value: ``phase``."""
        return self.state.eq(1 << phase.value)

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

        # job state: one-hot, a flip-flop per ``Phase`` (``at``, ``go``), so that each phase's
        # decode is a register and each bit's next value only the transitions into and out
        # of its own phase
        self.state = Signal(len(Phase), init=1 << Phase.IDLE.value)
        self.sticky = Signal()
        self.keys = Signal(u.keys_bits)
        self.j0 = Signal(u.keys_bits + 1)              # first key of the block
        self.bk = Signal(range(blk + 1))               # keys in the block
        self.bklast = Signal(range(blk))               # bk - 1
        self.jj = Signal(range(blk))                   # row within the block
        self.bb = Signal(range(NB))                    # beat within the row
        self.bbl = Signal(init=int(NB == 1))           # bb == NB - 1 (``_control``)
        self.jjl = Signal()                            # jj == bklast
        self.hh = Signal(range(g))                     # head (query load, output)
        self.mwait = Signal(range(u.merge_wait))       # cycles until the merge is done
        self.ofirst = Signal()                         # the first block's merge: o = o_b
        self.lready = Signal(range(g + 1))             # heads whose l the last merge has written
        # per head
        self.cm = [Signal(B, name=f"cm{h}") for h in range(g)]
        self.ce = [Signal(signed(EXP_BITS + 3), name=f"ce{h}") for h in range(g)]
        self.mrun = [Signal(signed(u.z_bits), name=f"m{h}", init=self.floor) for h in range(g)]
        self.mold = [Signal(signed(u.z_bits), name=f"mold{h}") for h in range(g)]
        self.bmax = [Signal(signed(u.z_bits), name=f"bmax{h}", init=self.floor) for h in range(g)]
        self.cfac = [Signal(u.p_bits, name=f"c{h}") for h in range(g)]
        # per head the divisor of the last merge's l: l_t and its shift sl (``_divisors``)
        self.lden = [Signal(a.recip_bits + 1, name=f"lden{h}") for h in range(g)]
        self.lshift = [Signal(range(u.l_bits + 1), name=f"lshift{h}") for h in range(g)]
        # the block's sums: per head l_b (a register) and o_b, a LUT RAM per head and lane of
        # one word per beat (``_v_path``), read at ``sum_addr`` by the V beats and the merge
        self.lsum = [Signal(signed(u.l_bits), name=f"lb{h}") for h in range(g)]
        # (the read address a register copy per memory, loaded with its next value: the
        # merge's beat while it runs, else the V beat's index a cycle ahead)
        self.sum_addr_next = Signal(range(NB))
        self.sum_addr = replicas(m, "sum_raddr", self.sum_addr_next, g * u.lanes)
        self.zmem = []
        for h in range(g):
            z = memory.Memory(shape=signed(u.z_bits), depth=blk, init=[])
            m.submodules[f"zmem{h}"] = z
            self.zmem.append((z.read_port(), z.write_port()))

        m.d.comb += [self.err.eq(self.sticky), self.busy.eq(~self.at(Phase.IDLE))]
        with m.If(self.mwait != 0):
            m.d.sync += self.mwait.eq(self.mwait - 1)
        self._control(m)
        self._checks(m)
        self._k_path(m)
        self._v_path(m)
        self._merge(m)
        self._output(m)
        return m

    # ---- checks on an accepted beat ------------------------------------------------------
    def _checks(self, m):
        """The checks of an accepted q or kv beat, from registers of the beat (free-running
        beside a flag of its acceptance): err rises a cycle after the beat."""
        u = self.ucfg
        B = u.attention.scale_bits
        bad = Const(0)
        for stream, accept in ((self.q, self.q.valid & self.q.ready),
                               (self.kv, self.kv.valid & self.kv.ready)):
            # the lanes' -128 tests before the register (a flag per lane), their OR after it
            acc, first, mtop, minus128 = Signal(), Signal(), Signal(), Signal(u.lanes)
            m.d.sync += [acc.eq(accept), first.eq(self.bb == 0), mtop.eq(stream.payload.m[B - 1]),
                         minus128.eq(Cat(e == -128 for e in stream.payload.elems))]
            bad = bad | acc & (minus128.any() | first & ~mtop)
        # a V row's weight shift left of w_left_max
        vfirst, wleft = Signal(), Signal()
        m.d.sync += [vfirst.eq(self.v_accept & (self.bb == 0)),
                     wleft.eq(self.kv.payload.e + u.w_shift_fixed < -u.w_left_max)]
        with m.If(bad | vfirst & wleft):
            m.d.sync += self.sticky.eq(1)

    # ---- control: query load, row counters, phases ---------------------------------------
    def _control(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, blk = u.group, u.beats, a.block
        B = a.scale_bits
        Mc, ec = u.query_constant
        keys, j0, bk, jj, bb, hh = self.keys, self.j0, self.bk, self.jj, self.bb, self.hh
        # the query heads' words: per head a memory of B words, written in QLOAD at the beat's
        # index, read at the K beat's; a word holds the lanes' q and -q (9 bits)
        self.qmem = []
        qword = data.StructLayout({"q": data.ArrayLayout(signed(8), u.lanes),
                                   "nq": data.ArrayLayout(signed(9), u.lanes)})
        for h in range(g):
            qm = memory.Memory(shape=qword, depth=NB, init=[])
            m.submodules[f"qmem{h}"] = qm
            self.qmem.append((qm.read_port(), qm.write_port()))
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
        with m.If(self.at(Phase.IDLE)):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                # the job's registers load from any command (their enables are the state
                # and the command's valid); only the state waits for the command's checks:
                # a refused one leaves the unit idle, its loads unused
                n = self.cmd.payload.keys
                first_last = Mux(n > blk, blk - 1, n - 1)
                m.d.sync += [keys.eq(n), j0.eq(0), bk.eq(Mux(n > blk, blk, n)),
                             self.bklast.eq(first_last), hh.eq(0), bb.eq(0), jj.eq(0),
                             self.bbl.eq(NB == 1), self.jjl.eq(first_last == 0),
                             self.ofirst.eq(1), self.mwait.eq(0)]
                with m.If((n == 0) | (n > a.max_context)):
                    m.d.sync += self.sticky.eq(1)
                with m.Else():
                    m.d.sync += self.go(Phase.QLOAD)
        # the running maxima start at the floor the cycle after a command is taken (a
        # flip-flop per head, not the command's checks, enables their reset): QLOAD's first
        # cycle, long before SOFT or the V path reads them; after a refused command too,
        # harmlessly (the unit is idle and the next job clears them again)
        mclr = replicas(m, "mclr", self.at(Phase.IDLE) & self.cmd.valid, g)
        for h in range(g):
            with m.If(mclr[h]):
                m.d.sync += self.mrun[h].eq(self.floor)
        # the query words' writes: registered when B > 1 (the last word written, B - 1, is
        # read no earlier than B - 1 cycles after QLOAD's last beat)
        qwen = Signal()
        wen, wh, waddr = Signal(), Signal.like(hh), Signal.like(bb)
        wq = Signal.like(self.q.payload.elems)
        m.d.comb += [wen.eq(qwen), wh.eq(hh), waddr.eq(bb), wq.eq(self.q.payload.elems)]
        if NB > 1:
            wen, wh, waddr, wq = (delay(m, ALWAYS, x, 1, n) for x, n in
                                  ((wen, "qwen"), (wh, "qwh"), (waddr, "qwa"), (wq, "qwq")))
        for h, (_, qw) in enumerate(self.qmem):
            m.d.comb += [qw.addr.eq(waddr), qw.data.q.eq(wq), qw.en.eq(wen & (wh == h))]
            m.d.comb += [qw.data.nq[k].eq(-wq[k]) for k in range(u.lanes)]
        with m.If(self.at(Phase.QLOAD)):
            m.d.comb += self.q.ready.eq(1)
            with m.If(self.q.valid):
                p = self.q.payload
                m.d.comb += qwen.eq(1)
                with m.If(bb == 0):
                    m.d.sync += [qs_go.eq(1), qs_h.eq(hh), qs_m.eq(p.m), qs_e.eq(p.e)]
                with m.If(step(m, bb, hh, NB - 1, g - 1)):
                    m.d.sync += self.go(Phase.KROWS)
        # a K or V beat's walk over the block: bb, jj and two flip-flops beside them,
        # bbl (bb == NB - 1) and jjl (jj == bklast), so that the block's last beat is the AND
        # of two registers (``block_end``), not two compares behind the state's decode
        bbl, jjl = self.bbl, self.jjl
        self.block_end = block_end = Signal()
        m.d.comb += block_end.eq(bbl & jjl)
        next_bbl = Const(1) if NB == 1 else (bb == NB - 2)

        def walk():
            m.d.sync += [bb.eq(bb + 1), bbl.eq(next_bbl)]
            with m.If(bbl):
                m.d.sync += [bb.eq(0), jj.eq(jj + 1), jjl.eq(jj + 1 == self.bklast)]
                with m.If(jjl):
                    m.d.sync += [jj.eq(0), jjl.eq(self.bklast == 0)]

        with m.If(self.at(Phase.QLOAD)):
            with m.If(self.q.valid):
                m.d.sync += bbl.eq(next_bbl)
        with m.If(self.at(Phase.KROWS)):
            m.d.comb += [self.kv.ready.eq(1), self.k_accept.eq(self.kv.valid)]
            with m.If(self.kv.valid):
                walk()
                with m.If(block_end):
                    m.d.sync += [drain.eq(u.k_drain - 2), self.go(Phase.KDRAIN)]
        # SOFT's first cycle and SOFT itself as flip-flops, a copy per head (``soft_first``,
        # ``soft_on``): the heads' running maxima and exponential arguments switch on them,
        # not on a decode of the state
        enter_soft = Signal()
        m.d.comb += enter_soft.eq(self.at(Phase.KDRAIN) & (drain == 0) & (self.mwait == 0))
        sfirst = replicas(m, "soft_first", enter_soft, g)
        self.soft_on = replicas(m, "soft_on", enter_soft | self.at(Phase.SOFT) & (soft != u.soft_cycles - 1), g)
        with m.If(self.at(Phase.KDRAIN)):
            m.d.sync += drain.eq(drain - (drain != 0))
            with m.If(enter_soft):
                m.d.sync += [soft.eq(0), self.go(Phase.SOFT)]
        # m' = max(m, block max) and the previous m kept; c = 2^(m - m') from the next cycle
        for h in range(g):
            with m.If(sfirst[h]):
                m.d.sync += [self.mrun[h].eq(Mux(self.bmax[h] > self.mrun[h], self.bmax[h], self.mrun[h])),
                             self.mold[h].eq(self.mrun[h])]
        with m.If(self.at(Phase.SOFT)):
            m.d.sync += soft.eq(soft + 1)
            with m.If(soft == u.soft_cycles - 1):
                m.d.sync += [c.eq(e.p) for c, e in zip(self.cfac, self.exps)]
                m.d.sync += self.go(Phase.VROWS)
        # the next block's first key and the keys left after it, from registers that change
        # only at a block's end (free-running: settled long before the next block's end)
        nj, rest = Signal.like(j0), Signal(signed(len(keys) + 1))
        rest_m1 = Signal(signed(len(keys) + 1))
        nbk, nbklast, nbk1, rest0 = Signal.like(bk), Signal.like(self.bklast), Signal(), Signal()
        m.d.sync += [nj.eq(j0 + bk), rest.eq(keys - nj), rest_m1.eq(keys - nj - 1),
                     nbk.eq(Mux(rest > blk, blk, rest)), nbklast.eq(Mux(rest > blk, blk - 1, rest_m1)),
                     nbk1.eq(nbklast == 0), rest0.eq(rest == 0)]
        with m.If(self.at(Phase.VROWS)):
            m.d.comb += [self.kv.ready.eq(1), self.v_accept.eq(self.kv.valid)]
            with m.If(self.kv.valid):
                walk()
                with m.If(block_end):
                    m.d.sync += [j0.eq(nj), bk.eq(nbk), self.bklast.eq(nbklast), jjl.eq(nbk1),
                                 self.mwait.eq(u.merge_wait - 2)]
                    with m.If(rest0):
                        m.d.sync += [fin.eq(u.final_wait - 2), self.lready.eq(0), self.go(Phase.FINAL)]
                    with m.Else():
                        m.d.sync += self.go(Phase.KROWS)
        with m.If(self.at(Phase.FINAL)):
            m.d.sync += fin.eq(fin - 1)
            with m.If(fin == 0):
                m.d.sync += [hh.eq(0), self.go(Phase.DIVIDE)]

    # ---- K: dot products, scores, logits -------------------------------------------------
    def _k_path(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, L = u.group, u.beats, u.lanes
        B, SF = a.scale_bits, a.score_frac_bits
        zlim = (1 << (a.score_int_bits + SF)) - 1
        beat = data.ArrayLayout(signed(8), L)
        p = self.kv.payload
        # stage 1: the beat and each head's query word (read at the beat's index)
        v1, first, last = Signal(), Signal(), Signal()
        elems = Signal(beat)
        km, ke, kj = Signal(B), Signal(signed(EXP_BITS)), Signal(range(a.block))
        qw = []
        # the block maxima's clear after the block's first K beat, a flip-flop per head
        bclear = replicas(m, "bclear", self.k_accept & (self.bb == 0) & (self.jj == 0), g)
        # free-running: the stages' registers take every cycle's beat, v1 says which is one
        m.d.sync += [v1.eq(self.k_accept), elems.eq(p.elems), first.eq(self.bb == 0),
                     last.eq(self.bb == NB - 1), km.eq(p.m), ke.eq(p.e), kj.eq(self.jj)]
        for qr, _ in self.qmem:
            m.d.comb += qr.addr.eq(self.bb)
            qw.append(qr.data)
        # the dot products: 8 partial products per lane (multiplexers of q and -q), an adder
        # tree of dot_stages stages
        dots = []
        for h in range(g):
            terms = [t for k in range(L) for t in partial_products(qw[h].q[k], elems[k], qw[h].nq[k])]
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
        # the logits: the score registered once more (by the multipliers), s · m_c, then
        # · m_k, then the two-step rounding shift, the rounding, the clamp; the shift decoded
        # per row and head beside the multipliers
        go3, zm3 = delay(m, ALWAYS, zgo, MUL_LATENCY + 1, "zgo"), delay(m, ALWAYS, zm, MUL_LATENCY + 1, "zm")
        go6 = delay(m, ALWAYS, go3, MUL_LATENCY, "zgo3")
        T = u.logit_tail
        zjw = delay(m, ALWAYS, zj, 2 * MUL_LATENCY + T, "zj")
        gow = delay(m, ALWAYS, go6, T - 1, "zgo6")
        for h in range(g):
            pa = self._mul(m, f"sc{h}", u.score_bits, B + 1, delay(m, ALWAYS, score[h], 1, f"sm{h}"), self.cm[h])
            pb = self._mul(m, f"sk{h}", u.score_bits + B + 1, B + 1, pa, zm3)
            sh = Signal(signed(EXP_BITS + 5), name=f"zsh{h}")
            rs2, neg2 = Signal(6, name=f"zrs{h}"), Signal(name=f"zneg{h}")
            m.d.sync += [sh.eq(self.ce[h] + ze + u.z_shift_fixed),
                         rs2.eq(Mux(sh < 0, 0, Mux(sh > MAX_SHIFT, MAX_SHIFT, sh))), neg2.eq(sh < 0)]
            rs, neg = (delay(m, ALWAYS, x, 2 * MUL_LATENCY - 1, f"{x.name}_") for x in (rs2, neg2))
            with m.If(go6 & neg):
                m.d.sync += self.sticky.eq(1)
            y1 = Signal(signed(len(pb) + 1), name=f"zy1_{h}")
            y2 = Signal(signed(len(pb) + 1), name=f"zy2_{h}")
            y3 = Signal(signed(len(pb)), name=f"zy3_{h}")
            lo = Signal(3, name=f"zlo{h}")
            m.d.sync += [y1.eq((pb << 1) >> (rs & 0x38)), lo.eq(rs[:3]), y2.eq(y1 >> lo),
                         y3.eq((y2 + 1) >> 1)]
            # z in two copies: one for the logit memory's write, one beside the maximum
            m.submodules[f"z{h}"] = zr = RegisterReplicas(u.z_bits, 2)
            m.d.comb += [zr.d.eq(clamp(y3, zlim)), zr.en.eq(1)]
            zw, zc = (zr.q[k].as_signed() for k in range(2))
            _, wr = self.zmem[h]
            m.d.comb += [wr.addr.eq(zjw), wr.data.eq(zw), wr.en.eq(gow)]
            with m.If(gow & (zc > self.bmax[h])):
                m.d.sync += self.bmax[h].eq(zc)
            # cleared from a flip-flop a cycle after the block's first K beat (its first logit
            # comes dot_stages + 2 MUL_LATENCY + logit_tail cycles later): a synchronous reset
            with m.If(bclear[h]):
                m.d.sync += self.bmax[h].eq(self.floor)

    # ---- V: weights, products, the block's sums ------------------------------------------
    def _v_path(self, m):
        u = self.ucfg
        a = u.attention
        g, NB, L = u.group, u.beats, u.lanes
        B = a.scale_bits
        beat = data.ArrayLayout(signed(8), L)
        p = self.kv.payload
        lmax = u.w_left_max
        # stage 1, free-running (v1 says which cycle holds a beat); stage 2: the weight's
        # shift decoded
        v1, blast, row0 = Signal(), Signal(), Signal()
        # the beat's elements, step and first flag in a kept register module of their own:
        # as plain registers Yosys merges them with the K path's identical free-running
        # ones, one set of flip-flops for two pipelines placed apart
        stage = data.StructLayout({"elems": beat, "m": B, "first": 1})
        vstage = data.View(stage, replicas(m, "v_beat", Cat(p.elems.as_value(), p.m, self.bb == 0), 1)[0])
        elems, vm, first = vstage.elems, vstage.m, vstage.first
        bi = Signal.like(self.bb)
        wsh = Signal(signed(EXP_BITS + 2))
        m.d.sync += [v1.eq(self.v_accept), wsh.eq(p.e + u.w_shift_fixed), bi.eq(self.bb),
                     row0.eq(self.v_accept & (self.jj == 0)),
                     blast.eq(self.block_end)]
        rs2, neg2, ls2 = Signal(6), Signal(), Signal(max(1, lmax.bit_length()))
        m.d.sync += [rs2.eq(Mux(wsh < 0, 0, Mux(wsh > MAX_SHIFT, MAX_SHIFT, wsh))), neg2.eq(wsh < 0),
                     ls2.eq(Mux(wsh >= 0, 0, Mux(-wsh > lmax, lmax, -wsh)))]
        # the exponential's argument: m - z of the row's logit, or m - m' in SOFT
        for h in range(g):
            rd, _ = self.zmem[h]
            m.d.comb += [rd.addr.eq(self.jj),
                         self.exps[h].a.eq((self.mrun[h] - Mux(self.soft_on[h], self.mold[h], rd.data)).as_unsigned())]
        E = EXP_LATENCY
        P = 1 + E                                      # p of the beat's row
        W = P + MUL_LATENCY                            # p · m_v
        S = W + u.weight_stages                        # the row's weight (or pm, v << ls)
        vP, fP, vmP, rowP = (delay(m, ALWAYS, x, E, n) for x, n in
                             ((v1, "vp"), (first, "vfp"), (vm, "vmp"), (row0, "vrowp")))
        rsW = delay(m, ALWAYS, rs2, W - 2, "vrs")
        negR, lsR = (delay(m, ALWAYS, x, W, n) for x, n in ((neg2, "vneg"), (ls2, "vlsr")))
        lsL = delay(m, ALWAYS, ls2, S - 3, "vls")
        vL, fL = delay(m, ALWAYS, v1, S - 2, "vl"), delay(m, ALWAYS, first, S - 2, "vfl")
        eL = delay(m, ALWAYS, elems, S - 2, "vel")
        load = vL & fL                                 # a row's first beat: its weight is loaded
        # ... and a copy of that per product, for the weight registers' enables (hw.replica)
        loads = replicas(m, "wload", delay(m, ALWAYS, v1 & first, S - 3, "vlf"), g * L)
        dsp = u.pv_multiplier != "lut"
        vs = []
        if dsp:
            # the row's left shift, applied to the beat's elements (common to the g heads)
            lsrow = Signal.like(lsL)
            with m.If(load):
                m.d.sync += lsrow.eq(lsL)
            lscur = Mux(fL, lsL, lsrow)
            vs = [Signal(signed(8 + lmax), name=f"vs{k}") for k in range(L)]
            m.d.sync += [vs[k].eq(eL[k] << lscur) for k in range(L)]
        else:
            eS = delay(m, ALWAYS, eL, 1, "ves")
        prods = []
        for h in range(g):
            ph = self.exps[h].p
            with m.If(vP & fP):                        # l_b: p alone in the block's first row
                m.d.sync += self.lsum[h].eq(Mux(rowP, 0, self.lsum[h]) + ph)
            pm = self._mul(m, f"pm{h}", u.p_bits + 1, B + 1, ph, vmP)
            # w: the right shift in two steps and the rounding, or the left shift (which the
            # "dsp" products move onto v: w · v = pm · (v << ls), operands of at most 18 bits
            # but pm); then one register of the row's weight per product (hw.replica)
            r1 = Signal(2 * B + 2, name=f"wr1_{h}")
            r2 = Signal(2 * B + 2, name=f"wr2_{h}")
            pm1 = Signal(2 * B + 1, name=f"wpm{h}")
            pm2 = Signal(2 * B + 1, name=f"wpm2_{h}")
            lo = Signal(3, name=f"wlo{h}")
            m.d.sync += [r1.eq((pm[:2 * B + 1] << 1) >> (rsW & 0x38)), lo.eq(rsW[:3]),
                         pm1.eq(pm[:2 * B + 1]), r2.eq(r1 >> lo), pm2.eq(pm1)]
            wsum = Signal(signed(u.w_bits), name=f"wsum{h}")
            m.d.sync += wsum.eq(Mux(negR, pm2 if dsp else pm2 << lsR, (r2 + 1) >> 1))
            m.submodules[f"w{h}"] = wrow = RegisterReplicas(u.w_bits, L, enables=L)
            m.d.comb += [wrow.d.eq(wsum), wrow.en.eq(Cat(*loads[h * L:(h + 1) * L]))]
            ws = [wrow.q[k].as_signed() for k in range(L)]
            if dsp:
                prods.append([self._dsp_product(m, ws[k], vs[k], f"pv{h}_{k}") for k in range(L)])
            else:
                prods.append([self._lut_product(m, ws[k], eS[k], f"pv{h}_{k}") for k in range(L)])
        # the block's sums o_b: per head and lane a LUT RAM of one word per beat. A V beat's
        # word is read a cycle before its products (at ``sum_addr``, which the merge takes
        # while it runs) into a register, 0 instead in the block's first V row; the register
        # plus the products is written back at the beat's index. The next read of that index
        # is NB - 1 cycles after the write at the earliest, so with one beat per row the
        # written sum is forwarded. Write enables and first-row flags are copies, one per
        # memory (hw.replica).
        A = S + MUL_LATENCY                            # the products
        assert A >= 3
        vA1 = delay(m, ALWAYS, v1, A - 2, "vadd")
        vA, bA = Signal(), delay(m, ALWAYS, blast, A - 1, "vb")
        m.d.sync += vA.eq(vA1)
        self.v_block_end = vA & bA
        self.sum_vaddr_next = delay(m, ALWAYS, bi, A - 3, "vbi")
        iA1 = delay(m, ALWAYS, self.sum_vaddr_next, 1, "vbi1")   # the read address, a cycle early
        mems = g * L
        waddr = replicas(m, "vbia", iA1, mems)        # the write address a cycle later, per memory
        adds = replicas(m, "vadd", vA1, mems)
        zeros = replicas(m, "vrow0", delay(m, ALWAYS, row0, A - 3, "vrow0"), mems)
        self.sum_words = []
        for h in range(g):
            words = []
            for k in range(L):
                n = h * L + k
                mem = memory.Memory(shape=signed(u.o_bits), depth=NB, init=[])
                m.submodules[f"osum{h}_{k}"] = mem
                rp, wp = mem.read_port(domain="comb"), mem.write_port()
                word = Signal(signed(u.o_bits), name=f"osw{h}_{k}")
                cur = rp.data if NB > 1 else Mux(wp.en, wp.data, rp.data)
                m.d.comb += rp.addr.eq(self.sum_addr[n])
                m.d.sync += word.eq(Mux(zeros[n], 0, cur))
                m.d.comb += [wp.addr.eq(waddr[n]), wp.data.eq(word + prods[h][k]), wp.en.eq(adds[n])]
                words.append(word)
            self.sum_words.append(words)

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
        g, hd, n, NB, L = u.group, u.head_dim, u.merge_elements, u.beats, u.lanes
        PF = u.attention.prob_frac_bits
        active = Signal()
        i = Signal(range(n))
        head, elem = Signal(range(g)), Signal(range(hd + 1))
        mb, mk = Signal(range(NB)), Signal(range(L))   # the element's beat and lane (elem > 0)
        final = Signal()                               # the job's last merge (its l count)
        at_last = Signal()                             # i == n - 1, a register
        isl = Signal()
        m.d.comb += isl.eq(elem == 0)
        with m.If(self.v_block_end):
            m.d.sync += [i.eq(0), at_last.eq(n == 1), head.eq(0), elem.eq(0), mk.eq(0),
                         final.eq(self.at(Phase.FINAL))]
        # active and the element's beat from their next values (the block sums' read
        # address copies load them too)
        active_nx, mb_nx = Signal(), Signal.like(mb)
        m.d.comb += [active_nx.eq(Mux(active & at_last, 0, Mux(self.v_block_end, 1, active))),
                     mb_nx.eq(Mux(active & ~isl & (mk == L - 1), Mux(mb == NB - 1, 0, mb + 1),
                                  Mux(self.v_block_end, 0, mb)))]
        m.d.sync += [active.eq(active_nx), mb.eq(mb_nx)]
        rd = self.o_rd
        m.d.comb += [rd.r_addr.eq(i), rd.r_en.eq(1)]
        # the element's block sum: the LUT RAMs read at its beat (registered), its lane's word
        # (registered), then its head's word or the head's l_b, O_READ_LATENCY + 1 cycles on;
        # the V beats take the memories' address when the merge does not
        m.d.comb += self.sum_addr_next.eq(Mux(active_nx, mb_nx, self.sum_vaddr_next))
        h1s, l1s = (delay(m, ALWAYS, s, 1, f"msel{nm}") for s, nm in ((head, "h"), (isl, "l")))
        # the lane select registered in a copy per head (each drives its head's 8:1 selects)
        ksel = replicas(m, "msel_lane", mk, g)
        lane = [Signal(signed(u.o_bits), name=f"mlane{h}") for h in range(g)]
        m.d.sync += [lane[h].eq(pick(self.sum_words[h], ksel[h])) for h in range(g)]
        h2s, l2s = delay(m, ALWAYS, h1s, 1, "mselh1"), delay(m, ALWAYS, l1s, 1, "msell1")
        obs = Signal(signed(u.o_bits))
        m.d.sync += obs.eq(Mux(l2s, pick(self.lsum, h2s), pick(lane, h2s)))
        # the element's state beside its read (O_READ_LATENCY cycles)
        first = Signal()                               # the l of a head, in the last merge
        m.d.comb += first.eq(isl & final)
        v1, h1, i1, l1 = (delay(m, ALWAYS, s, O_READ_LATENCY, f"m{nm}r") for s, nm in
                          ((active, "v"), (head, "h"), (i, "i"), (first, "l")))
        with m.If(active):
            m.d.sync += [i.eq(i + 1), at_last.eq(i == n - 2)]
            step(m, elem, head, hd, g - 1)
            with m.If(~isl):
                m.d.sync += mk.eq(Mux(mk == L - 1, 0, mk + 1))
        oc = self._mul(m, "mc", u.o_bits, u.p_bits + 1, rd.r_data.as_signed(), pick(self.cfac, h1))
        v4, h4, i4, l4 = (delay(m, ALWAYS, s, MUL_LATENCY, f"m{nm}") for s, nm in
                          ((v1, "v"), (h1, "h"), (i1, "i"), (l1, "l")))
        ob5 = delay(m, ALWAYS, obs, O_READ_LATENCY + MUL_LATENCY - 2, "mob")
        v5, h5, i5, l5 = (delay(m, ALWAYS, s, 1, f"m{nm}4") for s, nm in
                          ((v4, "v"), (h4, "h"), (i4, "i"), (l4, "l")))
        r5 = Signal(signed(u.o_bits + 1))
        m.d.sync += r5.eq(Mux(self.ofirst, 0, rshift_round(oc, PF)))
        res = Signal(signed(u.o_bits))
        m.d.sync += res.eq(r5 + ob5)
        v6, h6, i6, l6 = (delay(m, ALWAYS, s, 1, f"m{nm}5") for s, nm in
                          ((v5, "v"), (h5, "h"), (i5, "i"), (l5, "l")))
        for buf in self.obufs:
            m.d.comb += [buf.w_addr.eq(i6), buf.w_data.eq(res), buf.w_en.eq(v6)]
        # the last merge's l: each head's divisor
        self._divisors(m, v6 & l6, h6, res[:u.l_bits])
        with m.If(v6 & (i6 == n - 1)):
            m.d.sync += self.ofirst.eq(0)

    def _divisors(self, m, valid, head, lval):
        """A head's divisor from the l the merge writes, ``den_stages`` registers later:
        l registered, lh = max(l, 1), its bit length (``bitlen_staged``), the shift
        sl = max(0, bitlen - RL), 2 lh >> sl; then l_t (its rounding) and sl written into the
        head's ``lden``, ``lshift`` and ``lready`` counted."""
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
        # l_t = rshift_round(lh, sl): (2 lh) >> sl, then the rounding
        t5 = Signal(u.l_bits + 1)
        sh5, v5, h5 = (delay(m, ALWAYS, x, 1, n) for x, n in ((sh4, "lsh4"), (v4, "lv4"), (h4, "lh4d")))
        m.d.sync += t5.eq((lh4 << 1) >> sh4)
        with m.If(v5):
            write(m, self.lden, h5, ((t5 + 1) >> 1)[:RL + 1])
            write(m, self.lshift, h5, sh5)
            m.d.sync += self.lready.eq(self.lready + 1)

    # ---- the end: 1/l per head, the output elements --------------------------------------
    def _output(self, m):
        u = self.ucfg
        g, NB, L, hd = u.group, u.beats, u.lanes, u.head_dim
        RL = u.attention.recip_bits
        hh = self.hh
        m.submodules.div = div = Divider(u.quotient_bits, RL + 1, primitives=self.primitives)
        sl = Signal(range(u.l_bits + 1))
        recip = Signal(u.quotient_bits)
        d = Signal(range(hd + 1))                      # elements read
        ob = Signal(range(NB))                         # the head's beats formed
        cnt = Signal(range(L + 1))                     # elements collected for the next beat
        coll = [Signal(signed(u.vector.resid_bits), name=f"coll{k}") for k in range(L)]
        ov, olast = Signal(), Signal()                 # the output register
        oelems = [Signal(signed(u.vector.resid_bits), name=f"out{k}") for k in range(L)]
        full = Signal()                                # cnt == L, a register
        # the pipeline's advance (en) and a formed beat's move into the output register,
        # each group of loads from its own copy (``_OutEnable``, with copies of full and ov)
        copies = []
        for k in range(OUT_ENABLE_COPIES):
            m.submodules[f"{KEEP_PREFIX}out_en{k}"] = c = _OutEnable()
            m.d.comb += c.ready.eq(self.out.ready)
            copies.append(c)
        en, move = copies[0].en, copies[0].move
        en_mem, en_ot, en_mul, en_y = (c.en for c in copies[1:5])
        # the element pipeline: read (at an address register beside d), o_t in two shift
        # steps and the rounding, o_t · R, the rounding, the saturation, into the beat
        out = self.at(Phase.OUT)
        issue = out & (d < hd)
        rd = self.o_out
        # the read address: 0 before the first head, then past each head's l to its elements
        # (a head's last element is followed by the next head's l)
        oaddr = Signal(range(u.merge_elements + 1))
        m.d.comb += [rd.r_addr.eq(oaddr), rd.r_en.eq(en_mem)]
        v1 = delay(m, en, issue, O_READ_LATENCY, "ovr")
        x1, lo = Signal(signed(u.o_bits + 1)), Signal(3)
        ot = Signal(signed(u.ot_bits))
        otr = self._mul(m, "mo", u.ot_bits, u.quotient_bits + 1, ot, recip, en_mul)
        vm = delay(m, en_y, v1, 2 + MUL_LATENCY, "ov")
        yr = Signal(signed(len(otr) - u.out_shift + 1))
        y = Signal(signed(u.vector.resid_bits))
        vy = delay(m, en_y, vm, 2, "ovy")
        cnt_next = Signal.like(cnt)
        m.d.comb += cnt_next.eq(Mux(full, 0, cnt) + vy)
        with m.If(en):
            m.d.sync += [d.eq(d + issue), oaddr.eq(oaddr + issue), cnt.eq(cnt_next)]
        with m.If(self.at(Phase.FINAL)):
            m.d.sync += oaddr.eq(0)
        with m.If(en_ot):
            m.d.sync += [x1.eq((rd.r_data.as_signed() << 1) >> Cat(Const(0, 3), sl[3:])), lo.eq(sl[:3]),
                         ot.eq(((x1 >> lo) + 1) >> 1)]
        with m.If(en_y):
            m.d.sync += [yr.eq(rshift_round(otr, u.out_shift)), y.eq(saturate(yr, u.vector.resid_bits))]
        m.d.comb += [copies[5].v.eq(vy), copies[6].v.eq(vy)]
        nxt = coll[1:] + [y]
        for k in range(L):
            with m.If(copies[5 + 2 * k // L].en_v):
                m.d.sync += coll[k].eq(nxt[k])
        # the divisions, after the pipeline (their counter resets take precedence): a head's
        # 1/l once the last merge has written its l (``lready`` heads so far); the next
        # head's starts while this head's elements leave (its result waits in the divider)
        def divide(head):
            m.d.comb += [div.i.valid.eq(1), div.i.payload.num.eq(1 << (2 * RL)),
                         div.i.payload.den.eq(pick(self.lden, head))]
            return pick(self.lshift, head)
        # the divider's state as the control sees it: busy from a division's start until its
        # result is taken. Its i.ready also passes o.ready through (for a consumer that
        # takes a result and starts the next division in one cycle, which this control never
        # does: o.ready is high only in RECIP, i.valid never then), so the control decides
        # on this register instead, and no path leaves the state through the divider and
        # comes back
        div_busy, div_free = Signal(), Signal()
        with m.If(div.i.valid & div.i.ready):
            m.d.sync += div_busy.eq(1)
        with m.If(div.o.valid & div.o.ready):
            m.d.sync += div_busy.eq(0)
        m.d.comb += div_free.eq(~div_busy)
        nstart = Signal()                              # the next head's division started
        sl_next = Signal.like(sl)
        start_now = Signal()
        with m.If(self.at(Phase.DIVIDE) & (self.lready > hh)):
            shift = divide(hh)
            with m.If(div_free):
                m.d.sync += [sl.eq(shift), self.go(Phase.RECIP)]
        with m.If(out & ~nstart & (hh != g - 1) & (self.lready > hh + 1)):
            nshift = divide(hh + 1)
            m.d.comb += start_now.eq(div_free)
            with m.If(div_free):
                m.d.sync += [nstart.eq(1), sl_next.eq(nshift)]
        with m.If(self.at(Phase.RECIP)):
            m.d.comb += div.o.ready.eq(1)
            with m.If(div.o.valid):
                m.d.sync += [recip.eq(div.o.payload.quo), d.eq(0), oaddr.eq(oaddr + 1),
                             ob.eq(0), cnt.eq(0), self.go(Phase.OUT)]
        m.d.comb += [self.out.valid.eq(ov), self.out.payload.last.eq(olast)]
        m.d.comb += [self.out.payload.elems[k].eq(oelems[k]) for k in range(L)]
        # ov and full, and their copies, from their next values
        ov_next, full_next = Signal(), Signal()
        recip_take = self.at(Phase.RECIP) & div.o.valid
        m.d.comb += [ov_next.eq(Mux(move, 1, Mux(self.out.ready, 0, ov))),
                     full_next.eq(Mux(recip_take, 0, Mux(en, cnt_next == L, full)))]
        m.d.sync += [ov.eq(ov_next), full.eq(full_next)]
        ov_copies = replicas(m, "ov", ov_next, OUT_ENABLE_COPIES)
        full_copies = replicas(m, "full", full_next, OUT_ENABLE_COPIES)
        for k in range(OUT_ENABLE_COPIES):
            c = m.submodules[f"{KEEP_PREFIX}out_en{k}"]
            m.d.comb += [c.ov.eq(ov_copies[k]), c.full.eq(full_copies[k])]
        with m.If(move):
            m.d.sync += [olast.eq((hh == g - 1) & (ob == NB - 1)), ob.eq(Mux(ob == NB - 1, 0, ob + 1))]
        for k in range(L):
            with m.If(copies[7 + 2 * k // L].move):
                m.d.sync += oelems[k].eq(coll[k])
        # once a head's last beat is formed the next head takes its started division's
        # result (or divides now); the job ends when its last beat is taken
        with m.If(out & move & (ob == NB - 1) & (hh != g - 1)):
            m.d.sync += [hh.eq(hh + 1), nstart.eq(0)]
            with m.If(nstart | start_now):
                m.d.sync += [sl.eq(Mux(nstart, sl_next, nshift)), self.go(Phase.RECIP)]
            with m.Else():
                m.d.sync += self.go(Phase.DIVIDE)
        with m.If(out & ov & olast & self.out.ready):
            m.d.sync += [hh.eq(0), self.go(Phase.IDLE)]
