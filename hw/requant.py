"""Requantization of the engine's accumulators, exactly ``codec.fixedpoint.requantize``,
with an optional saturating add (the residual, or a bias), as sim/hwlayer.py uses it:

    y   = saturate(rshift_round(rshift_round(A, a) · m, e - a - out_frac), out_bits)
    out = saturate(res + y, resid_bits)                          (``residual=True``)

Each input beat carries one accumulator A with its (m, e) (the token's step times the
matrix's host_scale, a B-bit scale) and pre-shift a (``fixedpoint.acc_preshift`` of the
matrix's accumulator bound), so one unit serves every matrix and token without being
reloaded. Pipeline (``hw.elementpipe``), ``stages`` registers:

1. A' = rshift_round(A, a) and s = e - a - out_frac;
2. A' · m (``hw.multiplier.PipelinedMultiplier``, three stages);
3. the rounding shift by s and the saturation: for s >= 0 a rounding right shift (by at
   most W + 1, W the product's width: any larger shift gives 0 too); for s < 0 a left
   shift by at most out_bits (any nonzero product shifted that far saturates, as it does
   shifted further; numpy's int64 would wrap instead, only for |A' · m| · 2^-s >= 2^63);
4. with ``residual``: res + y saturated to resid_bits.

``lanes`` accumulators per beat (one (m, e, a) for the beat: the same token and matrix),
each lane its own datapath; fully pipelined: one beat per cycle, a beat accepted in cycle
t is on ``o`` in cycle t + stages (5, 6 with the residual add).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..accelconfig import VectorConfig
from ..vectorports import EXP_BITS, PRESHIFT_BITS, requant_ports
from .checks import check_int
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import rshift_round, saturate
from .multiplier import PipelinedMultiplier
from .rsqrt import check_vector_config
from .signature import members

#: the widest accumulator the contract admits (A' · m < 2^62)
MAX_ACC_BITS = 62


class Requantize(wiring.Component):
    """Ports: ``i`` {acc, m, e, a[, res]}; ``o`` {y} (``lanes`` acc, res, y per beat). Fully
    pipelined, one beat per cycle, latency 5 (6 with ``residual``)."""

    def __new__(cls, vcfg: VectorConfig, acc_bits: int, *, out_frac: int | None = None,
                out_bits: int | None = None, residual: bool = False, lanes: int = 1):
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
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, acc_bits: int, *, out_frac: int | None = None,
                 out_bits: int | None = None, residual: bool = False, lanes: int = 1):
        self.vcfg, self.acc_bits, self.residual, self.lanes = vcfg, acc_bits, residual, lanes
        self.out_frac = vcfg.resid_frac_bits if out_frac is None else out_frac
        self.out_bits = vcfg.resid_bits if out_bits is None else out_bits
        self.stages = 2 + PipelinedMultiplier.latency + int(residual)
        super().__init__(members(requant_ports(vcfg, acc_bits, self.out_bits, residual, lanes)))

    def elaborate(self, platform):
        m = Module()
        i = self.i.payload
        adv, _ = advance(m, self.o, self.i.valid, self.stages, "rq")
        m.d.comb += self.i.ready.eq(adv)
        # the shift amount and the multiplier of the beat, shared by its lanes
        s = Signal(signed(EXP_BITS + PRESHIFT_BITS + 2))
        with m.If(adv):
            m.d.sync += s.eq(i.e - i.a - self.out_frac)
        mb = delay(m, adv, i.m, 1, "m")
        s3 = delay(m, adv, s, PipelinedMultiplier.latency, "s")
        for k in range(self.lanes):
            res = lane(i.res, k) if self.residual else None
            self._lane(m, adv, lane(i.acc, k), i.a, mb, s3, res, lane(self.o.payload.y, k), f"l{k}")
        return m

    def _lane(self, m, adv, acc, a, mb, s3, res_in, y_out, name):
        """One lane: pre-shift, A' · m, the rounding shift by s, saturation (and the add)."""
        B, OB = self.vcfg.scale_bits, self.out_bits
        # 1. pre-shift
        ap = Signal(signed(self.acc_bits + 1), name=f"{name}_ap")
        with m.If(adv):
            m.d.sync += ap.eq(rshift_round(acc, a))
        # 2. A' · m
        mul = m.submodules[f"{name}_mul"] = PipelinedMultiplier(self.acc_bits + 1, B + 1)
        m.d.comb += [mul.en.eq(adv), mul.a.eq(ap), mul.b.eq(mb)]
        # 3. rounding shift and saturation
        W = len(mul.p)
        rs = Signal(range(W + 2), name=f"{name}_rs")
        ls = Signal(range(OB + 1), name=f"{name}_ls")
        m.d.comb += [rs.eq(Mux(s3 > W + 1, W + 1, Mux(s3 < 0, 0, s3))),
                     ls.eq(Mux(-s3 > OB, OB, Mux(s3 < 0, -s3, 0)))]
        shifted = Signal(signed(W + OB + 1), name=f"{name}_shifted")
        m.d.comb += shifted.eq(Mux(s3 >= 0, rshift_round(mul.p, rs), mul.p << ls))
        if not self.residual:
            with m.If(adv):
                m.d.sync += y_out.eq(saturate(shifted, OB))
            return
        y = Signal(signed(OB), name=f"{name}_y")
        with m.If(adv):
            m.d.sync += y.eq(saturate(shifted, OB))
        # 4. the residual add
        res = delay(m, adv, res_in, 1 + PipelinedMultiplier.latency + 1, f"{name}_res")
        with m.If(adv):
            m.d.sync += y_out.eq(saturate(res + y, self.vcfg.resid_bits))
