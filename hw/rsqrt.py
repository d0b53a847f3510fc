"""Reciprocal square root of the RMSNorm, exactly ``codec.intnorm.rsqrt``: ss > 0 ->
(y, E) with ss^(-1/2) ≈ y · 2^-E.

Pipeline (``hw.elementpipe``: one ss per cycle, all stages advance together), with
RB = ``rsqrt_frac_bits``, L = ``rsqrt_lut_bits``:

1. normalize: b = bitlen(ss), w = (b - 1) // 2, mf = ss >> (2w - RB) (a left shift when
   2w < RB), so mf in [2^RB, 2^(RB+2)) is ss / 2^(2w) with RB fraction bits; E = RB + w;
2. seed: a ROM (``lib.memory``, synchronous read) of the 3 · 2^(L-2) entries of
   ``codec.intnorm.rsqrt_lut`` indexed by mf's top L bits minus 2^(L-2);
3. ``rsqrt_newton`` Newton steps y <- rshift_round(y (3 · 2^RB - t), RB + 1) with
   t = rshift_round(mf y², 2RB), eleven stages each: y² and mf · y² (a
   ``hw.multiplier.PipelinedMultiplier`` each, three stages), t and 3 · 2^RB - t (one),
   y · that (a multiplier), the rounding shift (one).

``latency`` = 2 + 11 · rsqrt_newton stages: an ss accepted in cycle t is on ``o`` in cycle
t + latency. Element-serial, fully pipelined (one ss per cycle); the RMSNorm uses one per
vector. ss = 0 is outside the contract (the RMSNorm clamps ss to at least 1).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..codec.intnorm import rsqrt_lut
from ..vectorports import rsqrt_ports
from .checks import check_int
from .elementpipe import advance, delay
from .fixedops import bitlen, rshift_round
from .multiplier import PipelinedMultiplier
from .signature import members

#: registers of one Newton step: y², mf · y², 3 · 2^RB - t, y · (3 · 2^RB - t), rounding
NEWTON_STAGES = 3 * PipelinedMultiplier.latency + 2
#: the largest ss of the contract (codec.intnorm: ss < 2^62)
MAX_SS_BITS = 62


def check_vector_config(owner: str, vcfg) -> VectorConfig:
    if not isinstance(vcfg, VectorConfig):
        raise TypeError(f"{owner} vcfg must be a VectorConfig, not {vcfg!r}")
    return vcfg


class Rsqrt(wiring.Component):
    """Ports: ``i`` {ss}; ``o`` {y, E}. Fully pipelined, one ss per cycle, latency
    2 + 11 · rsqrt_newton."""

    def __new__(cls, vcfg: VectorConfig, ss_bits: int = MAX_SS_BITS):
        check_vector_config("Rsqrt", vcfg)
        check_int("Rsqrt", "ss_bits", ss_bits, 1)
        if ss_bits > MAX_SS_BITS:
            raise ValueError(f"Rsqrt ss_bits must be at most {MAX_SS_BITS}, not {ss_bits}")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, ss_bits: int = MAX_SS_BITS):
        self.vcfg, self.ss_bits = vcfg, ss_bits
        self.latency = 2 + NEWTON_STAGES * vcfg.rsqrt_newton
        super().__init__(members(rsqrt_ports(vcfg, ss_bits)))

    def elaborate(self, platform):
        m = Module()
        RB, L = self.vcfg.rsqrt_frac_bits, self.vcfg.rsqrt_lut_bits
        adv, valid = advance(m, self.o, self.i.valid, self.latency, "rsqrt")
        m.d.comb += self.i.ready.eq(adv)

        # 1. normalize
        ss = self.i.payload.ss
        b = bitlen(m, ss, "ss")
        w = Signal(range(self.ss_bits))
        sh = Signal(range(-RB, 2 * self.ss_bits))
        rsh, lsh = Signal(range(2 * self.ss_bits)), Signal(range(RB + 1))
        m.d.comb += [w.eq((b - 1) >> 1), sh.eq(2 * w - RB),
                     rsh.eq(Mux(sh >= 0, sh, 0)), lsh.eq(Mux(sh < 0, -sh, 0))]
        mf = Signal(RB + 2)
        E = Signal(len(self.o.payload.E))
        with m.If(adv):
            m.d.sync += [mf.eq(Mux(sh >= 0, ss >> rsh, ss << lsh)), E.eq(w + RB)]

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
            sq = m.submodules[f"sq{s}"] = PipelinedMultiplier(RB + 3, RB + 3)
            mq = m.submodules[f"mq{s}"] = PipelinedMultiplier(RB + 3, 2 * RB + 6)
            yd = m.submodules[f"yd{s}"] = PipelinedMultiplier(RB + 3, RB + 6)
            d = Signal(signed(RB + 6), name=f"d{s}")
            y_next = Signal(signed(RB + 3), name=f"y{s}")
            m.d.comb += [sq.en.eq(adv), mq.en.eq(adv), yd.en.eq(adv),
                         sq.a.eq(y), sq.b.eq(y),
                         mq.a.eq(delay(m, adv, mf_y, 3, f"mf{s}")), mq.b.eq(sq.p),
                         yd.a.eq(delay(m, adv, y, 7, f"y{s}")), yd.b.eq(d)]
            with m.If(adv):
                m.d.sync += [d.eq((3 << RB) - rshift_round(mq.p, 2 * RB)),
                             y_next.eq(rshift_round(yd.p, RB + 1))]
            mf_y, y = delay(m, adv, mf_y, NEWTON_STAGES, f"mfn{s}"), y_next

        m.d.comb += [self.o.payload.y.eq(y),
                     self.o.payload.E.eq(delay(m, adv, E, self.latency - 1, "E"))]
        return m
