"""SiLU·mul of the gated MLP, exactly ``codec.intact.silu_mul``: (g, u) -> sat(rshift_round(
silu(g) · u, FR), resid_bits) with silu(g) = rshift_round(g · sigma(g), SG).

sigma comes from a ROM of the 2^LB + 1 entries of ``codec.intact.sigmoid_lut`` (values
sigma(i · 2^(RS-LB)) with SG fraction bits) with linear interpolation on |g|, and
sigma(-x) = 2^SG - sigma(x) (RS = ``silu_range_log2``, LB = ``silu_lut_bits``,
SG = ``sigmoid_frac_bits``, FR = ``resid_frac_bits``). Pipeline (``hw.elementpipe``),
``stages`` = 13 registers:

1. x = min(|g|, 2^(RS+FR) - 1), i = x >> (RS + FR - LB), r = x's low bits: the ROM's two
   synchronous read ports give S[i] and S[i+1] (with g, u and r registered beside them);
2. (S[i+1] - S[i]) · r (``hw.multiplier.PipelinedMultiplier``, three stages);
3. sigma = S[i] + rshift_round(that, RS + FR - LB), mirrored for g < 0;
4. g · sigma (a multiplier), 5. silu = rshift_round(g · sigma, SG);
6. silu · u (a multiplier), 7. y = sat(rshift_round(silu · u, FR), resid_bits).

Element-serial, fully pipelined: one pair per cycle; a pair accepted in cycle t is on
``o`` in cycle t + 13. resid_bits <= 32 keeps silu · u below 2^62 (the contract's bound).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..codec.intact import sigmoid_lut
from ..vectorports import silumul_ports
from .elementpipe import advance, delay
from .fixedops import abs_value, rshift_round, saturate
from .multiplier import PipelinedMultiplier
from .rsqrt import check_vector_config
from .signature import members

#: the widest inputs the contract admits (silu · u < 2^62)
MAX_RESID_BITS = 32


class SiluMul(wiring.Component):
    """Ports: ``i`` {g, u}; ``o`` {y}. Fully pipelined, one pair per cycle, latency 13."""

    stages = 1 + 3 * PipelinedMultiplier.latency + 3

    def __new__(cls, vcfg: VectorConfig):
        check_vector_config("SiluMul", vcfg)
        if vcfg.resid_bits > MAX_RESID_BITS:
            raise ValueError(f"SiluMul resid_bits must be at most {MAX_RESID_BITS} (silu · u < 2^62), "
                             f"not {vcfg.resid_bits}")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig):
        self.vcfg = vcfg
        super().__init__(members(silumul_ports(vcfg)))

    def elaborate(self, platform):
        m = Module()
        v = self.vcfg
        RB, FR, RS, LB, SG = (v.resid_bits, v.resid_frac_bits, v.silu_range_log2, v.silu_lut_bits,
                              v.sigmoid_frac_bits)
        sh = RS + FR - LB
        ML = PipelinedMultiplier.latency
        adv, _ = advance(m, self.o, self.i.valid, self.stages, "silu")
        m.d.comb += self.i.ready.eq(adv)

        # 1. table index, the two entries
        g_in = self.i.payload.g
        ag = Signal(RB)
        x = Signal(RS + FR)
        m.d.comb += [ag.eq(abs_value(g_in)), x.eq(Mux(ag > (1 << (RS + FR)) - 1, (1 << (RS + FR)) - 1, ag))]
        table = sigmoid_lut(LB, RS, SG)
        rom = m.submodules.lut = Memory(shape=SG + 1, depth=len(table), init=[int(s) for s in table])
        lo, hi = rom.read_port(), rom.read_port()
        m.d.comb += [lo.addr.eq(x >> sh), hi.addr.eq((x >> sh) + 1), lo.en.eq(adv), hi.en.eq(adv)]
        g, u, r = Signal(signed(RB)), Signal(signed(RB)), Signal(max(sh, 1))
        with m.If(adv):
            m.d.sync += [g.eq(g_in), u.eq(self.i.payload.u), r.eq(x[:sh] if sh else 0)]

        # 2.-3. interpolation, mirror
        di = m.submodules.interp = PipelinedMultiplier(SG + 2, max(sh, 1) + 1)
        m.d.comb += [di.en.eq(adv), di.a.eq(hi.data - lo.data), di.b.eq(r)]
        s_lo = delay(m, adv, lo.data, ML, "s_lo")
        pos = Signal(SG + 1)
        m.d.comb += pos.eq(s_lo + rshift_round(di.p, sh))
        sigma = Signal(signed(SG + 2))
        with m.If(adv):
            m.d.sync += sigma.eq(Mux(delay(m, adv, g, ML, "g3") >= 0, pos, (1 << SG) - pos))

        # 4.-5. silu
        gs = m.submodules.gsigma = PipelinedMultiplier(RB, SG + 2)
        m.d.comb += [gs.en.eq(adv), gs.a.eq(delay(m, adv, g, ML + 1, "g4")), gs.b.eq(sigma)]
        silu = Signal(signed(RB + 1))
        with m.If(adv):
            m.d.sync += silu.eq(rshift_round(gs.p, SG))

        # 6.-7. silu · u
        su = m.submodules.siluu = PipelinedMultiplier(RB + 1, RB)
        m.d.comb += [su.en.eq(adv), su.a.eq(silu), su.b.eq(delay(m, adv, u, 2 * ML + 2, "u"))]
        y = Signal(signed(2 * RB + 1))
        m.d.comb += y.eq(rshift_round(su.p, FR))
        with m.If(adv):
            m.d.sync += self.o.payload.y.eq(saturate(y, RB))
        return m
