"""RMSNorm fused with int8 quantization, exactly ``codec.intnorm.rmsnorm_int8``: the
residual h (n elements, FR fraction bits, |h| < 2^(resid_bits-1)) -> int8 x_q and the
vector's step (m, e), x ≈ x_q · m · 2^-e.

Composed of a buffer for h (``lib.memory``), the gamma memory (n entries g_q, written
through the ``g`` stream), ``hw.rsqrt.Rsqrt`` and ``hw.int8quant.Int8Quantizer``. A
norm's weights are all run-time values: g_q in the gamma memory, and its gamma_frac GF and
eps_q taken from the ``k`` stream, one beat per vector, so one build serves every norm of
a model. Per vector, with NB = ``norm_in_bits``:

1. receive: h is written to the buffer while a register keeps max |h| (N beats);
2. one cycle (repeated until the vector's ``k`` beat is there; it is taken in this
   cycle): p = max(0, bitlen(max|h|) - NB), GF and eps_q held for the vector, then
   eps' = rshift_round(eps_q, 2p) in the scan's first cycle;
3. scan: the buffer and the gamma memory are read in order through ``scan_stages`` = 5
   registers (the reads; hs = rshift_round(h, p); hs² and u = g_q · hs, a
   ``hw.multiplier.PipelinedMultiplier`` each); u goes to the quantizer (its receive
   pass), hs² into the sum of squares; with the last element ss = Σ hs² + eps' (at least
   1) goes to the Rsqrt, whose (y, E) is held for the vector, E with GF added (GF travels
   beside the Rsqrt's pipeline in registers that advance with it);
4. output: each beat of int8 elements of the quantizer with its step (m_u, e_u) passes
   ``step_stages`` = 4 registers that make the vector's step ``scale_mul(m_u, e_u, y, E +
   GF)``: m_u · y (a multiplier), then k = bitlen - B, m = (m_u · y) >> k,
   e = e_u + E + GF - k. (The step is the same for every beat of a vector; computing it
   per beat keeps the output a plain pipeline.)

The buffer is free for the next vector once the scan has left the pipeline; the
quantizer and the Rsqrt then work on this one while the next is received. The gamma
memory is not double-buffered: ``g`` writes take effect at once, so a host changing the
weights between vectors writes them after the last vector that uses the old ones has been
scanned (its ``k`` beat taken and N more cycles; its first output beat is later still).

``lanes`` elements per beat (dividing n; a beat per cycle in and out): the buffers' words
are beats (``g`` writes a whole word), the lanes' |h| meet in a compare tree and their
squares in an adder before the running max and sum, each lane has its own pre-shift and
multipliers, the quantizer has the same lanes. Cycles for one vector of N = n / lanes
beats without stalls, its ``k`` beat offered by the end of the receive
(``sim.vectorcycles.rmsnorm_cycles``). ``primitives`` (hw/primitives.py) builds the
quantizer's multipliers and buffer.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..vectorports import EXP_BITS, GAMMA_FRAC_BITS, eps_bits, rmsnorm_ports
from .checks import check_int
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import abs_value, bitlen, max_tree, rshift_round
from .int8quant import MAX_IN_BITS, Int8Quantizer
from .multiplier import PipelinedMultiplier
from .primitives import check_primitives
from .rsqrt import MAX_SS_BITS, Rsqrt, check_vector_config
from .signature import members

#: the states of a vector's passes
RECV, PREP, SCAN, DRAIN = range(4)


def ss_bits(vcfg: VectorConfig, n: int) -> int:
    """Bits of the sum of squares: hs² <= 2^(2 NB), ss <= n · 2^(2 NB) + eps_q with both
    terms below 2^eps_bits."""
    return eps_bits(vcfg, n) + 1


class RmsNorm(wiring.Component):
    """Ports: ``h`` {h}; ``g`` {addr, value} (gamma word writes, always ready); ``k``
    {gamma_frac, eps_q} (one beat per vector); ``o`` {x, m, e, last} (``lanes`` h, value,
    x per beat). One beat per cycle in and out."""

    #: registers of the scan: the reads, the pre-shift, the multipliers
    scan_stages = 2 + PipelinedMultiplier.latency
    #: registers of the step: the multiplier m_u · y, the normalization
    step_stages = PipelinedMultiplier.latency + 1

    def __new__(cls, vcfg: VectorConfig, n: int, *, lanes: int = 1, primitives: str = "generic"):
        check_vector_config("RmsNorm", vcfg)
        check_int("RmsNorm", "n", n, 1)
        check_lanes("RmsNorm", lanes, n)
        check_primitives(primitives, "RmsNorm")
        if ss_bits(vcfg, n) > MAX_SS_BITS:
            raise ValueError(f"RmsNorm n={n}, norm_in_bits={vcfg.norm_in_bits}: the sum of squares "
                             f"reaches 2^{MAX_SS_BITS}")
        if vcfg.gamma_bits + vcfg.norm_in_bits > MAX_IN_BITS:
            raise ValueError(f"RmsNorm gamma_bits + norm_in_bits = {vcfg.gamma_bits + vcfg.norm_in_bits}: "
                             f"the weighted input exceeds the quantizer's {MAX_IN_BITS} bits")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, n: int, *, lanes: int = 1, primitives: str = "generic"):
        self.vcfg, self.n, self.lanes, self.primitives = vcfg, n, lanes, primitives
        super().__init__(members(rmsnorm_ports(vcfg, n, lanes)))

    def elaborate(self, platform):
        m = Module()
        v, n = self.vcfg, self.n
        NB, GB, B = v.norm_in_bits, v.gamma_bits, v.scale_bits
        sb = ss_bits(v, n)
        L, N = self.lanes, n // self.lanes                # lanes, beats per vector
        q = m.submodules.quant = Int8Quantizer(GB + NB, B, n, lanes=L, primitives=self.primitives)
        rs = m.submodules.rsqrt = Rsqrt(v, sb)
        hbuf = m.submodules.hbuf = Memory(shape=self.h.payload.h.shape(), depth=N, init=[])
        gmem = m.submodules.gamma = Memory(shape=self.g.payload.value.shape(), depth=N, init=[])
        hwr, hrd = hbuf.write_port(), hbuf.read_port()
        gwr, grd = gmem.write_port(), gmem.read_port()
        m.d.comb += [self.g.ready.eq(1), gwr.en.eq(self.g.valid), gwr.addr.eq(self.g.payload.addr),
                     gwr.data.eq(self.g.payload.value)]

        wcnt, ridx = Signal(range(N)), Signal(range(N))
        hmax = Signal(v.resid_bits)
        p = Signal(range(v.resid_bits + 1))
        eps = Signal(sb)
        eps_k = Signal.like(self.k.payload.eps_q)        # the vector's constants
        gf_k, gf_ss = (Signal(signed(GAMMA_FRAC_BITS), name=nm) for nm in ("gf_k", "gf_ss"))
        ss, ss_out = Signal(sb), Signal(sb)
        ss_valid = Signal()
        take_h = self.h.valid & self.h.ready
        absh = []
        for k in range(L):
            absh.append(Signal(v.resid_bits, name=f"abs{k}"))
            m.d.comb += absh[k].eq(abs_value(lane(self.h.payload.h, k)))
        a = max_tree(m, absh, v.resid_bits, "lanemax")
        n_h = bitlen(m, hmax, "hmax")
        m.d.comb += [hwr.addr.eq(wcnt), hwr.data.eq(self.h.payload.h), hwr.en.eq(take_h)]

        # the scan: reads, pre-shift, hs² and g_q · hs into the quantizer (per lane)
        scan = Signal()
        adv, valid = advance(m, q.i, scan, self.scan_stages, "scan")
        m.d.comb += [hrd.addr.eq(ridx), grd.addr.eq(ridx), hrd.en.eq(adv), grd.en.eq(adv)]
        g1 = delay(m, adv, grd.data, 1, "g")
        squares = []
        for k in range(L):
            sq = m.submodules[f"sq{k}"] = PipelinedMultiplier(NB + 2, NB + 2)
            gu = m.submodules[f"gu{k}"] = PipelinedMultiplier(GB, NB + 2)
            hs = Signal(signed(NB + 2), name=f"hs{k}")
            with m.If(adv):
                m.d.sync += hs.eq(rshift_round(lane(hrd.data, k), p))
            m.d.comb += [sq.en.eq(adv), gu.en.eq(adv), sq.a.eq(hs), sq.b.eq(hs),
                         gu.a.eq(lane(g1, k)), gu.b.eq(hs), lane(q.i.payload.v, k).eq(gu.p)]
            squares.append(sq.p)
        beat_ss = Signal(2 * NB + 2 + (L - 1).bit_length())
        m.d.comb += beat_ss.eq(sum(squares))
        last = delay(m, adv, ridx == N - 1, self.scan_stages, "last")
        m.d.comb += q.i.payload.last.eq(last)
        with m.If(q.i.valid & q.i.ready):
            m.d.sync += ss.eq(ss + beat_ss)
            with m.If(last):
                m.d.sync += [ss.eq(0), ss_out.eq(ss + beat_ss + eps), gf_ss.eq(gf_k), ss_valid.eq(1)]

        state = Signal(range(4))
        with m.If(state == RECV):
            m.d.comb += self.h.ready.eq(1)
            with m.If(take_h):
                m.d.sync += [wcnt.eq(wcnt + 1), hmax.eq(Mux(a > hmax, a, hmax))]
                with m.If(wcnt == N - 1):
                    m.d.sync += state.eq(PREP)
        with m.Elif(state == PREP):
            m.d.sync += [p.eq(Mux(n_h > NB, n_h - NB, 0)), ridx.eq(0)]
            m.d.comb += self.k.ready.eq(~ss_valid)
            with m.If(~ss_valid & self.k.valid):
                m.d.sync += [eps_k.eq(self.k.payload.eps_q), gf_k.eq(self.k.payload.gamma_frac),
                             state.eq(SCAN)]
        with m.Elif(state == SCAN):
            m.d.comb += scan.eq(1)
            with m.If(ridx == 0):
                m.d.sync += eps.eq(rshift_round(eps_k, p << 1))
            with m.If(adv):
                m.d.sync += ridx.eq(ridx + 1)
                with m.If(ridx == N - 1):
                    m.d.sync += state.eq(DRAIN)
        with m.Elif(state == DRAIN):
            with m.If(valid == 0):
                m.d.sync += [wcnt.eq(0), hmax.eq(0), state.eq(RECV)]

        # the vector's 1/sqrt: ss (at least 1) in, (y, E + GF) held until its last element;
        # GF passes registers enabled like the Rsqrt's stages (its ready is their advance)
        y = Signal.like(rs.o.payload.y)
        E = Signal(signed(len(rs.o.payload.E) + 2))
        y_valid = Signal()
        m.d.comb += [rs.i.valid.eq(ss_valid), rs.i.payload.ss.eq(Mux(ss_out == 0, 1, ss_out)),
                     rs.o.ready.eq(~y_valid)]
        gf_y = delay(m, rs.i.ready, gf_ss, rs.latency, "gf")
        with m.If(rs.i.ready & ss_valid):
            m.d.sync += ss_valid.eq(0)
        with m.If(rs.o.valid & ~y_valid):
            m.d.sync += [y.eq(rs.o.payload.y), E.eq(rs.o.payload.E + gf_y), y_valid.eq(1)]

        # the step: scale_mul(m_u, e_u, y, E + GF) per element
        go = q.o.valid & y_valid
        sadv, _ = advance(m, self.o, go, self.step_stages, "step")
        m.d.comb += q.o.ready.eq(sadv & y_valid)
        with m.If(q.o.valid & q.o.ready & q.o.payload.last):
            m.d.sync += y_valid.eq(0)
        mm = m.submodules.mm = PipelinedMultiplier(B + 1, len(y) + 1)
        m.d.comb += [mm.en.eq(sadv), mm.a.eq(q.o.payload.m), mm.b.eq(y)]
        prod = Signal(B + len(y))
        m.d.comb += prod.eq(mm.p)
        k = Signal(range(len(prod) + 1))
        m.d.comb += k.eq(bitlen(m, prod, "step") - B)
        e_in = Signal(signed(EXP_BITS + 2))
        m.d.comb += e_in.eq(q.o.payload.e + E)
        e3 = delay(m, sadv, e_in, PipelinedMultiplier.latency, "e")
        out = self.o.payload
        with m.If(sadv):
            m.d.sync += [out.m.eq(prod >> k), out.e.eq(e3 - k)]
        m.d.comb += [out.x.eq(delay(m, sadv, q.o.payload.x, self.step_stages, "x")),
                     out.last.eq(delay(m, sadv, q.o.payload.last, self.step_stages, "xlast"))]
        return m
