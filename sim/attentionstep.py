"""Per-cycle stepping model of the attention unit (hw/attention.py), its cycle reference.

``AttentionStepModel(ucfg).step(inputs) -> outputs``: given the values driven in one
cycle (``Inputs``: ``rst``, each input stream's valid and payload fields, ``out_ready``;
records made from the unit's port set, ``tritforge.attentionports``), it returns what the
RTL shows in that cycle (``Outputs``: each ready, ``out``'s valid and payload — None while
``out`` is not valid, where the stream rule leaves it undefined —, ``err``, ``busy``) and
takes the clock edge. Written from hw/ATTENTION.md, never importing Amaranth;
tests/test_attentionstep.py compares it with the RTL in every cycle under random
valid/ready, garbage payloads on idle cycles and resets in the middle of jobs.

Mirrored structure: the states of hw/ATTENTION.md ("Timing"); stage 1 (the accepted
``kv`` beat: K dot products or V accumulation) and stage 2 (logits) behind the acceptance;
the restoring divider's Q + 1 cycles from acceptance to result; every register kept at its
RTL width (wrapped), so even a job with bad input (``err``) matches cycle for cycle. A
synchronous reset returns every register to its initial value.
"""
from __future__ import annotations

from dataclasses import field, make_dataclass

import numpy as np

from ..attentionports import attention_ports
from ..attentionunit import AttentionUnitConfig, bits_of
from ..vectorports import EXP_BITS
from ..codec.intsoftmax import exp2neg as golden_exp2neg
from ..ports import IN, OUT, record_fields
from .elementstep import rshift_round, wrap

#: the states in order (hw/attention.py's ``Phase``)
PHASES = ("IDLE", "QLOAD", "KROWS", "KDRAIN", "SOFT", "VROWS", "VDRAIN", "DIVIDE", "RECIP", "OUT")
MAX_SHIFT = 63

_PORTS = attention_ports(AttentionUnitConfig())
Inputs = make_dataclass("AttentionInputs", [(n, t, field(default=t())) for n, t in record_fields(_PORTS, IN)])
Outputs = make_dataclass("AttentionOutputs", record_fields(_PORTS, OUT))


class AttentionStepModel:
    #: the input record type (``rst``, each input's valid and fields, ``out_ready``)
    Inputs = Inputs

    def __init__(self, ucfg: AttentionUnitConfig):
        self.u = ucfg
        self.ports = attention_ports(ucfg)
        a = ucfg.attention
        self.zlim = (1 << (a.score_int_bits + a.score_frac_bits)) - 1
        self.floor = -2 * (self.zlim + 1)
        self.Mc, self.ec = ucfg.query_constant
        self.ebits = EXP_BITS + 3
        self._reset()

    def _reset(self) -> None:
        u = self.u
        g, NB, L, blk = u.group, u.beats, u.lanes, u.attention.block
        self.state = "IDLE"
        self.keys = self.j0 = self.bk = self.jj = self.bb = self.hh = 0
        self.first_block = False
        self.err = False
        self.qmem = [[0] * L for _ in range(g * NB)]
        self.cm, self.ce = [0] * g, [0] * g
        self.acc, self.score = [0] * g, [0] * g
        self.zbuf = [[0] * blk for _ in range(g)]
        self.bmax, self.mrun = [self.floor] * g, [self.floor] * g
        self.cfac, self.lsum, self.w = [0] * g, [0] * g, [0] * g
        self.omem = [[0] * L for _ in range(g * NB)]
        self.s1 = False
        self.s1_elems, self.s1_b, self.s1_first, self.s1_last = [0] * L, 0, False, False
        self.s1_v, self.s1_mode, self.s1_j = False, 0, 0
        self.row_m = self.row_e = 0
        self.s2, self.s2_j, self.s2_m, self.s2_e = False, 0, 0, 0
        self.drain = 0
        self.sl = self.recip = 0
        self.div_left = 0

    # ---- the unit's arithmetic, at RTL widths --------------------------------------
    def _exp2neg(self, a: int) -> int:
        return int(golden_exp2neg(np.array([-a], dtype=np.int64), self.u.attention)[0])

    def _shift_signed(self, x: int, sh: int, left_max: int) -> int:
        return rshift_round(x, min(sh, MAX_SHIFT)) if sh >= 0 else x << min(-sh, left_max)

    def _out_elems(self) -> tuple:
        u = self.u
        row = self.omem[self.hh * u.beats + self.bb]
        out = []
        for o in row:
            v = rshift_round(rshift_round(o, self.sl) * self.recip, u.out_shift)
            hi = (1 << (u.vector.resid_bits - 1)) - 1
            out.append(max(-hi - 1, min(hi, v)))
        return tuple(out)

    def outputs(self) -> Outputs:
        st = self.state
        out_valid = st == "OUT"
        u = self.u
        return Outputs(cmd_ready=st == "IDLE", q_ready=st == "QLOAD", kv_ready=st in ("KROWS", "VROWS"),
                       out_valid=out_valid,
                       out_elems=self._out_elems() if out_valid else None,
                       out_last=(self.hh == u.group - 1 and self.bb == u.beats - 1) if out_valid else None,
                       err=self.err, busy=st != "IDLE")

    def step(self, inp: Inputs) -> Outputs:
        out = self.outputs()
        if inp.rst:
            self._reset()
        else:
            self._edge(inp)
        return out

    def _check_beat(self, elems, m: int, first: bool) -> None:
        if any(e == -128 for e in elems) or (first and not m >> (self.u.attention.scale_bits - 1)):
            self.err = True

    def _edge(self, inp: Inputs) -> None:
        u = self.u
        a = u.attention
        g, NB, blk = u.group, u.beats, a.block
        B, PF, RL = a.scale_bits, a.prob_frac_bits, a.recip_bits
        new = {}                                   # register -> next value (later wins)
        err = self.err
        # stage 1
        if self.s1 and not self.s1_v:
            acc, score = list(self.acc), list(self.score)
            for h in range(g):
                dot = sum(q * e for q, e in zip(self.qmem[h * NB + self.s1_b], self.s1_elems))
                nxt = wrap((0 if self.s1_first else self.acc[h]) + dot, u.score_bits)
                acc[h] = nxt
                if self.s1_last:
                    score[h] = nxt
            new.update(acc=acc, score=score, s2=self.s1_last, s2_j=self.s1_j, s2_m=self.row_m,
                       s2_e=self.row_e)
        else:
            new["s2"] = False
        if self.s1 and self.s1_v:
            omem = [list(r) for r in self.omem]
            for h in range(g):
                row = omem[h * NB + self.s1_b]
                for k, o in enumerate(row):
                    base = (o if self.s1_mode == 0 else rshift_round(o * self.cfac[h], PF)
                            if self.s1_mode == 1 else 0)
                    row[k] = wrap(base + self.w[h] * self.s1_elems[k], u.o_bits)
            new["omem"] = omem
        # stage 2
        if self.s2:
            zbuf, bmax = [list(r) for r in self.zbuf], list(self.bmax)
            for h in range(g):
                sh = self.ce[h] + self.s2_e + u.z_shift_fixed
                prod = self.score[h] * self.cm[h] * self.s2_m
                z = prod if sh < 0 else rshift_round(prod, min(sh, MAX_SHIFT))
                z = max(-self.zlim, min(self.zlim, z))
                if sh < 0:
                    err = True
                zbuf[h][self.s2_j] = z
                bmax[h] = max(bmax[h], z)
            new.update(zbuf=zbuf, bmax=bmax)
        # control
        st = self.state
        if st == "IDLE":
            if inp.cmd_valid:
                n = inp.cmd_keys
                if n == 0 or n > a.max_context:
                    err = True
                else:
                    new.update(keys=n, j0=0, bk=min(n, blk), hh=0, bb=0, jj=0, first_block=True,
                               mrun=[self.floor] * g, state="QLOAD")
        elif st == "QLOAD":
            if inp.q_valid:
                elems = list(inp.q_elems)
                self._check_beat(elems, inp.q_m, self.bb == 0)
                qmem = [list(r) for r in self.qmem]
                qmem[self.hh * NB + self.bb] = elems
                new["qmem"] = qmem
                if self.bb == 0:
                    prod = inp.q_m * self.Mc
                    top = prod >> (2 * B - 1) & 1
                    cm, ce = list(self.cm), list(self.ce)
                    cm[self.hh] = prod >> B if top else (prod >> (B - 1)) & ((1 << B) - 1)
                    ce[self.hh] = wrap(inp.q_e + self.ec - (B if top else B - 1), self.ebits)
                    new.update(cm=cm, ce=ce)
                self._advance_qhead(new, "KROWS")
        elif st == "KROWS":
            if inp.kv_valid:
                elems = list(inp.kv_elems)
                self._check_beat(elems, inp.kv_m, self.bb == 0)
                new.update(s1=True, s1_elems=elems, s1_b=self.bb, s1_first=self.bb == 0,
                           s1_last=self.bb == NB - 1, s1_v=False, s1_j=self.jj)
                if self.bb == 0:
                    new.update(row_m=inp.kv_m, row_e=inp.kv_e)
                    if self.jj == 0:
                        new["bmax"] = [self.floor] * g
                self._step_row(new)
                if self.bb == NB - 1 and self.jj == self.bk - 1:
                    new.update(drain=2, state="KDRAIN")
            else:
                new["s1"] = False
        elif st == "KDRAIN":
            new.update(s1=False, drain=self.drain - 1)
            if self.drain == 1:
                new["state"] = "SOFT"
        elif st == "SOFT":
            mrun, cfac, lsum = list(self.mrun), list(self.cfac), list(self.lsum)
            for h in range(g):
                mn = max(self.bmax[h], self.mrun[h])
                c = self._exp2neg(mn - self.mrun[h])
                mrun[h], cfac[h] = mn, c
                lsum[h] = 0 if self.first_block else wrap(rshift_round(self.lsum[h] * c, PF), u.l_bits, False)
            new.update(mrun=mrun, cfac=cfac, lsum=lsum, state="VROWS")
        elif st == "VROWS":
            if inp.kv_valid:
                elems = list(inp.kv_elems)
                self._check_beat(elems, inp.kv_m, self.bb == 0)
                new.update(s1=True, s1_elems=elems, s1_b=self.bb, s1_v=True,
                           s1_mode=(2 if self.first_block else 1) if self.jj == 0 else 0)
                if self.bb == 0:
                    wsh = inp.kv_e + u.w_shift_fixed
                    if wsh < -u.w_left_max:
                        err = True
                    w, lsum = list(self.w), list(self.lsum)
                    for h in range(g):
                        p = self._exp2neg(self.mrun[h] - self.zbuf[h][self.jj])
                        w[h] = wrap(self._shift_signed(p * inp.kv_m, wsh, u.w_left_max), u.w_bits)
                        lsum[h] = wrap(self.lsum[h] + p, u.l_bits, False)
                    new.update(w=w, lsum=lsum)
                self._step_row(new)
                if self.bb == NB - 1 and self.jj == self.bk - 1:
                    nj = self.j0 + self.bk
                    new.update(j0=nj, first_block=False, bk=min(blk, self.keys - nj),
                               state="VDRAIN" if nj == self.keys else "KROWS")
            else:
                new["s1"] = False
        elif st == "VDRAIN":
            new.update(s1=False, state="DIVIDE")
        elif st == "DIVIDE":
            lh = self.lsum[self.hh] or 1
            nl = bits_of(lh) if lh else 0
            shift = nl - RL if nl > RL else 0
            den = rshift_round(lh, shift) & ((1 << (RL + 1)) - 1)
            new.update(sl=shift, state="RECIP", div_left=u.quotient_bits,
                       div_quo=(1 << (2 * RL)) // den if den else (1 << u.quotient_bits) - 1)
        elif st == "RECIP":
            if self.div_left == 0:
                new.update(recip=self.div_quo, bb=0, state="OUT")
            else:
                new["div_left"] = self.div_left - 1
        elif st == "OUT":
            if inp.out_ready:
                self._advance_qhead(new, "IDLE", more="DIVIDE")
        new["err"] = err or self.err
        for k, v in new.items():
            setattr(self, k, v)

    def _advance_qhead(self, new: dict, done: str, more: str | None = None) -> None:
        """The (head, beat) counter of QLOAD and OUT."""
        u = self.u
        new["bb"] = self.bb + 1
        if self.bb == u.beats - 1:
            new["bb"] = 0
            new["hh"] = self.hh + 1
            if self.hh == u.group - 1:
                new.update(hh=0, state=done)
            elif more:
                new["state"] = more

    def _step_row(self, new: dict) -> None:
        new["bb"] = self.bb + 1
        if self.bb == self.u.beats - 1:
            new["bb"] = 0
            new["jj"] = 0 if self.jj == self.bk - 1 else self.jj + 1
