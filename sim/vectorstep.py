"""Per-cycle stepping models of the vector unit's components (hw/VECTOR.md), their cycle
reference.

Each model's ``step(inputs) -> outputs`` takes the values driven in one cycle (its
``Inputs`` record: ``rst``, each input stream's valid and payload fields, each output's
ready; made from the unit's port set in ``tritforge.vectorports`` by
``sim.elementstep.records``), returns what the RTL shows in that cycle (every ready, each
output's valid and, while valid, its payload) and takes the clock edge. Written from
hw/VECTOR.md and the components' documented stages, never importing Amaranth or hw/;
tests/test_vectorstep.py compares each with the RTL in every cycle under random
valid/ready, garbage payloads on idle cycles and a reset in the middle of a vector.

The arithmetic is the golden reference's (codec.fixedpoint.quantize_int8 and scale_mul,
codec.intnorm.rsqrt, codec.introtary.apply_rope, codec.intact.silu_mul), computed where
the RTL's registers hold the values: an element pipeline's result when the element enters
it (``sim.elementstep.ElementPipe``; every value it reads then is held until the pipeline
has drained), the Int8Quantizer's x_q and step when its divider's result is handed over,
the RMSNorm's sum of squares beat by beat at the widths of its registers. Requantize is the
same formula in Python integers (the RTL's result is exact; numpy's int64 in
``fixedpoint.requantize`` wraps where a left shift leaves it).

A synchronous reset returns every register to its initial value (valid bits, counters,
states, held values); memories (buffers, RMSNorm's gamma) keep their contents, and a
memory write in the reset cycle still happens. Vectors are in the contract (|inputs| as
the port sets document, Int8Quantizer vectors of at most max_n elements).
"""
from __future__ import annotations

import functools
import operator

import numpy as np

from ..codec.fixedpoint import Q8, quantize_int8, scale_mul
from ..codec.intact import silu_mul
from ..codec.intnorm import rsqrt
from ..codec.introtary import apply_rope
from ..ports import bits_for
from ..vectorports import (EXP_BITS, divider_ports, eps_bits, int8quant_ports,
                           requant_ports, rmsnorm_ports, rope_ports, rsqrt_exp_bits, rsqrt_ports,
                           silumul_ports)
from ..vectortiming import (BITLEN_STAGES, INT8Q_OUT_STAGES, INT8Q_PREP_CYCLES, RMS_SCAN_STAGES, RMS_STEP_STAGES,
                            ROPE_STAGES, SILU_STAGES, requant_stages, rsqrt_latency)
from .elementstep import CreditPipe, ElementPipe, beat_field, lanes_of, records, rshift_round, saturate, wrap




class _Model:
    """``step``: the outputs of the current state (``_comb``), the memory writes of the
    cycle read from the current state (``_writes``), then the clock edge (the reset, or the
    registers' next values, ``_edge``), then the writes (a read in the same cycle sees the
    old word, as the RTL's read ports do; a write in a reset cycle still happens)."""

    def __init__(self, ports):
        self.ports = ports
        self.Inputs, self.Outputs = records(ports)
        self._reset()

    def step(self, inp):
        out = self._comb(inp)
        writes = self._writes(inp, out)
        if inp.rst:
            self._reset()
        else:
            self._edge(inp, out)
        for mem, addr, word in writes:
            mem[addr] = word
        return self.Outputs(**{k: v for k, v in out.items() if k in self.Outputs.__dataclass_fields__})

    def _writes(self, inp, out) -> list:
        """The cycle's memory writes, (memory, address, word)."""
        return []


# ---- Divider ------------------------------------------------------------------------------

class DividerStep(_Model):
    """hw/divider.py: the partial remainder r (signed, den_bits + 1) and the shift register
    q (quo_bits); on acceptance r = num >> quo_bits, q = num's low bits, then one
    non-restoring step per cycle (r = 2 r + q[top] -/+ den as r >= 0 / < 0, the bit
    r >= 0 or den = 0), the result on ``o`` until taken with rem = r (+ den where r < 0)."""

    def __init__(self, num_bits: int, den_bits: int, quo_bits: int | None = None):
        self.num_bits, self.den_bits = num_bits, den_bits
        self.Q = num_bits if quo_bits is None else quo_bits
        super().__init__(divider_ports(num_bits, den_bits, self.Q))

    def _reset(self) -> None:
        self.r = self.q = self.den = self.left = 0
        self.busy = False

    def comb(self, i_valid: bool, o_ready: bool) -> dict:
        done = self.busy and self.left == 0
        rem = wrap(self.r + self.den if self.r < 0 else self.r, self.den_bits, False)
        return dict(i_ready=not self.busy or (done and bool(o_ready)), o_valid=done,
                    o_quo=self.q if done else None, o_rem=rem if done else None)

    def _comb(self, inp) -> dict:
        return self.comb(inp.i_valid, inp.o_ready)

    def clock(self, out: dict, i_valid: bool, num: int, den: int, o_ready: bool) -> None:
        Q, D = self.Q, self.den_bits
        if self.busy and self.left:
            t = self.r << 1 | self.q >> (Q - 1) & 1
            self.r = wrap(t - self.den if self.r >= 0 else t + self.den, D + 1)
            self.q = wrap(self.q << 1 | (self.r >= 0 or self.den == 0), Q, False)
            self.left -= 1
        if out["o_valid"] and o_ready:
            self.busy = False
        if i_valid and out["i_ready"]:
            self.r, self.q = wrap(num >> Q, D, False), wrap(num, Q, False)
            self.left, self.busy, self.den = Q, True, den

    def _edge(self, inp, out) -> None:
        self.clock(out, inp.i_valid, inp.i_num, inp.i_den, inp.o_ready)


# ---- Int8Quantizer ------------------------------------------------------------------------

RECV, FOLD, LEN, NORM = "RECV", "FOLD", "LEN", "NORM"
FULL, FWAIT = "FULL", "FWAIT"


class Int8QuantizerStep(_Model):
    """hw/int8quant.py: the front receives into a bank of the buffer (max |v|), waits
    (FULL) while the divider holds the previous vector, takes ``INT8Q_PREP_CYCLES`` (FOLD,
    then LEN), one cycle (NORM) offering 127 · 2^K / mu to the divider (B + 8 quotient
    bits), then receives the next vector at once (two banks, its bank not being read) or
    after the output pass's last read (FWAIT); the back hands over when the divider is
    done and the output pass's credit pipeline (``INT8Q_OUT_STAGES``, ``CreditPipe``) is
    idle, then runs the output pass (a read issued while a credit is held). x_q and the
    step are ``quantize_int8`` of the buffered vector, computed at the hand-over (where the
    RTL registers R, K and the step); each output beat carries the step registers of its
    cycle."""

    out_stages = INT8Q_OUT_STAGES

    def __init__(self, in_bits: int, scale_bits: int, max_n: int, lanes: int = 1, banks: int = 1):
        self.in_bits, self.B, self.lanes, self.banks = in_bits, scale_bits, lanes, banks
        self.depth = -(-max_n // lanes)
        self.bufs = [[(0,) * lanes] * self.depth for _ in range(banks)]
        self.div = DividerStep(in_bits + scale_bits + 7, in_bits, scale_bits + 8)
        self.pipe = CreditPipe(self.out_stages)
        super().__init__(int8quant_ports(in_bits, scale_bits, lanes))

    def _reset(self) -> None:
        self.state = RECV                       # the front
        self.divs = self.outs = False           # the back
        self.wcnt = self.nlast_w = self.nlast_d = self.nlast = self.ridx = self.mu = self.wait = 0
        self.wbank = self.rbank = 0
        self.xq, self.step_m, self.step_e = [], 0, 0
        self.div._reset()
        self.pipe.clear()

    def _div_o_ready(self) -> bool:
        return self.divs and self.pipe.idle and not self.outs

    def comb(self, i_valid: bool, o_ready: bool) -> dict:
        head = self.pipe.head
        issue = self.outs and self.pipe.can_issue
        div = self.div.comb(self.state == NORM, self._div_o_ready())
        return dict(i_ready=self.state == RECV, o_valid=self.pipe.valid,
                    o_x=None if head is None else beat_field(head[0], self.lanes),
                    o_m=None if head is None else self.step_m, o_e=None if head is None else self.step_e,
                    o_last=None if head is None else head[1], issue=issue, o_ready=bool(o_ready), div=div)

    def _comb(self, inp) -> dict:
        return self.comb(inp.i_valid, inp.o_ready)

    def writes(self, out: dict, i_valid: bool, v) -> list:
        return [(self.bufs[self.wbank], self.wcnt, lanes_of(v))] if i_valid and out["i_ready"] else []

    def _writes(self, inp, out) -> list:
        return self.writes(out, inp.i_valid, inp.i_v)

    def clock(self, out: dict, i_valid: bool, v, last: bool) -> None:
        B, VB = self.B, self.in_bits
        state, issue, div = self.state, out["issue"], out["div"]
        divs, div_o_ready = self.divs, self._div_o_ready()
        done = issue and self.ridx == self.nlast
        reading = self.outs and not done
        mus = self.mu or 1
        self.div.clock(div, state == NORM, Q8 << (mus.bit_length() + B), mus, div_o_ready)
        self.pipe.clock((self.xq[self.ridx], self.ridx == self.nlast) if issue else None, out["o_ready"])
        wbits = bits_for(self.depth)
        # the front
        if state == RECV and i_valid:
            self.mu = max(max(abs(x) for x in lanes_of(v)), self.mu)
            if last:
                self.nlast_w, self.state = self.wcnt, FULL if divs else FOLD
                self.wcnt, self.wbank = 0, (self.wbank + 1) % self.banks
            else:
                self.wcnt = wrap(self.wcnt + 1, wbits, False)
        elif state == FULL and not divs:
            self.state = FOLD
        elif state == FOLD:
            self.nlast_d, self.wait, self.state = self.nlast_w, INT8Q_PREP_CYCLES - 2, LEN
        elif state == LEN:
            if self.wait == 0:
                self.state = NORM
            self.wait -= 1
        elif state == NORM:                     # the divider is idle: it takes the offer
            self.divs, self.mu = True, 0
            self.state = RECV if self.banks == 2 and not reading else FWAIT
        elif state == FWAIT and done:
            self.state = RECV
        # the back
        if divs and div["o_valid"] and div_o_ready:
            bank = self.bufs[self.rbank]
            beats = np.array(bank[:self.nlast_d + 1], dtype=np.int64)
            xq, m, e = quantize_int8(beats.reshape(-1), B, VB)
            self.xq = [tuple(int(x) for x in r) for r in xq.reshape(-1, self.lanes)]
            self.step_m, self.step_e = int(m), wrap(int(e), EXP_BITS)
            self.divs, self.outs, self.ridx, self.nlast = False, True, 0, self.nlast_d
        elif issue:
            self.ridx = wrap(self.ridx + 1, wbits, False)
            if done:
                self.outs, self.rbank = False, (self.rbank + 1) % self.banks

    def _edge(self, inp, out) -> None:
        self.clock(out, inp.i_valid, inp.i_v, inp.i_last)


# ---- Rsqrt --------------------------------------------------------------------------------

class RsqrtStep(_Model):
    """hw/rsqrt.py: one pipeline of ``vectortiming.rsqrt_latency(rsqrt_newton)`` registers;
    (y, E) = ``intnorm.rsqrt(ss)`` (ss > 0)."""

    def __init__(self, vcfg, ss_bits: int = 62):
        self.vcfg, self.ss_bits = vcfg, ss_bits
        self.latency = rsqrt_latency(vcfg.rsqrt_newton)
        self.pipe = ElementPipe(self.latency)
        super().__init__(rsqrt_ports(vcfg, ss_bits))

    def _reset(self) -> None:
        self.pipe.clear()

    def comb(self, o_ready: bool) -> dict:
        head = self.pipe.head
        return dict(i_ready=self.pipe.advance(o_ready), o_valid=self.pipe.valid,
                    o_y=None if head is None else head[0], o_E=None if head is None else head[1])

    def _comb(self, inp) -> dict:
        return self.comb(inp.o_ready)

    def clock(self, out: dict, i_valid: bool, ss: int) -> None:
        entering = None
        if i_valid:
            if ss <= 0:
                raise ValueError(f"Rsqrt model: ss = {ss} is outside the contract (ss > 0)")
            v = self.vcfg
            y, E = rsqrt(np.int64(ss), v.rsqrt_lut_bits, v.rsqrt_frac_bits, v.rsqrt_newton)
            entering = (int(y), int(E))
        self.pipe.clock(out["i_ready"], entering)

    def _edge(self, inp, out) -> None:
        self.clock(out, inp.i_valid, inp.i_ss)


# ---- RmsNorm ------------------------------------------------------------------------------

PREP, SCAN, DRAIN = "PREP", "SCAN", "DRAIN"


class RmsNormStep(_Model):
    """hw/rmsnorm.py: receive into the h buffer (the OR of each beat's |h| registered,
    ORed into hmax a cycle later: bitlen(hmax) = bitlen(max |h|)), FOLD (the last beat's), LEN (BITLEN_STAGES cycles: the bit
    length), PREP (p and the ``k`` beat), the scan (RMS_SCAN_STAGES registers: the reads,
    hs = rshift_round(h, p), hs² and g_q · hs) into an Int8QuantizerStep and the sum of
    squares, the last beat's sum registered, then ss = sum + eps' (at least 1) offered to a
    RsqrtStep (always ready: its stages run free) with gamma_frac beside it, (y, E + GF)
    held for the vector (a result that finds it held waits in (yn, En) and moves there
    the cycle after the release), and the step
    pipeline (RMS_STEP_STAGES registers) making ``scale_mul(m_u, e_u, y, E + GF)`` per
    beat as a credit pipeline (``CreditPipe``; the quantizer's ready: a credit and y held). eps' = rshift_round(eps_q, 2p) is free-running in the RTL, settled from the
    vector's eps_q and p long before the sum uses it."""

    scan_stages = RMS_SCAN_STAGES
    step_stages = RMS_STEP_STAGES

    def __init__(self, vcfg, n: int, lanes: int = 1):
        self.vcfg, self.n, self.lanes = vcfg, n, lanes
        self.N = n // lanes
        NB = vcfg.norm_in_bits
        self.sb = eps_bits(vcfg, n) + 1
        self.hbuf = [(0,) * lanes] * self.N
        self.gmem = [(0,) * lanes] * self.N
        self.quant = Int8QuantizerStep(vcfg.gamma_bits + NB, vcfg.scale_bits, n, lanes)
        self.rs = RsqrtStep(vcfg, self.sb)
        self.scan = ElementPipe(self.scan_stages)
        self.steps = CreditPipe(self.step_stages)
        self.E_bits = rsqrt_exp_bits(vcfg, self.sb) + 2
        super().__init__(rmsnorm_ports(vcfg, n, lanes))

    def _reset(self) -> None:
        self.state = RECV
        self.wcnt = self.ridx = self.hmax = self.p = self.a_r = self.wait = 0
        self.eps_k = self.gf_k = self.gf_ss = self.ss = self.ss_sum = self.ss_out = 0
        self.ss_valid = self.y_valid = self.a_v = self.sum_v = False
        self.y = self.E = self.yn = self.En = 0
        self.yn_valid = False
        self.gf_line = [0] * self.rs.latency
        self.quant._reset()
        self.rs._reset()
        self.scan.clear()
        self.steps.clear()

    def _comb(self, inp) -> dict:
        head = self.steps.head
        q = self.quant.comb(self.scan.valid, self.steps.can_issue and self.y_valid)
        rs = self.rs.comb(True)
        return dict(h_ready=self.state == RECV, g_ready=True,
                    k_ready=self.state == PREP and not self.ss_valid,
                    o_valid=self.steps.valid,
                    **{f"o_{f}": None if head is None else head[j] for j, f in enumerate(("x", "m", "e", "last"))},
                    q=q, rs=rs, adv=self.scan.advance(q["i_ready"]))


    def _writes(self, inp, out) -> list:
        w = [(self.gmem, inp.g_addr, lanes_of(inp.g_value))] if inp.g_valid else []
        if inp.h_valid and out["h_ready"]:
            w.append((self.hbuf, self.wcnt, lanes_of(inp.h_h)))
        sh = self.scan.head
        return w + self.quant.writes(out["q"], self.scan.valid, None if sh is None else sh[0])

    def _edge(self, inp, out) -> None:
        v, N, L = self.vcfg, self.N, self.lanes
        NB, B = v.norm_in_bits, v.scale_bits
        adv, q, rs = out["adv"], out["q"], out["rs"]
        state, sh, qh, rh = self.state, self.scan.head, self.quant.pipe.head, self.rs.pipe.head
        nbits = bits_for(N)
        # the quantizer's beat is taken into the step's credit pipeline while it holds a
        # credit and (y, E + GF) is held
        q_take = qh is not None and self.steps.can_issue and self.y_valid
        step_in = None
        if q_take:
            m, e = scale_mul(self.quant.step_m, self.quant.step_e, self.y, self.E, B)
            step_in = (beat_field(qh[0], L), int(m), wrap(int(e), EXP_BITS), qh[1])
        self.steps.clock(step_in, inp.o_ready)
        # the scan: the buffers read at ridx, hs = rshift_round(h, p), hs² and g_q · hs
        entering = None
        if state == SCAN:
            hs = [wrap(rshift_round(h, self.p), NB + 2) for h in self.hbuf[self.ridx]]
            entering = (tuple(g * x for g, x in zip(self.gmem[self.ridx], hs)),
                        sum(x * x for x in hs), self.ridx == N - 1)
        drained = self.scan.empty
        self.scan.clock(adv, entering)
        self.quant.clock(q, sh is not None, None if sh is None else sh[0], sh is not None and sh[2])
        # the Rsqrt on the held ss (at least 1), gamma_frac in registers beside it
        # the Rsqrt is always ready: its stages and gamma_frac's registers move every cycle
        gf_out, ss_valid = self.gf_line[-1], self.ss_valid
        self.rs.clock(rs, ss_valid, self.ss_out or 1)
        self.gf_line = [self.gf_ss] + self.gf_line[:-1]
        new = {}
        if sh is not None and q["i_ready"]:
            new["ss"] = wrap(self.ss + sh[1], self.sb, False)
            if sh[2]:
                new.update(ss=0, ss_sum=wrap(self.ss + sh[1], self.sb, False), sum_v=True)
        if self.sum_v:
            eps = wrap(rshift_round(self.eps_k, 2 * self.p), self.sb, False)
            new.update(ss_out=wrap(self.ss_sum + eps, self.sb, False), gf_ss=self.gf_k, ss_valid=True,
                       sum_v=False)
        take_h = state == RECV and bool(inp.h_valid)
        new.update(a_v=take_h)
        if take_h:
            new["a_r"] = functools.reduce(operator.or_, (abs(x) for x in lanes_of(inp.h_h)))
        if self.a_v:
            new["hmax"] = self.a_r | self.hmax
        if take_h:
            new["wcnt"] = wrap(self.wcnt + 1, nbits, False)
            if self.wcnt == N - 1:
                new["state"] = FOLD
        elif state == FOLD:
            new.update(wait=BITLEN_STAGES - 1, state=LEN)
        elif state == LEN:
            new["wait"] = self.wait - 1
            if self.wait == 0:
                new["state"] = PREP
        elif state == PREP:
            new.update(p=max(self.hmax.bit_length() - NB, 0), ridx=0)
            if out["k_ready"] and inp.k_valid:
                new.update(eps_k=inp.k_eps_q, gf_k=inp.k_gamma_frac, state=SCAN)
        elif state == SCAN:
            if adv:
                new["ridx"] = wrap(self.ridx + 1, nbits, False)
                if self.ridx == N - 1:
                    new["state"] = DRAIN
        elif state == DRAIN and drained:
            new.update(wcnt=0, hmax=0, state=RECV)
        if ss_valid:
            new["ss_valid"] = False
        if rh is not None:
            if self.y_valid or self.yn_valid:
                new.update(yn=rh[0], En=wrap(rh[1] + gf_out, self.E_bits), yn_valid=True)
            else:
                new.update(y=rh[0], E=wrap(rh[1] + gf_out, self.E_bits), y_valid=True)
        if not self.y_valid and self.yn_valid:
            new.update(y=self.yn, E=self.En, y_valid=True, yn_valid=False)
        if q_take and qh[1]:
            new["y_valid"] = False
        for k, val in new.items():
            setattr(self, k, val)


# ---- Rope ---------------------------------------------------------------------------------

class RopeStep(_Model):
    """hw/rope.py: the first half of a head into the first buffers; each second-half beat
    joined with its (c, s) and x[i] read back enters the ``ROPE_STAGES``-register pipeline
    (the products, the difference and sum, the rounding shifts, the saturations:
    ``apply_rope`` of the pair); out[i] leaves from it,
    out[i + h] goes to the second buffers as it leaves and, after out[h - 1], the buffered
    beats leave in order. While they do, the pipeline's last stage is not taken."""

    stages = ROPE_STAGES

    def __init__(self, vcfg, head_dim: int, x_bits: int | None = None, cs_bits: int | None = None,
                 lanes: int = 1):
        self.vcfg, self.lanes = vcfg, lanes
        self.x_bits = vcfg.resid_bits - 1 if x_bits is None else x_bits
        self.cs_bits = vcfg.rope_frac_bits + 2 if cs_bits is None else cs_bits
        self.W = head_dim // 2 // lanes
        self.first = [(0,) * lanes] * self.W
        self.second = [(0,) * lanes] * self.W
        self.pipe = ElementPipe(self.stages)
        super().__init__(rope_ports(vcfg, self.x_bits, self.cs_bits, lanes))

    def _reset(self) -> None:
        self.j = self.e = 0
        self.upper = self.emit = False
        self.pipe.clear()

    def _comb(self, inp) -> dict:
        head, L = self.pipe.head, self.lanes
        rot_ready = not self.emit and bool(inp.o_ready)
        adv = self.pipe.advance(rot_ready)
        if self.emit:
            o_valid, y = True, self.second[self.e]
        else:
            o_valid, y = self.pipe.valid, None if head is None else head[1]
        return dict(x_ready=not self.upper or (adv and bool(inp.cs_valid)),
                    cs_ready=self.upper and adv and bool(inp.x_valid), o_valid=o_valid,
                    o_y=None if y is None else beat_field(y, L), adv=adv,
                    leave=self.pipe.valid and rot_ready)

    def _writes(self, inp, out) -> list:
        w = [(self.first, self.j, lanes_of(inp.x_x))] if inp.x_valid and not self.upper else []
        if out["leave"]:
            i, _, hi = self.pipe.head
            w.append((self.second, i, hi))
        return w

    def _edge(self, inp, out) -> None:
        W, RF = self.W, self.vcfg.rope_frac_bits
        entering = None
        if self.upper and inp.x_valid and inp.cs_valid:
            a, b = self.first[self.j], lanes_of(inp.x_x)
            x = np.array([[[ak, bk]] for ak, bk in zip(a, b)], dtype=np.int64)
            y = apply_rope(x, np.array([[c] for c in lanes_of(inp.cs_c)], dtype=np.int64),
                           np.array([[s] for s in lanes_of(inp.cs_s)], dtype=np.int64), RF, self.x_bits)
            entering = (self.j, tuple(int(r[0, 0]) for r in y), tuple(int(r[0, 1]) for r in y))
        head = self.pipe.head
        self.pipe.clock(out["adv"], entering)
        if self.emit:
            if inp.o_ready:
                self.e = 0 if self.e == W - 1 else self.e + 1
                self.emit = self.e != 0
        elif head is not None and inp.o_ready and head[0] == W - 1:
            self.emit = True
        if inp.x_valid and out["x_ready"]:
            self.j = 0 if self.j == W - 1 else self.j + 1
            self.upper ^= self.j == 0


# ---- SiluMul, Requantize ------------------------------------------------------------------

class _ElementUnit(_Model):
    """A fully pipelined unit: ``i`` -> ``stages`` registers -> ``o``, the beat's result
    computed as it enters (``_result``)."""

    def __init__(self, ports, stages: int):
        self.pipe = ElementPipe(stages)
        super().__init__(ports)

    def _reset(self) -> None:
        self.pipe.clear()

    def _comb(self, inp) -> dict:
        head = self.pipe.head
        return dict(i_ready=self.pipe.advance(inp.o_ready), o_valid=self.pipe.valid,
                    o_y=None if head is None else beat_field(head, self.lanes))

    def _edge(self, inp, out) -> None:
        self.pipe.clock(out["i_ready"], self._result(inp) if inp.i_valid else None)


class SiluMulStep(_ElementUnit):
    """hw/silumul.py: ``SILU_STAGES`` registers (|g|, the index, the table reads, the
    interpolation's product and rounding, sigma, g · sigma, silu, silu · u, its rounding,
    the saturation); y = ``intact.silu_mul(g, u)``."""

    stages = SILU_STAGES

    def __init__(self, vcfg, lanes: int = 1):
        self.vcfg, self.lanes = vcfg, lanes
        super().__init__(silumul_ports(vcfg, lanes), self.stages)

    def _result(self, inp) -> tuple:
        y = silu_mul(np.array(lanes_of(inp.i_g)), np.array(lanes_of(inp.i_u)), self.vcfg)
        return tuple(int(v) for v in y)


class RequantizeStep(_ElementUnit):
    """hw/requant.py: ``requant_stages(residual)`` registers (the pre-shift, A' · m, the
    output shift, rounding and saturation; the residual add and its saturation); y = saturate(rshift_round(rshift_round(A, a) · m, e - a -
    out_frac), out_bits), then saturate(res + y, resid_bits)."""

    def __init__(self, vcfg, acc_bits: int, out_frac: int | None = None, out_bits: int | None = None,
                 residual: bool = False, lanes: int = 1):
        self.vcfg, self.residual, self.lanes = vcfg, residual, lanes
        self.out_frac = vcfg.resid_frac_bits if out_frac is None else out_frac
        self.out_bits = vcfg.resid_bits if out_bits is None else out_bits
        super().__init__(requant_ports(vcfg, acc_bits, self.out_bits, residual, lanes),
                         requant_stages(residual))

    def _result(self, inp) -> tuple:
        s = inp.i_e - inp.i_a - self.out_frac
        ys = [saturate(rshift_round(rshift_round(A, inp.i_a) * inp.i_m, s), self.out_bits)
              for A in lanes_of(inp.i_acc)]
        if self.residual:
            ys = [saturate(r + y, self.vcfg.resid_bits) for r, y in zip(lanes_of(inp.i_res), ys)]
        return tuple(ys)
