"""Reciprocal square root of the RMSNorm, exactly ``codec.intnorm.rsqrt``: ss > 0 ->
(y, E) with ss^(-1/2) ≈ y · 2^-E.

Pipeline (``hw.elementpipe``: one ss per cycle, all stages advance together), with
RB = ``rsqrt_frac_bits``, L = ``rsqrt_lut_bits``; the stage counts are
``tritforge.vectortiming``'s:

1. normalize (RSQRT_NORM_STAGES): b = bitlen(ss) (``fixedops.bitlen_staged``, two
   registers), w = (b - 1) // 2 and E = RB + w (one), mf = (ss << RB) >> 2w
   (``fixedops.staged_rshift``, SHIFT_STAGES registers; the same integer as
   ``ss >> (2w - RB)``, or ``ss << (RB - 2w)`` when 2w < RB), so mf in [2^RB, 2^(RB+2))
   is ss / 2^(2w) with RB fraction bits;
2. seed (RSQRT_SEED_STAGES): a ROM (``lib.memory``, synchronous read) of the
   3 · 2^(L-2) entries of ``codec.intnorm.rsqrt_lut`` indexed by mf's top L bits minus
   2^(L-2);
3. ``rsqrt_newton`` Newton steps y <- rshift_round(y (3 · 2^RB - t), RB + 1) with
   t = rshift_round(mf y², 2RB), RSQRT_NEWTON_STAGES registers each: y² and mf · y² (a
   ``hw.multiplier.WideMultiplier`` each, MUL_STAGES), t (the rounding add), 3 · 2^RB - t
   (one each), y · that (a WideMultiplier), the rounding shift (one).

``latency`` = ``vectortiming.rsqrt_latency(rsqrt_newton)``: an ss accepted in cycle t is
on ``o`` in cycle t + latency. Element-serial, fully pipelined (one ss per cycle); the
RMSNorm uses one per vector. ss = 0 is outside the contract (the RMSNorm clamps ss to at
least 1). ``primitives`` (hw/primitives.py) builds the multipliers' tiles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..codec.intnorm import rsqrt_lut
from ..vectorports import rsqrt_ports
from ..vectortiming import (BITLEN_STAGES, MUL_STAGES, RSQRT_NEWTON_STAGES, RSQRT_NORM_STAGES,
                            SHIFT_STAGES, rsqrt_latency)
from .checks import check_int
from .elementpipe import advance, delay
from .fixedops import bitlen_staged, round_shift, staged_rshift
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .signature import members

#: registers of one Newton step (``vectortiming.RSQRT_NEWTON_STAGES``)
NEWTON_STAGES = RSQRT_NEWTON_STAGES
#: the largest ss of the contract (codec.intnorm: ss < 2^62)
MAX_SS_BITS = 62


def check_vector_config(owner: str, vcfg) -> VectorConfig:
    if not isinstance(vcfg, VectorConfig):
        raise TypeError(f"{owner} vcfg must be a VectorConfig, not {vcfg!r}")
    return vcfg


class Rsqrt(wiring.Component):
    """Ports: ``i`` {ss}; ``o`` {y, E}. Fully pipelined, one ss per cycle, latency
    ``vectortiming.rsqrt_latency(rsqrt_newton)``."""

    def __new__(cls, vcfg: VectorConfig, ss_bits: int = MAX_SS_BITS, *, primitives: str = "generic"):
        check_vector_config("Rsqrt", vcfg)
        check_int("Rsqrt", "ss_bits", ss_bits, 1)
        if ss_bits > MAX_SS_BITS:
            raise ValueError(f"Rsqrt ss_bits must be at most {MAX_SS_BITS}, not {ss_bits}")
        check_primitives(primitives, "Rsqrt")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, ss_bits: int = MAX_SS_BITS, *, primitives: str = "generic"):
        self.vcfg, self.ss_bits, self.primitives = vcfg, ss_bits, primitives
        self.latency = rsqrt_latency(vcfg.rsqrt_newton)
        super().__init__(members(rsqrt_ports(vcfg, ss_bits)))

    def elaborate(self, platform):
        m = Module()
        RB, L = self.vcfg.rsqrt_frac_bits, self.vcfg.rsqrt_lut_bits
        P = self.primitives
        adv, valid = advance(m, self.o, self.i.valid, self.latency, "rsqrt")
        m.d.comb += self.i.ready.eq(adv)

        # 1. normalize: bitlen(ss) in two stages, w and E, mf = (ss << RB) >> 2w staged
        ss = self.i.payload.ss
        b = bitlen_staged(m, adv, ss, "ss")
        w = Signal(range(self.ss_bits), reset_less=True)
        with m.If(adv):
            m.d.sync += w.eq((b - 1) >> 1)
        ss_w = delay(m, adv, ss, BITLEN_STAGES + 1, "ssw")
        mf = Signal(RB + 2)
        m.d.comb += mf.eq(staged_rshift(m, adv, ss_w << RB, Cat(Const(0, 1), w), RB + 2, SHIFT_STAGES, "mf"))
        E = Signal(len(self.o.payload.E))
        m.d.comb += E.eq(w + RB)

        # 2. seed
        table = rsqrt_lut(L, RB)
        rom = m.submodules.lut = Memory(shape=RB + 1, depth=len(table), init=[int(v) for v in table])
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq((mf >> (RB + 2 - L)) - (1 << (L - 2))), rd.en.eq(adv)]
        y = Signal(signed(RB + 3))
        m.d.comb += y.eq(rd.data)
        mf_y = delay(m, adv, mf, 1, "mf")

        # 3. Newton steps
        for s in range(self.vcfg.rsqrt_newton):
            sq = m.submodules[f"sq{s}"] = WideMultiplier(RB + 3, RB + 3, primitives=P, spare_first=True)
            mq = m.submodules[f"mq{s}"] = WideMultiplier(RB + 3, 2 * RB + 6, primitives=P, spare_first=True)
            yd = m.submodules[f"yd{s}"] = WideMultiplier(RB + 3, RB + 6, primitives=P, spare_first=True)
            t = Signal(signed(RB + 6), name=f"t{s}", reset_less=True)
            d = Signal(signed(RB + 6), name=f"d{s}", reset_less=True)
            y_next = Signal(signed(RB + 3), name=f"y{s}", reset_less=True)
            m.d.comb += [sq.en.eq(adv), mq.en.eq(adv), yd.en.eq(adv),
                         sq.a.eq(y), sq.b.eq(y),
                         mq.a.eq(delay(m, adv, mf_y, MUL_STAGES, f"mf{s}")), mq.b.eq(sq.p),
                         yd.a.eq(delay(m, adv, y, 2 * MUL_STAGES + 2, f"y{s}")), yd.b.eq(d)]
            with m.If(adv):
                m.d.sync += [t.eq(round_shift(mq.p, 2 * RB)), d.eq((3 << RB) - t),
                             y_next.eq(round_shift(yd.p, RB + 1))]
            mf_y, y = delay(m, adv, mf_y, NEWTON_STAGES, f"mfn{s}"), y_next

        m.d.comb += [self.o.payload.y.eq(y),
                     self.o.payload.E.eq(delay(m, adv, E, self.latency - BITLEN_STAGES - 1, "E"))]
        assert RSQRT_NORM_STAGES == BITLEN_STAGES + 1 + SHIFT_STAGES
        return m
