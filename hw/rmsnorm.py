"""RMSNorm fused with int8 quantization, exactly ``codec.intnorm.rmsnorm_int8``: the
residual h (n elements, FR fraction bits, |h| < 2^(resid_bits-1)) -> int8 x_q and the
vector's step (m, e), x ≈ x_q · m · 2^-e.

Composed of a buffer for h and the gamma memory (n entries g_q, written through the ``g``
stream), each an ``hw.actbuffer.ActivationBuffer`` without its fabric registers (a block
RAM with its output register, read latency 2), ``hw.rsqrt.Rsqrt`` and
``hw.int8quant.Int8Quantizer``. A norm's weights are all run-time values: g_q in the gamma
memory, and its gamma_frac GF and eps_q taken from the ``k`` stream, one beat per vector,
so one build serves every norm of a model. Per vector, with NB = ``norm_in_bits``; the
stage counts are ``tritforge.vectortiming``'s:

1. receive: h is written to the buffer while the OR of each beat's |h| is registered and
   ORed into a running value a cycle later (N beats): its bit length is that of max |h|,
   and an OR needs no comparator;
2. RMS_PREP_CYCLES: FOLD (the last beat's |h|), LEN (BITLEN_STAGES cycles:
   ``fixedops.bitlen_staged`` of the OR, free-running), then one cycle (repeated until
   the vector's ``k`` beat is there; it is taken in this cycle):
   p = max(0, bitlen(max|h|) - NB), GF and eps_q held for the vector;
   eps' = rshift_round(eps_q, 2p) follows in free-running registers (a staged shift of
   2 eps_q by 2p and the rounding add), settled long before the scan's end;
3. scan: the buffer and the gamma memory are read in order through ``scan_stages`` =
   RMS_SCAN_STAGES registers (the reads, two; hs = rshift_round(h, p) as
   ``fixedops.staged_rshift`` of 2h by p and the rounding add; hs² and u = g_q · hs, a
   ``hw.multiplier.WideMultiplier`` each); u goes to the quantizer (its receive pass), hs²
   into the sum of squares (two carry chains, the low quarter's carry out registered
   into the rest with the next beat); with the last element (RMS_SS_CYCLES) Σ hs² is
   registered with eps' or eps' + 2^h chosen by that beat's low carry, then ss = Σ hs² +
   eps' with whether it is 0 (from flags: any square nonzero, eps' nonzero), and ss (at
   least 1) goes to the Rsqrt,
   which is always ready (its stages run free, GF in free-running registers beside
   them), and its (y, E) with GF added is held for the vector (a result that finds the
   previous vector's still held waits in a second register, (yn, En));
4. output: each beat of int8 elements of the quantizer with its step (m_u, e_u) passes
   a credit pipeline (``hw.elementpipe.CreditFifo``) of ``step_stages`` = RMS_STEP_STAGES
   stages that make the vector's step ``scale_mul(m_u, e_u, y, E + GF)``: m_u · y (a
   WideMultiplier), its bit length (``bitlen_staged``), k = bitlen - B, m = (m_u · y) >> k
   (``staged_rshift``, its last stage written into the output FIFO) with e = e_u + E + GF
   - k beside it. (The step is the same for every beat of a vector; computing it per beat
   keeps the output a plain pipeline.) The quantizer's ``o.ready`` is one register (a
   credit held and (y, E) held, formed from their next values: the FIFO's ``can_next``
   and y's), and ``o.ready`` moves only the output FIFO's read side, the credit count and
   that register's input: a consumer's ready reaches neither the step's registers nor
   the quantizer in the same cycle.

Each pass is a register of its own (one-hot: receive, FOLD, LEN, PREP, scan, drain), and
whether the scan's registers are empty is registered from their next valid bits, so the
passes' conditions are registers. The buffer is free for the next vector once the scan
has left the pipeline; the quantizer and the Rsqrt then work on this one while the next
is received. The gamma
memory is not double-buffered: ``g`` writes take effect at once, so a host changing the
weights between vectors writes them after the last vector that uses the old ones has been
scanned (its ``k`` beat taken and N more cycles; its first output beat is later still).

``lanes`` elements per beat (dividing n; a beat per cycle in and out): the buffers' words
are beats (``g`` writes a whole word), the lanes' |h| meet in an OR and their squares in
an adder before the running OR and sum, each lane has its own pre-shift and
multipliers, the quantizer has the same lanes. Cycles for one vector of N = n / lanes
beats without stalls, its ``k`` beat offered by the end of the receive
(``sim.vectorcycles.rmsnorm_cycles``). ``primitives`` (hw/primitives.py) builds the
multipliers' tiles and the block RAMs of the buffers, the quantizer's and the Rsqrt's too.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from ..accelconfig import VectorConfig
from ..vectorports import EXP_BITS, GAMMA_FRAC_BITS, eps_bits, rmsnorm_ports
from ..vectortiming import (BITLEN_STAGES, MUL_STAGES, RMS_PREP_CYCLES, RMS_SCAN_STAGES, RMS_SS_CYCLES,
                            RMS_STEP_STAGES, SHIFT_STAGES)
from .actbuffer import ActivationBuffer
from .checks import check_int
from .elementpipe import CreditFifo, advance, check_lanes, credit_valid, delay, lane
from .fixedops import abs_value, bitlen_staged, staged_rshift
from .int8quant import MAX_IN_BITS, Int8Quantizer
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .rsqrt import MAX_SS_BITS, Rsqrt, check_vector_config
from .signature import members



def ss_bits(vcfg: VectorConfig, n: int) -> int:
    """Bits of the sum of squares: hs² <= 2^(2 NB), ss <= n · 2^(2 NB) + eps_q with both
    terms below 2^eps_bits."""
    return eps_bits(vcfg, n) + 1


class RmsNorm(wiring.Component):
    """Ports: ``h`` {h}; ``g`` {addr, value} (gamma word writes, always ready); ``k``
    {gamma_frac, eps_q} (one beat per vector); ``o`` {x, m, e, last} (``lanes`` h, value,
    x per beat). One beat per cycle in and out."""

    #: registers of the scan: the reads, the staged pre-shift and its rounding, the multipliers
    scan_stages = RMS_SCAN_STAGES
    #: registers of the step: the multiplier m_u · y, its bit length, k, the staged shift
    step_stages = RMS_STEP_STAGES

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
        P = self.primitives
        q = m.submodules.quant = Int8Quantizer(GB + NB, B, n, lanes=L, primitives=P)
        rs = m.submodules.rsqrt = Rsqrt(v, sb, primitives=P)
        hw_bits, gw_bits = len(Value.cast(self.h.payload.h)), len(Value.cast(self.g.payload.value))
        hbuf = m.submodules.hbuf = ActivationBuffer(N, hw_bits, primitives=P, fabric=False)
        gmem = m.submodules.gamma = ActivationBuffer(N, gw_bits, primitives=P, fabric=False)
        m.d.comb += [self.g.ready.eq(1), gmem.w_en.eq(self.g.valid), gmem.w_addr.eq(self.g.payload.addr),
                     gmem.w_data.eq(Value.cast(self.g.payload.value))]

        wcnt, ridx = Signal(range(N)), Signal(range(N))
        at_end = Signal()                                # ridx == N - 1, registered beside ridx
        # bitlen(max |h|) = bitlen(OR of the |h|): the running value is an OR (no compare)
        hmax = Signal(v.resid_bits)                      # OR of the vector's |h| so far
        a_r = Signal(v.resid_bits)                       # OR of the beat's |h|, registered
        p = Signal(range(v.resid_bits + 1))
        eps_k = Signal.like(self.k.payload.eps_q)        # the vector's constants
        gf_k, gf_ss = (Signal(signed(GAMMA_FRAC_BITS), name=nm) for nm in ("gf_k", "gf_ss"))
        ss_sum, ss_out = Signal(sb), Signal(sb)
        sum_v, nz, ss_valid = Signal(), Signal(), Signal()
        # the passes, one register each (one-hot): receive, FOLD, LEN, PREP, scan, drain
        recv = Signal(init=1)
        fold, prep, scanst, drain = (Signal(name=nm) for nm in ("fold", "prep", "scanst", "drain"))
        lens = Signal(BITLEN_STAGES)
        wlast = Signal(init=N == 1)                      # wcnt == N - 1, registered beside wcnt
        empty = Signal(init=1)                           # no scan element in its registers
        take_h = self.h.valid & recv
        absh = []
        for k in range(L):
            absh.append(Signal(v.resid_bits, name=f"abs{k}"))
            m.d.comb += absh[k].eq(abs_value(lane(self.h.payload.h, k)))
        a_v = Signal()
        m.d.sync += [a_r.eq(Cat(*[Cat(*[a[j] for a in absh]).any() for j in range(v.resid_bits)])),
                     a_v.eq(take_h)]
        with m.If(drain & empty):
            m.d.sync += hmax.eq(0)
        with m.Elif(a_v):
            m.d.sync += hmax.eq(hmax | a_r)
        n_h = bitlen_staged(m, 1, hmax, "hmax")          # free-running; settled in PREP
        m.d.comb += [hbuf.w_addr.eq(wcnt), hbuf.w_data.eq(Value.cast(self.h.payload.h)), hbuf.w_en.eq(take_h)]

        # eps' = rshift_round(eps_q, 2p): free-running, settled long before the scan's end
        eps_sh = staged_rshift(m, 1, eps_k << 1, Cat(Const(0, 1), p), sb, SHIFT_STAGES, "eps")
        eps = Signal(sb, reset_less=True)
        m.d.sync += eps.eq((eps_sh + 1) >> 1)
        assert SHIFT_STAGES + 2 <= RMS_SCAN_STAGES, "eps' (and whether it is 0) would not settle before the sum"

        # the scan: reads, the staged pre-shift, hs² and g_q · hs into the quantizer (per lane)
        scan = Signal()
        adv, valid = advance(m, q.i, scan, self.scan_stages, "scan")
        m.d.comb += [hbuf.r_addr.eq(ridx), gmem.r_addr.eq(ridx), hbuf.r_en.eq(adv), gmem.r_en.eq(adv)]
        g_hs = delay(m, adv, gmem.r_data, SHIFT_STAGES + 1, "g")
        squares = []
        for k in range(L):
            sq = m.submodules[f"sq{k}"] = WideMultiplier(NB + 2, NB + 2, primitives=P, spare_first=True)
            gu = m.submodules[f"gu{k}"] = WideMultiplier(GB, NB + 2, primitives=P, spare_first=True)
            h = hbuf.r_data[k * v.resid_bits:(k + 1) * v.resid_bits].as_signed()
            sh = staged_rshift(m, adv, h << 1, p, NB + 2, SHIFT_STAGES, f"hs{k}")
            hs = Signal(signed(NB + 2), name=f"hs{k}", reset_less=True)
            with m.If(adv):
                m.d.sync += hs.eq((sh + 1) >> 1)
            m.d.comb += [sq.en.eq(adv), gu.en.eq(adv), sq.a.eq(hs), sq.b.eq(hs),
                         gu.a.eq(g_hs[k * GB:(k + 1) * GB].as_signed()), gu.b.eq(hs),
                         lane(q.i.payload.v, k).eq(gu.p)]
            squares.append(sq.p)
        beat_ss = Signal(2 * NB + 2 + (L - 1).bit_length())
        m.d.comb += beat_ss.eq(sum(squares))
        last = delay(m, adv, at_end, self.scan_stages, "last")
        m.d.comb += q.i.payload.last.eq(last)
        # the sum of squares: the last beat's square added (RMS_SS_CYCLES: this cycle), then
        # eps' and whether ss is 0 (the next); ss is offered to the Rsqrt the cycle after
        assert RMS_SS_CYCLES == 2
        # Whether ss is 0 from registers alone: a square is nonzero where a lane's product
        # register is (the sum is 0 only if every square is), ORed into a flag beside the sum,
        # and whether eps' is (free-running)
        sq_nz, sum_nz, eps_nz = Signal(), Signal(), Signal()
        beat_nz = Cat(*squares).any()
        m.d.sync += eps_nz.eq(eps != 0)
        # The sum in two parts, each its own carry chain: the low quarter's carry out is
        # registered and enters the rest with the next beat. The last beat's carry out (a
        # short chain's) picks eps' or eps' + 2^h (both free-running), which the next cycle
        # adds to the parts (one chain)
        h = sb // 4
        ss_lo, ss_hi, ss_c = Signal(h), Signal(sb - h), Signal()
        eps1 = Signal(sb)
        eps_sel = Signal(sb)
        lo_next = Signal(h + 1)
        hi_next = Signal(sb - h)
        m.d.sync += eps1.eq(eps + (1 << h))
        m.d.comb += [lo_next.eq(ss_lo + beat_ss[:h]), hi_next.eq(ss_hi + beat_ss[h:] + ss_c)]
        with m.If(q.i.valid & q.i.ready):
            m.d.sync += [ss_lo.eq(lo_next[:h]), ss_c.eq(lo_next[h]), ss_hi.eq(hi_next),
                         sq_nz.eq(sq_nz | beat_nz)]
            with m.If(last):
                m.d.sync += [ss_lo.eq(0), ss_c.eq(0), ss_hi.eq(0), ss_sum.eq(Cat(lo_next[:h], hi_next)),
                             eps_sel.eq(Mux(lo_next[h], eps1, eps)), sq_nz.eq(0), sum_nz.eq(sq_nz | beat_nz),
                             sum_v.eq(1)]
        with m.If(sum_v):
            m.d.sync += [ss_out.eq(ss_sum + eps_sel), nz.eq(sum_nz | eps_nz), gf_ss.eq(gf_k),
                         ss_valid.eq(1), sum_v.eq(0)]

        # whether the scan's registers are empty is registered from their next valid bits
        m.d.sync += empty.eq(Mux(adv, ~scan & (valid[:-1] == 0), valid == 0))
        m.d.comb += [self.h.ready.eq(recv), scan.eq(scanst), self.k.ready.eq(prep & ~ss_valid)]
        with m.If(take_h):
            m.d.sync += [wcnt.eq(wcnt + 1), wlast.eq(wcnt == N - 2)]
            with m.If(wlast):
                m.d.sync += [recv.eq(0), fold.eq(1)]
        # LEN: BITLEN_STAGES cycles, a shift register of flags behind FOLD
        m.d.sync += lens.eq(Cat(fold, lens[:-1]))
        with m.If(fold):
            m.d.sync += fold.eq(0)
        with m.If(lens[-1]):
            m.d.sync += prep.eq(1)
        with m.If(prep):
            m.d.sync += [p.eq(Mux(n_h > NB, n_h - NB, 0)), ridx.eq(0), at_end.eq(N == 1)]
            with m.If(~ss_valid & self.k.valid):
                m.d.sync += [eps_k.eq(self.k.payload.eps_q), gf_k.eq(self.k.payload.gamma_frac),
                             prep.eq(0), scanst.eq(1)]
        with m.If(scanst & adv):
            m.d.sync += [ridx.eq(ridx + 1), at_end.eq(ridx == N - 2)]
            with m.If(at_end):
                m.d.sync += [scanst.eq(0), drain.eq(1)]
        with m.If(drain & empty):
            m.d.sync += [wcnt.eq(0), wlast.eq(N == 1), drain.eq(0), recv.eq(1)]
        assert RMS_PREP_CYCLES == 1 + BITLEN_STAGES + 1

        # the vector's 1/sqrt: ss (at least 1) in, (y, E + GF) held until its last element.
        # The Rsqrt is always ready, so its stages run free (no enable reaches them): a
        # result that finds (y, E) still held for the previous vector waits in (yn, En) and
        # moves there in the cycle after the release, when the Rsqrt's result would have
        # been taken had it waited in its last stage. Two is enough: the next vector's ss
        # comes only after the quantizer took its scan, which waits for this vector's
        # hand-over, which waits for the previous vector's last element to leave, and so
        # for its (y, E) to be released. GF passes free-running registers beside the Rsqrt
        y = Signal.like(rs.o.payload.y)
        E = Signal(signed(len(rs.o.payload.E) + 2))
        yn, En = Signal.like(y), Signal.like(E)
        y_valid, yn_valid = Signal(), Signal()
        m.d.comb += [rs.i.valid.eq(ss_valid), rs.i.payload.ss.eq(Cat(ss_out[0] | ~nz, ss_out[1:])),
                     rs.o.ready.eq(1)]
        gf_y = delay(m, 1, gf_ss, rs.latency, "gf")
        with m.If(ss_valid):
            m.d.sync += ss_valid.eq(0)
        with m.If(rs.o.valid):
            with m.If(y_valid | yn_valid):
                m.d.sync += [yn.eq(rs.o.payload.y), En.eq(rs.o.payload.E + gf_y), yn_valid.eq(1)]
            with m.Else():
                m.d.sync += [y.eq(rs.o.payload.y), E.eq(rs.o.payload.E + gf_y), y_valid.eq(1)]
        with m.If(~y_valid & yn_valid):
            m.d.sync += [y.eq(yn), E.eq(En), y_valid.eq(1), yn_valid.eq(0)]

        # the step: scale_mul(m_u, e_u, y, E + GF) per element, a credit pipeline
        # (hw.elementpipe.CreditFifo) of step_stages: m_u · y, its bit length, k = bitlen - B,
        # (m_u · y) >> k staged with e = e_u + E + GF - k beside it, the last shift stage
        # written into the output FIFO. The quantizer's o.ready is a register (a credit
        # held, y held), and o.ready moves only the FIFO
        qx = Value.cast(q.o.payload.x)
        xw, mw, ew = len(qx), len(self.o.payload.m), len(self.o.payload.e)
        sfifo = m.submodules.ofifo = CreditFifo(xw + mw + ew + 1, self.step_stages, can_next=True)
        take_q = sfifo.issue
        # q.o.ready = sfifo.can & y_valid as one register, formed from their next values, so
        # the quantizer's output FIFO sees a register of its own
        qready, y_valid_next = Signal(), Signal()
        m.d.comb += y_valid_next.eq(Mux(y_valid, ~(take_q & q.o.payload.last), rs.o.valid | yn_valid))
        m.d.sync += qready.eq(sfifo.can_next & y_valid_next)
        m.d.comb += [q.o.ready.eq(qready), sfifo.req.eq(q.o.valid & qready)]
        svalid = credit_valid(m, take_q, self.step_stages, "step")
        with m.If(take_q & q.o.payload.last):
            m.d.sync += y_valid.eq(0)
        run = Const(1)
        mm = m.submodules.mm = WideMultiplier(B + 1, len(y) + 1, primitives=P, spare_first=True)
        m.d.comb += [mm.en.eq(run), mm.a.eq(q.o.payload.m), mm.b.eq(y)]
        prod = Signal(B + len(y))
        m.d.comb += prod.eq(mm.p)
        n_p = bitlen_staged(m, run, prod, "step")
        k = Signal(range(len(prod) + 1), reset_less=True)
        m.d.sync += k.eq(n_p - B)
        prod_k = delay(m, run, prod, BITLEN_STAGES + 1, "prod")
        e_in = Signal(signed(EXP_BITS + 2))
        m.d.comb += e_in.eq(q.o.payload.e + E)
        e_k = delay(m, run, e_in, MUL_STAGES + BITLEN_STAGES + 1, "e")
        e_out = Signal(signed(EXP_BITS + 2), reset_less=True)
        m.d.sync += e_out.eq(e_k - k)
        last_in = self.step_stages - 1
        out = self.o.payload
        m.d.comb += [sfifo.w_en.eq(svalid[-1]),
                     sfifo.w_data.eq(Cat(delay(m, run, qx, last_in, "x"),
                                         staged_rshift(m, run, prod_k, k, B, SHIFT_STAGES, "stepm",
                                                       comb_last=True)[:mw],
                                         delay(m, run, e_out, SHIFT_STAGES - 2, "eo")[:ew],
                                         delay(m, run, q.o.payload.last, last_in, "xlast"))),
                     self.o.valid.eq(sfifo.o.valid), sfifo.o.ready.eq(self.o.ready),
                     Value.cast(out.x).eq(sfifo.o.payload[:xw]),
                     out.m.eq(sfifo.o.payload[xw:xw + mw]),
                     out.e.eq(sfifo.o.payload[xw + mw:xw + mw + ew]),
                     out.last.eq(sfifo.o.payload[-1])]
        assert RMS_STEP_STAGES == MUL_STAGES + BITLEN_STAGES + 1 + SHIFT_STAGES
        return m
