"""Symmetric int8 quantization of a vector, exactly ``codec.fixedpoint.quantize_int8``.

Per vector (its elements |v| < 2^in_bits arrive in beats of ``lanes``, one beat per
cycle, ``last`` on the final beat):

1. receive: every beat is written to a buffer (``hw.actbuffer.ActivationBuffer`` without
   its fabric registers: a block RAM with its output register, read latency 2; one word per beat, room for
   ``max_n`` elements; a longer vector is outside the contract) while the beat's max |v|
   is registered with a flag (a beat there), then folded into mu = max |v| over two
   cycles (below) and ORed into a running OR that starts at 1;
2. ``vectortiming.INT8Q_PREP_CYCLES`` cycles after the last beat (FOLD: the last beat's
   |v| into the OR; LEN: the OR's bit length, which is bitlen(max(mu, 1)), through
   ``fixedops.bitlen_staged``, the numerator's shift by its bits from 3 up (free-running),
   then K = bitlen + B and the numerator 127 · 2^K registered), one cycle (NORM) offers
   them with mu floored at 1 to a sequential divider (``hw.divider.Divider``, B + 8
   quotient bits: 127 · 2^K / mu < 2^(B+8)), which is idle then and takes them; mu is
   final two cycles after the last beat, the floored mu two cycles later (mu[1:] == 0
   registered first), before NORM (checked at elaboration); NORM also holds the floored
   mu and whether mu is 0 for the step and clears mu and the OR; from the held mu
   free-running registers form the step: mu · M127 (1/127 as a B-bit multiplier,
   ``fixedpoint.to_multiplier``; a ``WideMultiplier``), its bit length, k = bitlen - B,
   and (mu · M127) >> k (``fixedops.staged_rshift``): settled long before the divider is
   done (checked at elaboration);
3. DIV: once the output pass is idle (every credit back) R, K and the step registers
   follow the divider's result and the step each cycle, and the hand-over (the divider's
   result there) starts the output pass at address 0 and leaves them with
   R = floor(127 · 2^K / mu) and
   the step (m, e) = ((mu · M127) >> k, e127 - k) (an all-zero vector's step is
   m = 2^(B-1), e = B - 1);
4. output pass: the buffer is read in order and each beat goes through a credit pipeline
   (``hw.elementpipe.CreditFifo``) of ``out_stages`` = ``vectortiming.INT8Q_OUT_STAGES``
   stages: free-running registers for the read (two), v · R (a ``WideMultiplier``), ((2 v R
   >> K) + 1) >> 1 as a staged shift and the rounding add (on the shift's low 10 bits,
   beside it whether the result lies in ±127: the low bits' range and the reductions of
   the two halves of the bits above), then the clamp to ±127 written into the output
   FIFO, whose entries leave with the step and ``last``. A read issues while the pipeline
   holds a credit, so ``o.ready`` reaches only the FIFO's read side and the credit count,
   never the read address, the pipeline or mu.

Each pass is a register of its own, so a pass's conditions are registers: the front's
(one-hot: receive, FULL, FOLD, LEN, NORM, the wait for a bank) and the back's (DIV,
output), which run side by side: a received vector waits in FULL while the divider still
holds the previous one's result (its K, step and last address are then still to move to
the output pass), so FOLD, LEN and NORM of a vector follow the previous hand-over.

The running max takes two cycles per beat without limiting the beat rate: the beat's
registered a_r moves to a2, and beside it, from registers, X = a2 > the mu before its
predecessor was folded (a_r against mu) and Y = a2 > its predecessor (a_r against a2),
each from the halves' comparisons registered (``greater_registered``); in a2's cycle d = D
? Y : X is a2 > mu (D: the predecessor's d where the predecessor was a beat, registered),
and mu takes a2 where d and a2 is a beat.

``lanes`` elements per beat (a beat per cycle in the receive pass and out of the output
pass; the lanes' |v| meet in a compare tree before the register, each lane has its own
multiplier and clamp, the buffer's word is a beat); a vector is ceil(n / lanes) beats,
its last beat filled with zeros if n is not a multiple (zeros change neither mu nor the
other elements; their x_q are 0). With ``banks=1`` the buffer holds one vector: the next
vector is accepted once every beat of this one has been read (its tail may still be in the
output pipeline or FIFO). With ``banks=2`` it holds two (the bank bit above a bank's
address): the next vector is accepted from the cycle after NORM, unless its bank (the
vector before this one's) is still being read, then after that read. Either way a
vector's R and step replace the previous one's only when the output pipeline and FIFO are
empty (every credit returned).

Cycles for a vector of N = ceil(n / lanes) beats without stalls, first input accepted to
last output (``sim.vectorcycles.int8quant_cycles``): N (receive) + INT8Q_PREP_CYCLES +
1 (NORM) + B + 9 (divider, with its hand-over) + N + out_stages - 1 (output pass); vectors
back to back: ``sim.vectorcycles.int8quant_stream_cycles``.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from ..codec.fixedpoint import Q8, to_multiplier
from ..vectorports import int8quant_ports
from ..vectortiming import BITLEN_STAGES, INT8Q_OUT_STAGES, INT8Q_PREP_CYCLES, MUL_STAGES, SHIFT_STAGES
from .actbuffer import ActivationBuffer
from .checks import check_int
from .divider import Divider
from .elementpipe import CreditFifo, check_lanes, credit_valid, delay, lane
from .fixedops import abs_value, bitlen_staged, max_tree, staged_rshift
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .signature import members

#: the largest input magnitude bits of the contract (v · R < 2^62)
MAX_IN_BITS = 39


def check_scale_bits(owner: str, scale_bits: int) -> int:
    check_int(owner, "scale_bits", scale_bits, 8)
    if scale_bits > 20:
        raise ValueError(f"{owner} scale_bits must be at most 20, not {scale_bits}")
    return scale_bits


def greater_registered(m, a, b, name: str):
    """a > b (unsigned) from three comparisons of the halves registered a cycle earlier, a
    carry chain each: the high halves' a > b and a >= b, the low halves' a > b; the
    returned value is their combination, a LUT. Each is written as a less-than, which Yosys
    maps to the chain's carry alone (its greater-than adds an equality test of LUTs after
    the chain), and a >= b as 2b < 2a + 1, so that Yosys does not derive it from the
    other comparison of the same halves (with an equality test)."""
    w = max(len(a), len(b))
    h = (w + 1) // 2
    a, b = a.as_unsigned(), b.as_unsigned()
    hi_gt, hi_ge, lo_gt = (Signal(name=f"{name}_{nm}") for nm in ("hi_gt", "hi_ge", "lo_gt"))
    m.d.sync += [hi_gt.eq(b[h:] < a[h:]), hi_ge.eq(Cat(Const(0, 1), b[h:]) < Cat(Const(1, 1), a[h:])),
                 lo_gt.eq(b[:h] < a[:h])]
    return hi_gt | hi_ge & lo_gt


class Int8Quantizer(wiring.Component):
    """Ports: ``i`` {v, last}; ``o`` {x, m, e, last} (``lanes`` v and x per beat). One beat
    per cycle in and out; ``sim.vectorcycles.int8quant_cycles`` per vector without stalls.
    ``banks`` (1 or 2): vectors the buffer holds; with 2 the next vector comes in while
    this one is divided and read out."""

    #: registers of the output pass: read, multiplier, staged round-shift, rounding, clamp
    out_stages = INT8Q_OUT_STAGES

    def __new__(cls, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1, banks: int = 1,
                primitives: str = "generic"):
        check_int("Int8Quantizer", "in_bits", in_bits, 1)
        if in_bits > MAX_IN_BITS:
            raise ValueError(f"Int8Quantizer in_bits must be at most {MAX_IN_BITS} (v · R < 2^62), "
                             f"not {in_bits}")
        check_scale_bits("Int8Quantizer", scale_bits)
        check_int("Int8Quantizer", "max_n", max_n, 1)
        check_lanes("Int8Quantizer", lanes)
        check_int("Int8Quantizer", "banks", banks, 1)
        if banks > 2:
            raise ValueError(f"Int8Quantizer banks must be 1 or 2, not {banks}")
        check_primitives(primitives, "Int8Quantizer")
        return super().__new__(cls)

    def __init__(self, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1, banks: int = 1,
                 primitives: str = "generic"):
        self.in_bits, self.scale_bits, self.max_n, self.lanes, self.banks = in_bits, scale_bits, max_n, lanes, banks
        self.primitives = primitives
        #: buffer words (beats) of the longest vector
        self.depth = -(-max_n // lanes)
        super().__init__(members(int8quant_ports(in_bits, scale_bits, lanes)))

    def elaborate(self, platform):
        m = Module()
        VB, B = self.in_bits, self.scale_bits
        M127, e127 = to_multiplier(1 / Q8, B)
        div = m.submodules.div = Divider(VB + B + 7, VB, B + 8, primitives=self.primitives)
        # cycles from the last beat's to the first in which a value holds: mu (a_r, a2, mu),
        # mus (lo, mus); the divider takes mus in NORM (checked here), and the step chain,
        # from mus held in NORM (mus_h: mu, mu · M127, its bit length, k, the shift), has
        # settled when the divider is done, at the earliest hand-over
        mus_at = 3 + 2
        assert mus_at <= INT8Q_PREP_CYCLES + 1, "mus would not hold when the divider takes it"
        assert 1 + MUL_STAGES + BITLEN_STAGES + 1 + SHIFT_STAGES <= div.latency, \
            "the step would not settle in time"
        vbits = len(Value.cast(self.i.payload.v))
        # the buffer: one vector, or two banks (the bank bit above a bank's address bits)
        words = self.depth if self.banks == 1 else 2 << (self.depth - 1).bit_length()
        buf = m.submodules.mem = ActivationBuffer(words, vbits, primitives=self.primitives, fabric=False)

        wcnt = Signal(range(self.depth))           # write address (receive)
        nlast_w = Signal(range(self.depth))        # the received vector's last address
        nlast_d = Signal(range(self.depth))        # ... the dividing vector's, and from LEN:
        nlast1_d = Signal(range(self.depth))       # its address before the last
        last0_d = Signal()                         # its last address is 0
        nlast1 = Signal(range(self.depth))         # the output pass's address before the last
        ridx = Signal(range(self.depth))           # read address (output pass)
        at_last = Signal()                         # ridx == the last address, registered beside ridx
        wbank, rbank = (Signal(name=nm) for nm in ("wbank", "rbank")) if self.banks == 2 else (Const(0), Const(0))
        wait = Signal(range(INT8Q_PREP_CYCLES + 1))
        K_next = Signal(range(VB + B + 1))         # this vector's K, R's step, while dividing
        num = Signal(VB + B + 7)
        K = Signal(range(VB + B + 1))              # the output pass's K, R and step
        R = Signal(B + 8)
        step_m = Signal(B)
        step_e = Signal(signed(len(self.o.payload.e)))
        # the front passes, one register each (one-hot): receive, FULL (received, the
        # divider still holds the previous vector), FOLD, LEN, NORM, then (banks == 1, or
        # the next bank still being read) a wait for the output pass's last read; the back
        # passes: DIV (the divider's vector), output (the vector before it may still be read
        # while the next divides)
        recv = Signal(init=1)
        full, fold, lens, norm, fwait, divs, outs = (
            Signal(name=nm) for nm in ("full", "fold", "lens", "norm", "fwait", "divs", "outs"))

        # the running max over two cycles: a beat's max |v| is registered (a_r, 0 without a
        # beat), then a2; beside a2, X = a2 > the mu before a2's predecessor was folded and
        # Y = a2 > that predecessor, both registered from registers (a_r against mu and a2);
        # d = D ? Y : X is then a2 > mu (D: the predecessor's d), and mu takes a2 when d
        take_in = self.i.valid & self.i.ready
        absv = []
        for j in range(self.lanes):
            absv.append(Signal(VB + 1, name=f"abs{j}"))
            m.d.comb += absv[j].eq(abs_value(lane(self.i.payload.v, j)))
        a_r = Signal(VB + 1)
        a2 = Signal(VB + 1)
        a_v, a2_v = Signal(), Signal()              # a beat in a_r, in a2
        mu = Signal(VB)                            # max |v| so far
        d_prev = Signal()
        d = Signal()
        m.d.sync += [a_r.eq(max_tree(m, absv, VB + 1, "lanemax")), a_v.eq(take_in), a2.eq(a_r), a2_v.eq(a_v),
                     d_prev.eq(d & a2_v)]
        gt_mu = greater_registered(m, a_r, mu, "gt_mu")
        gt_prev = greater_registered(m, a_r, a2, "gt_prev")
        m.d.comb += d.eq(Mux(d_prev, gt_prev, gt_mu))
        # the running OR of the |v| with bit 0 set: its bit length is bitlen(max(mu, 1)) a
        # cycle before mu's; mu and the OR are cleared in NORM (the divider takes mus, the
        # step chain holds it), before the next vector's first beat
        orv = Signal(VB + 1, init=1)
        with m.If(norm):
            m.d.sync += [mu.eq(0), orv.eq(1)]
        with m.Else():
            with m.If(a_v):
                m.d.sync += orv.eq(orv | a_r)
            with m.If(d & a2_v):
                m.d.sync += mu.eq(a2)

        # free-running: mu floored at 1 (mus) and whether it is 0, a cycle after mu[1:] == 0;
        # bitlen(max(mu, 1)) from the OR; from mus held in NORM: mu · M127, its bit length,
        # the step
        lo, mus, zero = Signal(), Signal(VB), Signal()
        mus_h, zero_h = Signal(VB), Signal()
        m.d.sync += [lo.eq(mu[1:] == 0), mus.eq(Cat(mu[0] | lo, mu[1:])), zero.eq(lo & ~mu[0])]
        n_mus = bitlen_staged(m, 1, orv, "bl_mu")
        # the numerator 127 · 2^(B + n_mus) in two shifts: by n_mus's bits from 3 up here
        # (free-running), by its low bits in LEN
        num_hi = Signal(len(num))
        m.d.sync += num_hi.eq(Const(Q8 << B) << Cat(Const(0, 3), n_mus[3:]))
        pmul = m.submodules.pm = WideMultiplier(VB + 1, B + 1, primitives=self.primitives)
        m.d.comb += [pmul.en.eq(1), pmul.a.eq(mus_h), pmul.b.eq(M127)]
        pm = pmul.p.as_unsigned()[:VB + B]
        n_pm = bitlen_staged(m, 1, pm, "bl_pm")
        k = Signal(range(VB + B + 1))
        m.d.sync += k.eq(n_pm - B)
        pm_k = staged_rshift(m, 1, pm, k, B, SHIFT_STAGES, "pmk")

        # the output pass: a credit pipeline (hw.elementpipe.CreditFifo) of out_stages: the
        # read, v · R, the staged round-shift and the rounding add in free-running registers,
        # the clamp written into the output FIFO (per lane); o.ready moves only the FIFO
        xw = len(Value.cast(self.o.payload.x))
        fifo = m.submodules.ofifo = CreditFifo(xw + 1, self.out_stages, idle_next=True)
        issue = fifo.issue
        valid = credit_valid(m, issue, self.out_stages, "q")
        run = Const(1)
        m.d.comb += [buf.r_addr.eq(Cat(ridx, rbank)), buf.r_en.eq(run)]
        xs = []
        for j in range(self.lanes):
            mul = m.submodules[f"mul{j}"] = WideMultiplier(VB + 1, B + 9, primitives=self.primitives)
            m.d.comb += [mul.en.eq(run), mul.a.eq(buf.r_data[j * (VB + 1):(j + 1) * (VB + 1)].as_signed()),
                         mul.b.eq(R)]
            sh = staged_rshift(m, run, mul.p << 1, K, len(mul.p) + 1, SHIFT_STAGES, f"sh{j}")
            # the rounding add on sh's low 10 bits, beside it whether sh fits them (then
            # t = (sh + 1) >> 1 is the rounded low part; else it is far out of ±127)
            # (t in ±127 iff sh in -255 .. 254)
            # (whether sh's bits from 9 up are all 0 or all 1 from their two halves' reductions)
            t = Signal(signed(10), name=f"t{j}")
            t_mid, t_neg = Signal(name=f"tmid{j}"), Signal(name=f"tneg{j}")
            s10 = sh[:10].as_signed()
            top = sh[9:]
            hh = len(top) // 2
            zeros, ones = Signal(2, name=f"tzeros{j}"), Signal(2, name=f"tones{j}")
            m.d.sync += [t.eq((s10 + 1) >> 1), zeros.eq(Cat(top[:hh] == 0, top[hh:] == 0)),
                         ones.eq(Cat(top[:hh].all(), top[hh:].all())),
                         t_mid.eq((s10 <= 2 * Q8) & (s10 >= -2 * Q8 - 1)), t_neg.eq(sh[-1])]
            t_in = (zeros.all() | ones.all()) & t_mid
            xs.append(Mux(t_in, t[:8], Mux(t_neg, -Q8, Q8))[:8])
        qlast = delay(m, run, at_last, self.out_stages - 1, "qlast")
        m.d.comb += [fifo.w_en.eq(valid[-1]), fifo.w_data.eq(Cat(*xs, qlast)),
                     self.o.valid.eq(fifo.o.valid), fifo.o.ready.eq(self.o.ready),
                     Value.cast(self.o.payload.x).eq(fifo.o.payload[:xw]),
                     self.o.payload.last.eq(fifo.o.payload[xw]),
                     self.o.payload.m.eq(step_m), self.o.payload.e.eq(step_e)]

        m.d.comb += [buf.w_addr.eq(Cat(wcnt, wbank)), buf.w_data.eq(Value.cast(self.i.payload.v)),
                     buf.w_en.eq(take_in), div.i.payload.num.eq(num), div.i.payload.den.eq(mus)]
        # the output pass's last read issues in this cycle; the output pass still runs after it
        done = issue & at_last
        reading = outs & ~done
        # rdy = divs & fifo.idle as a register, formed from their next values: the divider's
        # o.ready and the hand-over's condition (with two banks the previous vector's output
        # pass may still run beside DIV: rdy waits for its end too)
        rdy = Signal()
        after = ~reading if self.banks == 2 else 1
        m.d.sync += rdy.eq((norm | divs & ~(div.o.valid & rdy)) & fifo.idle_next & after)
        m.d.comb += [self.i.ready.eq(recv), div.i.valid.eq(norm), div.o.ready.eq(rdy),
                     fifo.req.eq(outs)]
        # front: receive, then FOLD once the divider is free (DIV over: the previous
        # vector's K, step and last address have moved to the output pass)
        with m.If(take_in):
            m.d.sync += wcnt.eq(wcnt + 1)
            with m.If(self.i.payload.last):
                m.d.sync += [wcnt.eq(0), nlast_w.eq(wcnt), recv.eq(0), fold.eq(~divs), full.eq(divs)]
                if self.banks == 2:
                    m.d.sync += wbank.eq(~wbank)
        with m.If(full & ~divs):
            m.d.sync += [full.eq(0), fold.eq(1)]
        with m.If(fold):
            m.d.sync += [wait.eq(INT8Q_PREP_CYCLES - 2), nlast_d.eq(nlast_w), fold.eq(0), lens.eq(1)]
        with m.If(lens):
            m.d.sync += [wait.eq(wait - 1), K_next.eq(n_mus + B), num.eq(num_hi << n_mus[:3]),
                         nlast1_d.eq(nlast_d - 1), last0_d.eq(nlast_d == 0)]
            with m.If(wait == 0):
                m.d.sync += [lens.eq(0), norm.eq(1)]
        # NORM: the divider is idle here and takes the offer; mus and whether mu is 0 are
        # held for the step. The next receive starts now if its bank is not being read
        # (two banks), else after the output pass's last read
        with m.If(norm):
            m.d.sync += [norm.eq(0), divs.eq(1), mus_h.eq(mus), zero_h.eq(zero)]
            if self.banks == 2:
                m.d.sync += [recv.eq(~reading), fwait.eq(reading)]
            else:
                m.d.sync += fwait.eq(1)
        # back: once the output pass is idle (every credit back) R, K and the step follow
        # the divider's result and the step registers, and the hand-over (the result there)
        # leaves them with the vector's values and starts its output pass at address 0
        with m.If(rdy):
            m.d.sync += [R.eq(div.o.payload.quo), K.eq(K_next), step_m.eq(Mux(zero_h, 1 << (B - 1), pm_k)),
                         step_e.eq(Mux(zero_h, B - 1, e127 - k))]
        with m.If(rdy & div.o.valid):
            m.d.sync += [divs.eq(0), outs.eq(1), ridx.eq(0), at_last.eq(last0_d), nlast1.eq(nlast1_d)]
        with m.If(issue):
            m.d.sync += [ridx.eq(ridx + 1), at_last.eq(ridx == nlast1)]
        with m.If(done):
            m.d.sync += outs.eq(0)
            if self.banks == 2:
                m.d.sync += rbank.eq(~rbank)
            with m.If(fwait):
                m.d.sync += [fwait.eq(0), recv.eq(1)]
        return m
