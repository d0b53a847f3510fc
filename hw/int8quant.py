"""Symmetric int8 quantization of a vector, exactly ``codec.fixedpoint.quantize_int8``.

Per vector (its elements |v| < 2^in_bits arrive in beats of ``lanes``, one beat per
cycle, ``last`` on the final beat):

1. receive: every beat is written to a buffer (``hw.actbuffer.ActivationBuffer`` without
   its fabric registers: a block RAM with its output register, read latency 2; one word per beat, room for
   ``max_n`` elements; a longer vector is outside the contract) while the beat's max |v|
   is registered and folded into mu = max |v| a cycle later;
2. ``vectortiming.INT8Q_PREP_CYCLES`` cycles after the last beat (FOLD: the last beat's
   |v| into mu; LEN: mu floored at 1 registered, its bit length through
   ``fixedops.bitlen_staged``, then K = bitlen(mu) + B and the numerator 127 · 2^K
   registered), one cycle (NORM) offers them to a sequential restoring divider
   (``hw.divider.RestoringDivider``, B + 8 quotient bits: 127 · 2^K / mu < 2^(B+8));
   meanwhile free-running registers form the step from the floored mu: mu · M127 (1/127
   as a B-bit multiplier, ``fixedpoint.to_multiplier``; a ``WideMultiplier``), its bit
   length, k = bitlen - B, and (mu · M127) >> k (``fixedops.staged_rshift``): settled long
   before the divider is done (checked at elaboration);
3. when the divider is done: R = floor(127 · 2^K / mu), and the step (m, e) =
   ((mu · M127) >> k, e127 - k) (an all-zero vector's step is m = 2^(B-1), e = B - 1);
4. output pass: the buffer is read in order and each beat goes through a credit pipeline
   (``hw.elementpipe.CreditFifo``) of ``out_stages`` = ``vectortiming.INT8Q_OUT_STAGES``
   stages: free-running registers for the read (two), v · R (a ``WideMultiplier``), ((2 v R
   >> K) + 1) >> 1 as a staged shift and the rounding add (on the shift's low 10 bits,
   beside it whether the result lies in ±127), then the clamp to ±127 written into the output
   FIFO, whose entries leave with the step and ``last``. A read issues while the pipeline
   holds a credit, so ``o.ready`` reaches only the FIFO's read side and the credit count,
   never the read address, the pipeline or mu (whose end-of-vector reset follows the
   issue and a registered "this read is the last").

The running max mu takes a beat's max |v| when it is larger (the comparison from the
halves' comparisons, three short carry chains side by side).

``lanes`` elements per beat (a beat per cycle in the receive pass and out of the output
pass; the lanes' |v| meet in a compare tree before the register, each lane has its own
multiplier and clamp, the buffer's word is a beat); a vector is ceil(n / lanes) beats,
its last beat filled with zeros if n is not a multiple (zeros change neither mu nor the
other elements; their x_q are 0). The buffer holds one vector: the next vector is
accepted once every beat of this one has been read (its tail may still be in the output
pipeline or FIFO), and its R and step replace this one's only when both are empty (every
credit returned).

Cycles for a vector of N = ceil(n / lanes) beats without stalls, first input accepted to
last output (``sim.vectorcycles.int8quant_cycles``): N (receive) + INT8Q_PREP_CYCLES +
1 (NORM) + B + 9 (divider, with its hand-over) + N + out_stages - 1 (output pass).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from ..codec.fixedpoint import Q8, to_multiplier
from ..vectorports import int8quant_ports
from ..vectortiming import BITLEN_STAGES, INT8Q_OUT_STAGES, INT8Q_PREP_CYCLES, MUL_STAGES, SHIFT_STAGES
from .actbuffer import ActivationBuffer
from .checks import check_int
from .divider import RestoringDivider
from .elementpipe import CreditFifo, check_lanes, credit_valid, delay, lane
from .fixedops import abs_value, bitlen_staged, fits_signed, max_tree, staged_rshift
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .signature import members

#: the states of a vector's passes
RECV, FOLD, LEN, NORM, DIV, OUT = range(6)
#: the largest input magnitude bits of the contract (v · R < 2^62)
MAX_IN_BITS = 39


def check_scale_bits(owner: str, scale_bits: int) -> int:
    check_int(owner, "scale_bits", scale_bits, 8)
    if scale_bits > 20:
        raise ValueError(f"{owner} scale_bits must be at most 20, not {scale_bits}")
    return scale_bits


class Int8Quantizer(wiring.Component):
    """Ports: ``i`` {v, last}; ``o`` {x, m, e, last} (``lanes`` v and x per beat). One beat
    per cycle in and out; ``sim.vectorcycles.int8quant_cycles`` per vector without stalls."""

    #: registers of the output pass: read, multiplier, staged round-shift, rounding, clamp
    out_stages = INT8Q_OUT_STAGES

    def __new__(cls, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1,
                primitives: str = "generic"):
        check_int("Int8Quantizer", "in_bits", in_bits, 1)
        if in_bits > MAX_IN_BITS:
            raise ValueError(f"Int8Quantizer in_bits must be at most {MAX_IN_BITS} (v · R < 2^62), "
                             f"not {in_bits}")
        check_scale_bits("Int8Quantizer", scale_bits)
        check_int("Int8Quantizer", "max_n", max_n, 1)
        check_lanes("Int8Quantizer", lanes)
        check_primitives(primitives, "Int8Quantizer")
        return super().__new__(cls)

    def __init__(self, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1,
                 primitives: str = "generic"):
        self.in_bits, self.scale_bits, self.max_n, self.lanes = in_bits, scale_bits, max_n, lanes
        self.primitives = primitives
        #: buffer words (beats) of the longest vector
        self.depth = -(-max_n // lanes)
        super().__init__(members(int8quant_ports(in_bits, scale_bits, lanes)))

    def elaborate(self, platform):
        m = Module()
        VB, B = self.in_bits, self.scale_bits
        M127, e127 = to_multiplier(1 / Q8, B)
        div = m.submodules.div = RestoringDivider(VB + B + 7, VB, B + 8)
        # the step settles this many cycles after mu's last update (FOLD), before the hand-over
        settle = 1 + MUL_STAGES + BITLEN_STAGES + 1 + SHIFT_STAGES
        assert settle <= INT8Q_PREP_CYCLES - 1 + 1 + div.latency, "the step would not settle in time"
        vbits = len(Value.cast(self.i.payload.v))
        buf = m.submodules.mem = ActivationBuffer(self.depth, vbits, primitives=self.primitives, fabric=False)

        wcnt = Signal(range(self.depth))           # write address (receive)
        nlast = Signal(range(self.depth))          # the vector's last address
        nlast1 = Signal(range(self.depth))         # nlast - 1 (the address before the last)
        ridx = Signal(range(self.depth))           # read address (output pass)
        at_last = Signal()                         # ridx == nlast, registered beside ridx
        mu = Signal(VB)                            # max |v| so far
        a_r = Signal(VB + 1)                       # the beat's max |v|, registered
        a_v = Signal()
        wait = Signal(range(INT8Q_PREP_CYCLES + 1))
        K_next = Signal(range(VB + B + 1))         # this vector's K, R's step, while dividing
        num = Signal(VB + B + 7)
        K = Signal(range(VB + B + 1))              # the output pass's K, R and step
        R = Signal(B + 8)
        step_m = Signal(B)
        step_e = Signal(signed(len(self.o.payload.e)))

        # free-running: mu floored at 1, its bit length; mu · M127, its bit length, the step
        mus = Signal(VB)
        zero = Signal()
        m.d.sync += [mus.eq(Cat(mu[0] | (mu[1:] == 0), mu[1:])), zero.eq(mu == 0)]
        n_mus = bitlen_staged(m, 1, mus, "bl_mu")
        pmul = m.submodules.pm = WideMultiplier(VB + 1, B + 1, primitives=self.primitives)
        m.d.comb += [pmul.en.eq(1), pmul.a.eq(mus), pmul.b.eq(M127)]
        pm = pmul.p.as_unsigned()[:VB + B]
        n_pm = bitlen_staged(m, 1, pm, "bl_pm")
        k = Signal(range(VB + B + 1))
        m.d.sync += k.eq(n_pm - B)
        pm_k = staged_rshift(m, 1, pm, k, B, SHIFT_STAGES, "pmk")

        take_in = self.i.valid & self.i.ready
        absv = []
        for j in range(self.lanes):
            absv.append(Signal(VB + 1, name=f"abs{j}"))
            m.d.comb += absv[j].eq(abs_value(lane(self.i.payload.v, j)))
        m.d.sync += [a_r.eq(max_tree(m, absv, VB + 1, "lanemax")), a_v.eq(take_in)]
        # a_r > mu from the halves' comparisons (three short carry chains side by side)
        h = (VB + 1) // 2
        a_hi, mu_hi = a_r[h:], mu[h:]
        gt = (a_hi > mu_hi) | ~(a_hi < mu_hi) & (a_r[:h] > mu[:h])
        with m.If(a_v & gt):
            m.d.sync += mu.eq(a_r)

        # the output pass: a credit pipeline (hw.elementpipe.CreditFifo) of out_stages: the
        # read, v · R, the staged round-shift and the rounding add in free-running registers,
        # the clamp written into the output FIFO (per lane); o.ready moves only the FIFO
        xw = len(Value.cast(self.o.payload.x))
        fifo = m.submodules.ofifo = CreditFifo(xw + 1, self.out_stages)
        issue = fifo.issue
        valid = credit_valid(m, issue, self.out_stages, "q")
        run = Const(1)
        m.d.comb += [buf.r_addr.eq(ridx), buf.r_en.eq(run)]
        xs = []
        for j in range(self.lanes):
            mul = m.submodules[f"mul{j}"] = WideMultiplier(VB + 1, B + 9, primitives=self.primitives)
            m.d.comb += [mul.en.eq(run), mul.a.eq(buf.r_data[j * (VB + 1):(j + 1) * (VB + 1)].as_signed()),
                         mul.b.eq(R)]
            sh = staged_rshift(m, run, mul.p << 1, K, len(mul.p) + 1, SHIFT_STAGES, f"sh{j}")
            # the rounding add on sh's low 10 bits, beside it whether sh fits them (then
            # t = (sh + 1) >> 1 is the rounded low part; else it is far out of ±127)
            # (t in ±127 iff sh in -255 .. 254)
            t = Signal(signed(10), name=f"t{j}")
            t_in, t_neg = Signal(name=f"tin{j}"), Signal(name=f"tneg{j}")
            s10 = sh[:10].as_signed()
            m.d.sync += [t.eq((s10 + 1) >> 1), t_in.eq(fits_signed(sh, 10) & (s10 <= 2 * Q8) & (s10 >= -2 * Q8 - 1)),
                         t_neg.eq(sh[-1])]
            xs.append(Mux(t_in, t[:8], Mux(t_neg, -Q8, Q8))[:8])
        qlast = delay(m, run, at_last, self.out_stages - 1, "qlast")
        m.d.comb += [fifo.w_en.eq(valid[-1]), fifo.w_data.eq(Cat(*xs, qlast)),
                     self.o.valid.eq(fifo.o.valid), fifo.o.ready.eq(self.o.ready),
                     Value.cast(self.o.payload.x).eq(fifo.o.payload[:xw]),
                     self.o.payload.last.eq(fifo.o.payload[xw]),
                     self.o.payload.m.eq(step_m), self.o.payload.e.eq(step_e)]

        m.d.comb += [buf.w_addr.eq(wcnt), buf.w_data.eq(Value.cast(self.i.payload.v)), buf.w_en.eq(take_in),
                     div.i.payload.num.eq(num), div.i.payload.den.eq(mus)]
        state = Signal(range(6))
        recv = Signal(init=1)                      # state == RECV, a register of its own (i.ready)
        m.d.comb += self.i.ready.eq(recv)
        with m.If(state == RECV):
            with m.If(take_in):
                m.d.sync += wcnt.eq(wcnt + 1)
                with m.If(self.i.payload.last):
                    m.d.sync += [nlast.eq(wcnt), recv.eq(0), state.eq(FOLD)]
        with m.Elif(state == FOLD):
            m.d.sync += [wait.eq(INT8Q_PREP_CYCLES - 2), nlast1.eq(nlast - 1), state.eq(LEN)]
        with m.Elif(state == LEN):
            m.d.sync += [wait.eq(wait - 1), K_next.eq(n_mus + B),
                         num.eq(Cat(Const(0, B), Const(Q8, 7)) << n_mus)]
            with m.If(wait == 0):
                m.d.sync += state.eq(NORM)
        with m.Elif(state == NORM):
            m.d.comb += div.i.valid.eq(1)
            with m.If(div.i.ready):
                m.d.sync += state.eq(DIV)
        with m.Elif(state == DIV):
            m.d.comb += div.o.ready.eq(fifo.idle)
            with m.If(div.o.valid & fifo.idle):
                m.d.sync += [R.eq(div.o.payload.quo), K.eq(K_next), ridx.eq(0), at_last.eq(nlast == 0),
                             step_m.eq(Mux(zero, 1 << (B - 1), pm_k)),
                             step_e.eq(Mux(zero, B - 1, e127 - k)), state.eq(OUT)]
        with m.Elif(state == OUT):
            m.d.comb += fifo.req.eq(1)
            with m.If(issue):
                m.d.sync += [ridx.eq(ridx + 1), at_last.eq(ridx == nlast1)]
                with m.If(at_last):
                    m.d.sync += [wcnt.eq(0), mu.eq(0), recv.eq(1), state.eq(RECV)]
        return m
