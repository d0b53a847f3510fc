"""SiLU·mul of the gated MLP, exactly ``codec.intact.silu_mul``: (g, u) -> sat(rshift_round(
silu(g) · u, FR), resid_bits) with silu(g) = rshift_round(g · sigma(g), SG).

sigma comes from the 2^LB + 1 entries S of ``codec.intact.sigmoid_lut`` (values
sigma(i · 2^(RS-LB)) with SG fraction bits) with linear interpolation on |g|, and
sigma(-x) = 2^SG - sigma(x) (RS = ``silu_range_log2``, LB = ``silu_lut_bits``,
SG = ``sigmoid_frac_bits``, FR = ``resid_frac_bits``). Pipeline (``hw.elementpipe``),
``stages`` = ``vectortiming.SILU_STAGES`` registers, each behind at most one carry chain
or a LUT ROM:

1. whether g fits RS + FR + 1 bits (a LUT reduction) and |g| on those bits (with g and u);
2. x = min(|g|, 2^(RS+FR) - 1): the table index i = x >> (RS + FR - LB) and r, x's low bits;
3. three tables in LUTs (the index register in INDEX_COPIES copies per table, each
   selecting half of its bits; a constant of one bit per entry bit-selected per table bit, not a memory or a case
   table: Yosys would put those in block RAM, whose read clock-to-out alone is 5.8 ns at
   speed 6) read at i: S[i],
   D[i] = S[i+1] - S[i] (the difference is tabled, so no address adder and no
   subtraction) and 2^SG - S[i];
4. D[i] · r (``hw.multiplier.WideMultiplier``, MUL_STAGES);
5. t = rshift_round(D[i] · r, RS + FR - LB);
6. sigma = S[i] + t for g >= 0, (2^SG - S[i]) - t for g < 0 (two adders side by side);
7. g · sigma (a multiplier), 8. silu = rshift_round(g · sigma, SG);
9. silu · u (a multiplier), 10. its rounding shift by FR (the add on the low resid_bits + 1
   bits of the result, beside it whether the bits above are all equal: a LUT reduction),
   11. the saturation to resid_bits (two LUT levels from those registers).

``lanes`` pairs per beat, each lane its own datapath and ROMs, all advancing together;
fully pipelined: one beat per cycle, a beat accepted in cycle t is on ``o`` in cycle
t + stages. resid_bits <= 32 keeps silu · u below 2^62 (the contract's bound).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..codec.intact import sigmoid_lut
from ..vectorports import silumul_ports
from ..vectortiming import MUL_STAGES, SILU_STAGES
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import abs_value, fits_signed, round_shift
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .rsqrt import check_vector_config
from .replica import RegisterReplicas
from .signature import members

#: the widest inputs the contract admits (silu · u < 2^62)
MAX_RESID_BITS = 32
#: the largest sigmoid table built in LUTs
LUT_TABLE_MAX = 1024
#: copies of the table index register per table
INDEX_COPIES = 2


class SiluMul(wiring.Component):
    """Ports: ``i`` {g, u}; ``o`` {y} (``lanes`` elements each). Fully pipelined, one beat
    per cycle, latency ``SILU_STAGES``."""

    stages = SILU_STAGES

    def __new__(cls, vcfg: VectorConfig, *, lanes: int = 1, primitives: str = "generic"):
        check_vector_config("SiluMul", vcfg)
        if vcfg.resid_bits > MAX_RESID_BITS:
            raise ValueError(f"SiluMul resid_bits must be at most {MAX_RESID_BITS} (silu · u < 2^62), "
                             f"not {vcfg.resid_bits}")
        check_lanes("SiluMul", lanes)
        check_primitives(primitives, "SiluMul")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, *, lanes: int = 1, primitives: str = "generic"):
        self.vcfg, self.lanes, self.primitives = vcfg, lanes, primitives
        super().__init__(members(silumul_ports(vcfg, lanes)))

    def elaborate(self, platform):
        m = Module()
        v = self.vcfg
        adv, _ = advance(m, self.o, self.i.valid, self.stages, "silu")
        m.d.comb += self.i.ready.eq(adv)
        S = [int(s) for s in sigmoid_lut(v.silu_lut_bits, v.silu_range_log2, v.sigmoid_frac_bits)]
        D = [b - a for a, b in zip(S, S[1:])]
        for k in range(self.lanes):
            lane_y = lane(self.o.payload.y, k)
            self._lane(m, adv, S[:-1], D, lane(self.i.payload.g, k), lane(self.i.payload.u, k), lane_y, f"l{k}")
        return m

    def _lane(self, m, adv, S, D, g_in, u_in, y_out, name):
        """One lane's datapath: |g|, the index, the two ROMs, the three products, the roundings."""
        v = self.vcfg
        RB, FR, RS, LB, SG = (v.resid_bits, v.resid_frac_bits, v.silu_range_log2, v.silu_lut_bits,
                              v.sigmoid_frac_bits)
        sh = RS + FR - LB
        XB = RS + FR

        # 1. whether g fits XB + 1 bits (a LUT reduction) and |g| on XB + 1 bits (the
        # negation's carry chain only that long), g beside them; |g| >= 2^XB iff g does not
        # fit or that |g| has bit XB set (g = -2^XB)
        ag = Signal(XB + 1, name=f"{name}_ag")
        big = Signal(name=f"{name}_big")
        g1 = Signal(signed(RB), name=f"{name}_g1")
        g_lo = g_in[:XB + 1].as_signed()
        with m.If(adv):
            m.d.sync += [ag.eq(abs_value(g_lo)), g1.eq(g_in),
                         big.eq(~fits_signed(g_in, XB + 1))]
        # 2. x = min(|g|, 2^XB - 1): the index and the remainder
        # (the index register in INDEX_COPIES copies per table, each addressing a share of
        # the table's bits: hw.replica)
        idx_c = m.submodules[f"{name}_idx"] = RegisterReplicas(LB, 3 * INDEX_COPIES)
        r = Signal(max(sh, 1), name=f"{name}_r")
        over = big | ag[XB]
        m.d.comb += [idx_c.d.eq(Mux(over, (1 << LB) - 1, ag[sh:XB])), idx_c.en.eq(adv)]
        with m.If(adv):
            m.d.sync += r.eq(Mux(over, (1 << sh) - 1, ag[:sh]) if sh else 0)
        # 3. the ROMs
        s_lo = Signal(SG + 1, name=f"{name}_s")
        s_neg = Signal(SG + 1, name=f"{name}_sn")
        dbits = max(max(D).bit_length(), 1) + 1
        di = Signal(signed(dbits), name=f"{name}_d")
        def table(tname, values, width, copy0):
            """The table's entry at idx, each bit a constant of one bit per entry bit-selected;
            a table of more than LUT_TABLE_MAX entries (too large for LUTs) a memory's
            asynchronous read port."""
            if len(values) > LUT_TABLE_MAX:
                rom = m.submodules[f"{name}_rom_{tname}"] = Memory(shape=width, depth=len(values), init=[x & ((1 << width) - 1) for x in values])
                rd = rom.read_port(domain="comb")
                m.d.comb += rd.addr.eq(idx_c.q[copy0])
                return rd.data
            return Cat(Const(sum((x >> b & 1) << j for j, x in enumerate(values)), len(values)).bit_select(
                       idx_c.q[copy0 + b * INDEX_COPIES // width], 1) for b in range(width))
        rom_s = table("s", S, SG + 1, 0)
        rom_n = table("n", [(1 << SG) - x for x in S], SG + 1, INDEX_COPIES)
        rom_d = table("d", D, dbits, 2 * INDEX_COPIES)
        r3 = Signal.like(r, name=f"{name}_r3")
        with m.If(adv):
            m.d.sync += [s_lo.eq(rom_s), s_neg.eq(rom_n), di.eq(rom_d.as_signed()), r3.eq(r)]
        # 4.-6. the interpolation, sigma
        ip = m.submodules[f"{name}_interp"] = WideMultiplier(dbits, len(r) + 1, primitives=self.primitives)
        m.d.comb += [ip.en.eq(adv), ip.a.eq(di), ip.b.eq(r3)]
        t = Signal(signed(len(ip.p)), name=f"{name}_t")
        with m.If(adv):
            m.d.sync += t.eq(round_shift(ip.p, sh))
        gpos = delay(m, adv, g1 >= 0, 2 + MUL_STAGES + 1, f"{name}_gpos")
        sp = delay(m, adv, s_lo, MUL_STAGES + 1, f"{name}_sp")
        sn = delay(m, adv, s_neg, MUL_STAGES + 1, f"{name}_sn")
        sigma = Signal(signed(SG + 2), name=f"{name}_sigma")
        with m.If(adv):
            m.d.sync += sigma.eq(Mux(gpos, sp + t, sn - t))
        # 7.-8. silu
        gs = m.submodules[f"{name}_gsigma"] = WideMultiplier(RB, SG + 2, primitives=self.primitives)
        m.d.comb += [gs.en.eq(adv), gs.a.eq(delay(m, adv, g1, 2 + MUL_STAGES + 2, f"{name}_g6")),
                     gs.b.eq(sigma)]
        silu = Signal(signed(RB + 1), name=f"{name}_silu")
        with m.If(adv):
            m.d.sync += silu.eq(round_shift(gs.p, SG))
        # 9.-11. silu · u, rounding, saturation
        su = m.submodules[f"{name}_siluu"] = WideMultiplier(RB + 1, RB, primitives=self.primitives)
        m.d.comb += [su.en.eq(adv), su.a.eq(silu),
                     su.b.eq(delay(m, adv, u_in, 3 + 2 * MUL_STAGES + 3, f"{name}_u"))]
        # 10. y = (q + 1) >> 1 with q = floor(silu · u / 2^(FR-1)), only its RB + 1 low bits;
        # beside the add, whether q's bits from RB + 1 up are all 0 or all 1 (then y lies in
        # -2^RB .. 2^RB, and fits RB bits iff its bits RB - 1 and RB are equal)
        qv = su.p >> (FR - 1) if FR else su.p << 1
        q = Signal(signed(max(len(qv), RB + 2)), name=f"{name}_q")
        m.d.comb += q.eq(qv)
        y = Signal(signed(RB + 1), name=f"{name}_y")
        hi_z, hi_o, neg = Signal(name=f"{name}_hz"), Signal(name=f"{name}_ho"), Signal(name=f"{name}_neg")
        with m.If(adv):
            m.d.sync += [y.eq((q[:RB + 2].as_signed() + 1) >> 1), neg.eq(q[-1]),
                         hi_z.eq(q[RB + 1:] == 0), hi_o.eq(q[RB + 1:] == (1 << len(q[RB + 1:])) - 1)]
        # 11. the saturation: two LUT levels
        hi = (1 << (RB - 1)) - 1
        with m.If(adv):
            m.d.sync += y_out.eq(Mux((hi_z | hi_o) & (y[RB - 1] == y[RB]), y[:RB].as_signed(),
                                     Mux(neg, -hi - 1, hi)))
