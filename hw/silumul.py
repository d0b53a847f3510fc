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

``lanes`` pairs per beat, each lane its own datapath (the ROM gets two read ports per
lane), all advancing together; fully pipelined: one beat per cycle, a beat accepted in
cycle t is on ``o`` in cycle t + 13. resid_bits <= 32 keeps silu · u below 2^62 (the
contract's bound).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..codec.intact import sigmoid_lut
from ..vectorports import silumul_ports
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import abs_value, rshift_round, saturate
from .multiplier import PipelinedMultiplier
from .rsqrt import check_vector_config
from .signature import members

#: the widest inputs the contract admits (silu · u < 2^62)
MAX_RESID_BITS = 32


class SiluMul(wiring.Component):
    """Ports: ``i`` {g, u}; ``o`` {y} (``lanes`` elements each). Fully pipelined, one beat
    per cycle, latency 13."""

    stages = 1 + 3 * PipelinedMultiplier.latency + 3

    def __new__(cls, vcfg: VectorConfig, *, lanes: int = 1):
        check_vector_config("SiluMul", vcfg)
        if vcfg.resid_bits > MAX_RESID_BITS:
            raise ValueError(f"SiluMul resid_bits must be at most {MAX_RESID_BITS} (silu · u < 2^62), "
                             f"not {vcfg.resid_bits}")
        check_lanes("SiluMul", lanes)
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, *, lanes: int = 1):
        self.vcfg, self.lanes = vcfg, lanes
        super().__init__(members(silumul_ports(vcfg, lanes)))

    def elaborate(self, platform):
        m = Module()
        v = self.vcfg
        adv, _ = advance(m, self.o, self.i.valid, self.stages, "silu")
        m.d.comb += self.i.ready.eq(adv)
        table = sigmoid_lut(v.silu_lut_bits, v.silu_range_log2, v.sigmoid_frac_bits)
        rom = m.submodules.lut = Memory(shape=v.sigmoid_frac_bits + 1, depth=len(table),
                                        init=[int(s) for s in table])
        for k in range(self.lanes):
            lane_y = lane(self.o.payload.y, k)
            self._lane(m, adv, rom, lane(self.i.payload.g, k), lane(self.i.payload.u, k), lane_y, f"l{k}")
        return m

    def _lane(self, m, adv, rom, g_in, u_in, y_out, name):
        """One lane's datapath: the two table reads, the three products, the roundings."""
        v = self.vcfg
        RB, FR, RS, LB, SG = (v.resid_bits, v.resid_frac_bits, v.silu_range_log2, v.silu_lut_bits,
                              v.sigmoid_frac_bits)
        sh = RS + FR - LB
        ML = PipelinedMultiplier.latency

        # 1. table index, the two entries
        ag = Signal(RB, name=f"{name}_ag")
        x = Signal(RS + FR, name=f"{name}_x")
        m.d.comb += [ag.eq(abs_value(g_in)), x.eq(Mux(ag > (1 << (RS + FR)) - 1, (1 << (RS + FR)) - 1, ag))]
        lo, hi = rom.read_port(), rom.read_port()
        m.d.comb += [lo.addr.eq(x >> sh), hi.addr.eq((x >> sh) + 1), lo.en.eq(adv), hi.en.eq(adv)]
        g = Signal(signed(RB), name=f"{name}_g")
        u = Signal(signed(RB), name=f"{name}_u")
        r = Signal(max(sh, 1), name=f"{name}_r")
        with m.If(adv):
            m.d.sync += [g.eq(g_in), u.eq(u_in), r.eq(x[:sh] if sh else 0)]

        # 2.-3. interpolation, mirror
        di = m.submodules[f"{name}_interp"] = PipelinedMultiplier(SG + 2, max(sh, 1) + 1)
        m.d.comb += [di.en.eq(adv), di.a.eq(hi.data - lo.data), di.b.eq(r)]
        s_lo = delay(m, adv, lo.data, ML, f"{name}_s_lo")
        pos = Signal(SG + 1, name=f"{name}_pos")
        m.d.comb += pos.eq(s_lo + rshift_round(di.p, sh))
        sigma = Signal(signed(SG + 2), name=f"{name}_sigma")
        with m.If(adv):
            m.d.sync += sigma.eq(Mux(delay(m, adv, g, ML, f"{name}_g3") >= 0, pos, (1 << SG) - pos))

        # 4.-5. silu
        gs = m.submodules[f"{name}_gsigma"] = PipelinedMultiplier(RB, SG + 2)
        m.d.comb += [gs.en.eq(adv), gs.a.eq(delay(m, adv, g, ML + 1, f"{name}_g4")), gs.b.eq(sigma)]
        silu = Signal(signed(RB + 1), name=f"{name}_silu")
        with m.If(adv):
            m.d.sync += silu.eq(rshift_round(gs.p, SG))

        # 6.-7. silu · u
        su = m.submodules[f"{name}_siluu"] = PipelinedMultiplier(RB + 1, RB)
        m.d.comb += [su.en.eq(adv), su.a.eq(silu), su.b.eq(delay(m, adv, u, 2 * ML + 2, f"{name}_u"))]
        y = Signal(signed(2 * RB + 1), name=f"{name}_y")
        m.d.comb += y.eq(rshift_round(su.p, FR))
        with m.If(adv):
            m.d.sync += y_out.eq(saturate(y, RB))
