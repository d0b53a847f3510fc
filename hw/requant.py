"""Requantization of the engine's accumulators, exactly ``codec.fixedpoint.requantize``,
with an optional saturating add (the residual, or a bias), as sim/hwlayer.py uses it:

    y   = saturate(rshift_round(rshift_round(A, a) · m, e - a - out_frac), out_bits)
    out = saturate(res + y, resid_bits)                          (``residual=True``)

Each input beat carries one accumulator A with its (m, e) (the token's step times the
matrix's host_scale, a B-bit scale) and pre-shift a (``fixedpoint.acc_preshift`` of the
matrix's accumulator bound), so one unit serves every matrix and token without being
reloaded. Pipeline (``hw.elementpipe``), ``stages`` = ``vectortiming.requant_stages``
registers, none of them with more than a multiplexer level group, one carry chain or a
LUT reduction in front (the counts are ``tritforge.vectortiming``'s):

1. the pre-shift A' = rshift_round(A, a), written ((2A >> a) + 1) >> 1: the shift
   (``fixedops.staged_rshift``, SHIFT_STAGES registers), then the rounding add; beside
   it, s = e - a - out_frac, then the output shift's amount d and the overflow bound c;
2. P = A' · m (``hw.multiplier.WideMultiplier``, MUL_STAGES registers);
3. v = floor(P · 2^(1-s)), of which only the low out_bits + 1 bits are formed: P placed
   above out_bits + 1 zero bits and shifted right by d = s + out_bits (clamped to
   0 .. W + out_bits + 1, W the product's width; SHIFT_STAGES registers). A left shift
   (s < 0) is the same right shift of the zero-extended product, so both signs take one
   shifter. Beside it, whether v fits out_bits + 1 bits: P in -2^c .. 2^c - 1 with
   c = out_bits + s - 1, i.e. the bits of P ⊕ sign at positions >= c all zero (a mask
   made from c while P is in the multiplier; 4-bit groups, then their OR), and for c < 0
   only P = 0;
4. the rounding add y = (v + 1) >> 1 on the out_bits + 1 low bits;
5. the saturation: y where v fits and y fits out_bits (it misses only at the top,
   y = 2^(out_bits-1)), else the end of P's sign. This is the exact result for every
   shift: numpy's int64 in the reference would wrap instead, only for
   |A' · m| · 2^-s >= 2^63;
6. with ``residual``: res + y, then its saturation to resid_bits.

``lanes`` accumulators per beat (one (m, e, a) for the beat: the same token and matrix),
each lane its own datapath, the shift amounts and the overflow mask shared; fully
pipelined: one beat per cycle, a beat accepted in cycle t is on ``o`` in cycle
t + stages.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..accelconfig import VectorConfig
from ..vectorports import EXP_BITS, PRESHIFT_BITS, requant_ports
from ..vectortiming import MUL_STAGES, SHIFT_STAGES, requant_stages
from .checks import check_int
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import fits_signed, saturate_bits, staged_rshift
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .rsqrt import check_vector_config
from .replica import RegisterReplicas
from .signature import members

#: the widest accumulator the contract admits (A' · m < 2^62)
MAX_ACC_BITS = 62
#: bits per group of the overflow test's first reduction
FIT_GROUP = 4
#: copies per lane of the output shift's amount register (each selects a share of the
#: first shift stage's multiplexers)
REQUANT_SHIFT_COPIES = 4


class Requantize(wiring.Component):
    """Ports: ``i`` {acc, m, e, a[, res]}; ``o`` {y} (``lanes`` acc, res, y per beat). Fully
    pipelined, one beat per cycle, latency ``vectortiming.requant_stages(residual)``."""

    def __new__(cls, vcfg: VectorConfig, acc_bits: int, *, out_frac: int | None = None,
                out_bits: int | None = None, residual: bool = False, lanes: int = 1,
                primitives: str = "generic"):
        check_vector_config("Requantize", vcfg)
        check_int("Requantize", "acc_bits", acc_bits, 2)
        if acc_bits > MAX_ACC_BITS:
            raise ValueError(f"Requantize acc_bits must be at most {MAX_ACC_BITS}, not {acc_bits}")
        if out_frac is not None:
            check_int("Requantize", "out_frac", out_frac)
        if out_bits is not None:
            check_int("Requantize", "out_bits", out_bits, 2)
            if out_bits > 62:
                raise ValueError(f"Requantize out_bits must be at most 62, not {out_bits}")
        if not isinstance(residual, bool):
            raise TypeError(f"Requantize residual must be a bool, not {residual!r}")
        check_lanes("Requantize", lanes)
        check_primitives(primitives, "Requantize")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, acc_bits: int, *, out_frac: int | None = None,
                 out_bits: int | None = None, residual: bool = False, lanes: int = 1,
                 primitives: str = "generic"):
        self.vcfg, self.acc_bits, self.residual, self.lanes = vcfg, acc_bits, residual, lanes
        self.primitives = primitives
        self.out_frac = vcfg.resid_frac_bits if out_frac is None else out_frac
        self.out_bits = vcfg.resid_bits if out_bits is None else out_bits
        self.stages = requant_stages(residual)
        #: the product's width
        self.W = acc_bits + 1 + vcfg.scale_bits + 1
        super().__init__(members(requant_ports(vcfg, acc_bits, self.out_bits, residual, lanes)))

    def elaborate(self, platform):
        m = Module()
        i = self.i.payload
        OB, W = self.out_bits, self.W
        adv, _ = advance(m, self.o, self.i.valid, self.stages, "rq")
        m.d.comb += self.i.ready.eq(adv)
        pre = SHIFT_STAGES + 1                        # registers before the multiplier's inputs
        # the beat's shift amount s; d = s + OB and c = OB + s - 1, clamped (c to 0 .. W
        # with c < 0 apart)
        s = Signal(signed(EXP_BITS + PRESHIFT_BITS + 2))
        sd = Signal(signed(EXP_BITS + PRESHIFT_BITS + 3))
        dmax = W + OB + 1
        d = Signal(range(dmax + 1))
        cu = Signal(range(W + 1))
        cneg = Signal()
        with m.If(adv):
            m.d.sync += [s.eq(i.e - i.a - self.out_frac), sd.eq(s + OB),
                         d.eq(Mux(sd < 0, 0, Mux(sd > dmax, dmax, sd))),
                         cu.eq(Mux(sd < 1, 0, Mux(sd > W + 1, W, sd - 1))), cneg.eq(sd < 1)]
        mb = delay(m, adv, i.m, pre, "m")
        # d's last register in one copy per group of the output shift's first-stage
        # multiplexers (REQUANT_SHIFT_COPIES per lane, hw.replica)
        d_c = m.submodules.d_copies = RegisterReplicas(len(d), REQUANT_SHIFT_COPIES * self.lanes)
        m.d.comb += [d_c.d.eq(delay(m, adv, d, pre + MUL_STAGES - 4, "d")), d_c.en.eq(adv)]
        d_p = [d_c.q[j] for j in range(REQUANT_SHIFT_COPIES * self.lanes)]
        # the mask of the bits >= c, decoded in two steps while the product is formed: c's
        # groups of 8 (above, equal) and its low bits as a thermometer, then one LUT per bit
        G = 8
        groups = W // G + 1
        gt, eq, le = Signal(groups), Signal(groups), Signal(G)
        top = (1 << len(cu[3:])) - 1                 # (comparisons decided by the widths are constants)
        with m.If(adv):
            m.d.sync += [gt.eq(Cat((cu[3:] < j) if 0 < j <= top else Const(j > top, 1) for j in range(groups))),
                         eq.eq(Cat((cu[3:] == j) if j <= top else Const(0, 1) for j in range(groups))),
                         le.eq(Cat((cu[:3] <= j) if j < G - 1 else Const(1, 1) for j in range(G)))]
        late = pre + MUL_STAGES - 5
        gt, eq, le = (delay(m, adv, x, late, f"mask_{nm}") for x, nm in ((gt, "gt"), (eq, "eq"), (le, "le")))
        cneg_m = delay(m, adv, cneg, late + 1, "cneg")
        mask = Signal(W)
        with m.If(adv):
            m.d.sync += mask.eq(Cat(gt[k // G] | eq[k // G] & le[k % G] for k in range(W)))
        cneg = Signal()
        with m.If(adv):
            m.d.sync += cneg.eq(cneg_m)
        for k in range(self.lanes):
            res = lane(i.res, k) if self.residual else None
            self._lane(m, adv, lane(i.acc, k), i.a, mb,
                       d_p[k * REQUANT_SHIFT_COPIES:(k + 1) * REQUANT_SHIFT_COPIES], mask, cneg, res,
                       lane(self.o.payload.y, k), f"l{k}")
        return m

    def _lane(self, m, adv, acc, a, mb, d_p, mask, cneg, res_in, y_out, name):
        B, OB, W = self.vcfg.scale_bits, self.out_bits, self.W
        # 1. pre-shift: ((2A >> a) + 1) >> 1
        sh = staged_rshift(m, adv, acc << 1, a, self.acc_bits + 1, SHIFT_STAGES, f"{name}_pre")
        ap = Signal(signed(self.acc_bits + 1), name=f"{name}_ap")
        with m.If(adv):
            m.d.sync += ap.eq((sh + 1) >> 1)
        # 2. P = A' · m
        mul = m.submodules[f"{name}_mul"] = WideMultiplier(self.acc_bits + 1, B + 1, primitives=self.primitives)
        m.d.comb += [mul.en.eq(adv), mul.a.eq(ap), mul.b.eq(mb)]
        P = mul.p
        # 3. v's low OB + 1 bits; beside it, whether v fits them
        v = staged_rshift(m, adv, Cat(Const(0, OB + 1), P).as_signed(), d_p[0], OB + 1, SHIFT_STAGES,
                          f"{name}_out", amount_copies=d_p)
        z = Signal(W, name=f"{name}_z")
        m.d.comb += z.eq((P ^ P[-1].replicate(W)) & mask)
        groups = Signal(-(-W // FIT_GROUP), name=f"{name}_groups")
        neg = Signal(name=f"{name}_neg")
        bad_neg = Signal(name=f"{name}_badneg")
        with m.If(adv):
            m.d.sync += [groups.eq(Cat(z[g:g + FIT_GROUP] != 0 for g in range(0, W, FIT_GROUP))),
                         neg.eq(P[-1]), bad_neg.eq(cneg & P[-1])]
        fits = Signal(name=f"{name}_fits")
        with m.If(adv):
            m.d.sync += fits.eq((groups == 0) & ~bad_neg)
        neg2 = delay(m, adv, neg, SHIFT_STAGES - 1, f"{name}_neg")
        fits2 = delay(m, adv, fits, SHIFT_STAGES - 2, f"{name}_fits") if SHIFT_STAGES > 2 else fits
        # 4. the rounding add
        yr = Signal(signed(OB + 1), name=f"{name}_yr")
        with m.If(adv):
            m.d.sync += yr.eq((v.as_signed() + 1) >> 1)
        fits3 = delay(m, adv, fits2, 1, f"{name}_fits3")
        neg3 = delay(m, adv, neg2, 1, f"{name}_neg3")
        # 5. the saturation
        hi = (1 << (OB - 1)) - 1
        y = Signal(signed(OB), name=f"{name}_y")
        m.d.comb += y.eq(Mux(fits3 & fits_signed(yr, OB), yr[:OB].as_signed(), Mux(neg3, -hi - 1, hi)))
        if not self.residual:
            with m.If(adv):
                m.d.sync += y_out.eq(y)
            return
        y5 = Signal(signed(OB), name=f"{name}_y5")
        with m.If(adv):
            m.d.sync += y5.eq(y)
        # 6. the residual add, its saturation
        res = delay(m, adv, res_in, self.stages - 2, f"{name}_res")
        sum_ = Signal(signed(max(OB, len(res)) + 1), name=f"{name}_sum")
        with m.If(adv):
            m.d.sync += [sum_.eq(res + y5), y_out.eq(saturate_bits(sum_, self.vcfg.resid_bits))]
