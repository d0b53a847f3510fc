"""Symmetric int8 quantization of a vector, exactly ``codec.fixedpoint.quantize_int8``.

Per vector (its elements |v| < 2^in_bits arrive in beats of ``lanes``, one beat per
cycle, ``last`` on the final beat):

1. receive: every beat is written to a buffer (``lib.memory``, one word per beat, room for
   ``max_n`` elements; a longer vector is outside the contract) while a register keeps
   mu = max |v|;
2. one cycle: K = bitlen(mu) + B (mu = 0 counts as 1) and the numerator 127 · 2^K go to a
   sequential restoring divider (``hw.divider.RestoringDivider``, B + 8 quotient bits:
   127 · 2^K / mu < 2^(B+8)), and mu · M127 (1/127 as a B-bit multiplier,
   ``fixedpoint.to_multiplier``) is registered for the step;
3. when the divider is done: R = floor(127 · 2^K / mu), and the step
   (m, e) = normalize(mu · M127) (m = that product >> k, k = bitlen - B >= 0, e = e127 - k;
   an all-zero vector's step is m = 2^(B-1), e = B - 1);
4. output pass: the buffer is read in order and each beat goes through a pipeline of
   ``out_stages`` = 5 registers: the read, the multiplier v · R (``hw.multiplier``, three
   stages), then x_q = clamp(rshift_round(v · R, K), ±127), which leaves with the step and
   ``last``.

``lanes`` elements per beat (a beat per cycle in the receive pass and out of the output
pass; the lanes' |v| meet in a compare tree before the running max, each lane has its own
multiplier and clamp, the buffer's word is a beat); a vector is ceil(n / lanes) beats,
its last beat filled with zeros if n is not a multiple (zeros change neither mu nor the
other elements; their x_q are 0). The buffer holds one vector: the next vector is
accepted once every beat of this one has been read (its tail may still be in the output
pipeline), and its R and step replace this one's only when that pipeline is empty.

Cycles for a vector of N = ceil(n / lanes) beats without stalls, first input accepted to
last output (``sim.vectorcycles.int8quant_cycles``): N (receive) + 1 (K) + B + 9
(divider, with its hand-over) + N + out_stages - 1 (output pass) = 2N + B + 15.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..codec.fixedpoint import Q8, to_multiplier
from ..vectorports import int8quant_ports
from .checks import check_int
from .divider import RestoringDivider
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import abs_value, bitlen, clamp, max_tree, rshift_round
from .multiplier import PipelinedMultiplier
from .signature import members

#: the states of a vector's passes
RECV, NORM, DIV, OUT = range(4)
#: the largest input magnitude bits of the contract (v · R < 2^62)
MAX_IN_BITS = 39


def check_scale_bits(owner: str, scale_bits: int) -> int:
    check_int(owner, "scale_bits", scale_bits, 8)
    if scale_bits > 20:
        raise ValueError(f"{owner} scale_bits must be at most 20, not {scale_bits}")
    return scale_bits


class Int8Quantizer(wiring.Component):
    """Ports: ``i`` {v, last}; ``o`` {x, m, e, last} (``lanes`` v and x per beat). One beat
    per cycle in and out; 2N + B + 15 cycles per vector of N beats without stalls."""

    #: registers of the output pass: read, multiplier (3), round-shift and clamp
    out_stages = 1 + PipelinedMultiplier.latency + 1

    def __new__(cls, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1):
        check_int("Int8Quantizer", "in_bits", in_bits, 1)
        if in_bits > MAX_IN_BITS:
            raise ValueError(f"Int8Quantizer in_bits must be at most {MAX_IN_BITS} (v · R < 2^62), "
                             f"not {in_bits}")
        check_scale_bits("Int8Quantizer", scale_bits)
        check_int("Int8Quantizer", "max_n", max_n, 1)
        check_lanes("Int8Quantizer", lanes)
        return super().__new__(cls)

    def __init__(self, in_bits: int, scale_bits: int, max_n: int, *, lanes: int = 1):
        self.in_bits, self.scale_bits, self.max_n, self.lanes = in_bits, scale_bits, max_n, lanes
        #: buffer words (beats) of the longest vector
        self.depth = -(-max_n // lanes)
        super().__init__(members(int8quant_ports(in_bits, scale_bits, lanes)))

    def elaborate(self, platform):
        m = Module()
        VB, B = self.in_bits, self.scale_bits
        M127, e127 = to_multiplier(1 / Q8, B)
        div = m.submodules.div = RestoringDivider(VB + B + 7, VB, B + 8)
        mem = m.submodules.mem = Memory(shape=self.i.payload.v.shape(), depth=self.depth, init=[])
        wr, rd = mem.write_port(), mem.read_port()

        wcnt = Signal(range(self.depth))           # write address (receive)
        nlast = Signal(range(self.depth))          # the vector's last address
        ridx = Signal(range(self.depth))           # read address (output pass)
        mu = Signal(VB)                            # max |v| so far
        K_next = Signal(range(VB + B + 1))         # this vector's K, R's step, while dividing
        pm = Signal(VB + B)                        # mu · M127
        zero = Signal()
        K = Signal(range(VB + B + 1))              # the output pass's K, R and step
        R = Signal(B + 8)
        step_m = Signal(B)
        step_e = Signal(signed(len(self.o.payload.e)))

        mus = Signal(VB)
        m.d.comb += mus.eq(Mux(mu == 0, 1, mu))
        n_pm = bitlen(m, pm, "bl_pm")
        n_mus = bitlen(m, mus, "bl_mu")
        k = Signal(range(VB + B + 1))
        m.d.comb += k.eq(n_pm - B)
        take_in = self.i.valid & self.i.ready
        absv = []
        for j in range(self.lanes):
            absv.append(Signal(VB + 1, name=f"abs{j}"))
            m.d.comb += absv[j].eq(abs_value(lane(self.i.payload.v, j)))
        a = max_tree(m, absv, VB + 1, "lanemax")

        # the output pass's pipeline: read, v · R, round-shift-clamp (one per lane)
        out = Signal()
        adv, valid = advance(m, self.o, out, self.out_stages, "q")
        m.d.comb += [rd.addr.eq(ridx), rd.en.eq(adv)]
        for j in range(self.lanes):
            mul = m.submodules[f"mul{j}"] = PipelinedMultiplier(VB + 1, B + 9)
            m.d.comb += [mul.en.eq(adv), mul.a.eq(lane(rd.data, j)), mul.b.eq(R)]
            t = Signal(signed(len(mul.p) + 1), name=f"t{j}")
            m.d.comb += t.eq(rshift_round(mul.p, K))
            with m.If(adv):
                m.d.sync += lane(self.o.payload.x, j).eq(clamp(t, Q8))
        m.d.comb += [self.o.payload.m.eq(step_m),
                     self.o.payload.e.eq(step_e),
                     self.o.payload.last.eq(delay(m, adv, ridx == nlast, self.out_stages, "qlast"))]

        m.d.comb += [wr.addr.eq(wcnt), wr.data.eq(self.i.payload.v), wr.en.eq(take_in),
                     div.i.payload.num.eq(Const(Q8, 7) << (n_mus + B)), div.i.payload.den.eq(mus)]
        state = Signal(range(4))
        with m.If(state == RECV):
            m.d.comb += self.i.ready.eq(1)
            with m.If(take_in):
                m.d.sync += [wcnt.eq(wcnt + 1), mu.eq(Mux(a > mu, a, mu))]
                with m.If(self.i.payload.last):
                    m.d.sync += [nlast.eq(wcnt), state.eq(NORM)]
        with m.Elif(state == NORM):
            m.d.comb += div.i.valid.eq(1)
            m.d.sync += [K_next.eq(n_mus + B), pm.eq(mus * M127), zero.eq(mu == 0)]
            with m.If(div.i.ready):
                m.d.sync += state.eq(DIV)
        with m.Elif(state == DIV):
            m.d.comb += div.o.ready.eq(valid == 0)
            with m.If(div.o.valid & (valid == 0)):
                m.d.sync += [R.eq(div.o.payload.quo), K.eq(K_next), ridx.eq(0),
                             step_m.eq(Mux(zero, 1 << (B - 1), pm >> k)),
                             step_e.eq(Mux(zero, B - 1, e127 - k)), state.eq(OUT)]
        with m.Elif(state == OUT):
            m.d.comb += out.eq(1)
            with m.If(adv):
                m.d.sync += ridx.eq(ridx + 1)
                with m.If(ridx == nlast):
                    m.d.sync += [wcnt.eq(0), mu.eq(0), state.eq(RECV)]
        return m
