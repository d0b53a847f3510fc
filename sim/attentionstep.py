"""Per-cycle stepping model of the attention unit (hw/attention.py), its cycle reference.

``AttentionStepModel(ucfg).step(inputs) -> outputs``: given the values driven in one
cycle (``Inputs``: ``rst``, each input stream's valid and payload fields, ``out_ready``;
records made from the unit's port set, ``tritforge.attentionports``), it returns what the
RTL shows in that cycle (``Outputs``: each ready, ``out``'s valid and payload, ``err``,
``busy``) and takes the clock edge. Written from hw/ATTENTION.md, never importing
Amaranth; tests/test_attentionstep.py compares it with the RTL in every cycle under random
valid/ready, garbage payloads on idle cycles and resets in the middle of jobs.

What it mirrors: the control states and counters of hw/ATTENTION.md ("Timing": the K
drain, SOFT, the merge's wait, the final wait, the divider) with the stage counts of
``AttentionUnitConfig``; the output pipeline element by element (it stalls as a whole
while ``out`` is not taken); when ``err`` rises (a cycle after the accepted beat, or from
the logit pipeline ``k_drain - logit_tail`` cycles after a row's last beat). The arithmetic is the
contract's, per row and per block as the golden reference does it (docs/NUMERIC.md): the
pipelines only delay it. A job that raises ``err`` has an undefined output (the contract's
rule): its payload is None, which the lockstep does not compare.
"""
from __future__ import annotations

from dataclasses import field, make_dataclass

import numpy as np

from ..attentionports import attention_ports
from ..attentionunit import MUL_LATENCY, O_READ_LATENCY, AttentionUnitConfig, bits_of
from ..codec.intsoftmax import exp2neg as golden_exp2neg
from ..ports import IN, OUT, record_fields
from ..vectorports import EXP_BITS
from .elementstep import rshift_round, wrap

#: the states in order (hw/attention.py's ``Phase``)
PHASES = ("IDLE", "QLOAD", "KROWS", "KDRAIN", "SOFT", "VROWS", "FINAL", "DIVIDE", "RECIP", "OUT")
MAX_SHIFT = 63
#: output pipeline registers before the beat is formed: the read's, o_t's two, the
#: multiplier's, the rounding, the saturation; then the beat being formed and the output
#: register
OUT_STAGES = O_READ_LATENCY + 2 + MUL_LATENCY + 2

_PORTS = attention_ports(AttentionUnitConfig())
Inputs = make_dataclass("AttentionInputs", [(n, t, field(default=t())) for n, t in record_fields(_PORTS, IN)])
Outputs = make_dataclass("AttentionOutputs", record_fields(_PORTS, OUT))


class AttentionStepModel:
    #: the input record type (``rst``, each input's valid and fields, ``out_ready``)
    Inputs = Inputs

    def __init__(self, ucfg: AttentionUnitConfig):
        if ucfg.out_latency != OUT_STAGES + 2:
            raise ValueError("AttentionStepModel: out_latency differs from the modelled output pipeline")
        self.u = ucfg
        self.ports = attention_ports(ucfg)
        a = ucfg.attention
        self.zlim = (1 << (a.score_int_bits + a.score_frac_bits)) - 1
        self.floor = -2 * (self.zlim + 1)
        self.Mc, self.ec = ucfg.query_constant
        self._reset()

    def _reset(self) -> None:
        g = self.u.group
        self.cycle = 0
        self.err_at: set[int] = set()
        self.state = "IDLE"
        self.keys = self.j0 = self.bk = self.jj = self.bb = self.hh = 0
        self.err = False
        self.drain = self.soft = self.fin = self.mwait = 0
        self.q, self.cm, self.ce = [[] for _ in range(g)], [0] * g, [0] * g
        self.krows, self.vrows, self.row = [], [], []
        self.mrun, self.lsum = [self.floor] * g, [0] * g
        self.o = [[0] * self.u.head_dim for _ in range(g)]
        self.first_block = True
        self.sl = self.sl_next = self.recip = 0
        self.div = None                            # a division: (result valid from, quotient)
        self.nstart = False
        self.lready, self.lready_at = 0, []
        self.d = self.ob = self.cnt = 0
        self.pipe = [None] * OUT_STAGES
        self.coll = [0] * self.u.lanes
        self.ov, self.olast, self.oelems = False, False, (0,) * self.u.lanes

    # ---- the contract's arithmetic ---------------------------------------------------
    def _exp2neg(self, a: int) -> int:
        return int(golden_exp2neg(np.array([-a], dtype=np.int64), self.u.attention)[0])

    def _logit(self, h: int, k_elems, m_k: int, e_k: int) -> int:
        u = self.u
        s = sum(int(q) * int(k) for q, k in zip(self.q[h], k_elems))
        sh = self.ce[h] + e_k + u.z_shift_fixed
        z = rshift_round(s * self.cm[h] * m_k, min(max(sh, 0), MAX_SHIFT))
        return max(-self.zlim, min(self.zlim, z))

    def _block(self) -> None:
        """The block's softmax update and p·V (its K rows' logits, its V rows)."""
        u = self.u
        PF = u.attention.prob_frac_bits
        for h in range(u.group):
            zs = [self._logit(h, e, mk, ek) for e, mk, ek in self.krows]
            mn = max(self.mrun[h], max(zs))
            c = self._exp2neg(mn - self.mrun[h])
            ps = [self._exp2neg(mn - z) for z in zs]
            base_l = 0 if self.first_block else rshift_round(self.lsum[h] * c, PF)
            self.lsum[h] = wrap(base_l + sum(ps), u.l_bits, False)
            o = [0 if self.first_block else rshift_round(x * c, PF) for x in self.o[h]]
            for p, (v, mv, ev) in zip(ps, self.vrows):
                sh = ev + u.w_shift_fixed
                w = rshift_round(p * mv, min(sh, MAX_SHIFT)) if sh >= 0 else (p * mv) << min(-sh, u.w_left_max)
                o = [x + w * int(e) for x, e in zip(o, v)]
            self.o[h] = [wrap(x, u.o_bits) for x in o]
            self.mrun[h] = mn
        self.first_block = False
        self.krows, self.vrows = [], []

    def _element(self, d: int) -> int:
        u = self.u
        ot = wrap(rshift_round(self.o[self.hh][d], self.sl), u.ot_bits)
        v = rshift_round(ot * self.recip, u.out_shift)
        hi = (1 << (u.vector.resid_bits - 1)) - 1
        return max(-hi - 1, min(hi, v))

    # ---- one cycle ---------------------------------------------------------------------
    def outputs(self) -> Outputs:
        st = self.state
        valid = self.ov
        bad = self.err or bool(self.err_at)
        return Outputs(cmd_ready=st == "IDLE", q_ready=st == "QLOAD", kv_ready=st in ("KROWS", "VROWS"),
                       out_valid=valid,
                       out_elems=self.oelems if valid and not bad else None,
                       out_last=self.olast if valid else None,
                       err=self.err, busy=st != "IDLE")

    def step(self, inp: Inputs) -> Outputs:
        out = self.outputs()
        if inp.rst:
            self._reset()
        else:
            self._edge(inp)
            self.cycle += 1
        return out

    def _check_beat(self, elems, m: int, first: bool) -> None:
        """A beat's checks: err rises a cycle after the beat (the RTL checks registers)."""
        if any(e == -128 for e in elems) or (first and not m >> (self.u.attention.scale_bits - 1)):
            self.err_at.add(self.cycle + 1)

    def _edge(self, inp: Inputs) -> None:
        u = self.u
        a = u.attention
        g, blk = u.group, a.block
        B = a.scale_bits
        if self.cycle in self.err_at:
            self.err_at.discard(self.cycle)
            self.err = True
        mwait = self.mwait - 1 if self.mwait else 0
        st = self.state
        # the next head's division, started while this head's elements leave
        start_now = (st == "OUT" and not self.nstart and self.hh != g - 1
                     and self.lready > self.hh + 1 and self.div is None)
        if start_now:
            self.sl_next, self.nstart = self._divide(self.hh + 1), True
        if st == "IDLE":
            if inp.cmd_valid:
                n = inp.cmd_keys
                if n == 0 or n > a.max_context:
                    self.err = True
                else:
                    self.keys, self.j0, self.bk = n, 0, min(n, blk)
                    self.hh = self.bb = self.jj = 0
                    self.q = [[] for _ in range(g)]
                    self.mrun = [self.floor] * g
                    self.first_block, mwait, self.state = True, 0, "QLOAD"
        elif st == "QLOAD":
            if inp.q_valid:
                elems = list(inp.q_elems)
                self._check_beat(elems, inp.q_m, self.bb == 0)
                self.q[self.hh] += elems
                if self.bb == 0:
                    prod = inp.q_m * self.Mc
                    top = prod >> (2 * B - 1) & 1
                    self.cm[self.hh] = prod >> B if top else (prod >> (B - 1)) & ((1 << B) - 1)
                    self.ce[self.hh] = wrap(inp.q_e + self.ec - (B if top else B - 1), EXP_BITS + 3)
                if self._step(g - 1):
                    self.state = "KROWS"
        elif st in ("KROWS", "VROWS"):
            if inp.kv_valid:
                self._kv_beat(inp, st == "KROWS")
        elif st == "KDRAIN":
            if self.drain == 0 and self.mwait == 0:
                self.soft, self.state = 0, "SOFT"
            self.drain = max(self.drain - 1, 0)
        elif st == "SOFT":
            self.soft += 1
            if self.soft == u.soft_cycles:
                self.state = "VROWS"
        elif st == "FINAL":
            if self.fin == 0:
                self.hh, self.state = 0, "DIVIDE"
            self.fin -= 1
        elif st == "DIVIDE":
            if self.lready > self.hh and self.div is None:
                self.sl = self._divide(self.hh)
                self.state = "RECIP"
        elif st == "RECIP":
            if self.div is not None and self.cycle >= self.div[0]:
                self.recip, self.d, self.ob, self.cnt, self.state = self.div[1], 0, 0, 0, "OUT"
                self.div = None
        self._out_edge(inp, st == "OUT")
        self.lready += sum(1 for c in self.lready_at if c == self.cycle)
        if self._block_ended:
            mwait = u.merge_wait - 2
        self._block_ended = False
        self.mwait = mwait

    _block_ended = False

    def _kv_beat(self, inp: Inputs, k: bool) -> None:
        """An accepted K or V beat: its checks, its row, the counters, the block's end."""
        u = self.u
        g, NB = u.group, u.beats
        elems = list(inp.kv_elems)
        self._check_beat(elems, inp.kv_m, self.bb == 0)
        if self.bb == 0:
            if not k and inp.kv_e + u.w_shift_fixed < -u.w_left_max:
                self.err_at.add(self.cycle + 1)
            self.row = [elems, inp.kv_m, inp.kv_e]
        else:
            self.row[0] = self.row[0] + elems
        if self.bb == NB - 1:
            (self.krows if k else self.vrows).append(tuple(self.row))
            if k and any(self.ce[h] + self.row[2] + u.z_shift_fixed < 0 for h in range(g)):
                self.err_at.add(self.cycle + u.k_drain - u.logit_tail)
        if not self._step(self.bk - 1):
            return
        if k:
            self.drain, self.state = u.k_drain - 2, "KDRAIN"
            return
        self._block()
        nj = self.j0 + self.bk
        self.j0, self.bk = nj, min(u.attention.block, self.keys - nj)
        self._block_ended = True
        if nj == self.keys:
            self.fin, self.state = u.final_wait - 2, "FINAL"
            # head h's divisor of the last merge's l is written at this edge + v_latency + 1
            # + h·(head_dim + 1) + l_latency - 1
            m0 = self.cycle + u.v_latency + 1
            self.lready = 0
            self.lready_at = [m0 + h * (u.head_dim + 1) + u.l_latency - 1 for h in range(g)]
        else:
            self.state = "KROWS"

    def _divide(self, head: int) -> int:
        """Start the divider on head's l: its result valid Q + 1 cycles on; returns sl."""
        u = self.u
        RL = u.attention.recip_bits
        lh = self.lsum[head] or 1
        nl = bits_of(lh)
        shift = nl - RL if nl > RL else 0
        den = rshift_round(lh, shift) & ((1 << (RL + 1)) - 1)
        quo = (1 << (2 * RL)) // den if den else (1 << u.quotient_bits) - 1
        self.div = (self.cycle + u.quotient_bits + 1, quo)
        return shift

    def _out_edge(self, inp: Inputs, out: bool) -> None:
        """The output pipeline, the beat being formed and the output register (the register
        is emptied by ``out_ready`` in any state)."""
        u = self.u
        full = self.cnt == u.lanes
        move = full and (not self.ov or inp.out_ready)
        ov = self.ov and not inp.out_ready
        end = out and self.ov and self.olast and inp.out_ready
        if move:
            ov = True
            self.olast = self.hh == u.group - 1 and self.ob == u.beats - 1
            self.oelems = tuple(self.coll)
            if out and self.ob == u.beats - 1 and self.hh != u.group - 1:
                self.hh += 1
                if self.nstart:
                    self.sl, self.state = self.sl_next, "RECIP"
                else:
                    self.state = "DIVIDE"
                self.nstart = False
            self.ob = 0 if self.ob == u.beats - 1 else self.ob + 1
        if not full or move:
            last = self.pipe[-1]
            self.cnt = (0 if full else self.cnt) + (last is not None)
            if last is not None:
                self.coll = self.coll[1:] + [last]
            issue = out and self.d < u.head_dim
            self.pipe = [self._element(self.d) if issue else None] + self.pipe[:-1]
            self.d += issue
        if end:
            self.hh, self.state = 0, "IDLE"
        self.ov = ov

    def _step(self, outer_last: int) -> bool:
        """Advance (beat, then row in K/V or head in QLOAD) as ``hw.indexing.step``; True
        when both wrap."""
        rows = self.state in ("KROWS", "VROWS")
        outer = self.jj if rows else self.hh
        done = self.bb == self.u.beats - 1 and outer == outer_last
        if self.bb == self.u.beats - 1:
            self.bb = 0
            outer = 0 if outer == outer_last else outer + 1
            if rows:
                self.jj = outer
            else:
                self.hh = outer
        else:
            self.bb += 1
        return done
