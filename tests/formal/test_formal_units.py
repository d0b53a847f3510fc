"""Bounded proofs (tests/formal/test_formal.py's ``prove``: yowasp-sby, smtbmc with z3) that
two datapaths of the attention and vector units equal behavioural models written from the
golden reference, for every input of the widths below:

* the attention unit's 2^-a (hw/exp2neg.py ``Exp2Neg``, the LUT method, pipelined) against
  ``codec.intsoftmax.exp2neg`` written as a case table over the fraction f (the golden
  ``exp2_frac(f)``, LUT index rounding included) and a case per integer part k (the
  rounding right shift by k, 0 beyond PF + 1, clipped to 2^PF), for every a of the width
  the unit feeds it (the difference of two z_bits logits: SI + SF + 3 bits, unsigned),
  the argument a free input in every cycle and the result compared ``latency`` cycles on;
* the Rsqrt (hw/rsqrt.py) against ``codec.intnorm.rsqrt`` written as its steps — the
  normalization by an even shift (a case per bit length of ss), the seed as a case table
  of ``rsqrt_lut``, the Newton steps in wide signed arithmetic — delayed by the unit's
  latency, the pipeline's enables free inputs (any valid/ready pattern), for every ss > 0
  of ``ss_bits``.

Each has a deliberately wrong model that the solver must refute. Times on this machine
(2 shared cores, the whole test each): exp2neg 4 s at SF = 6, SI = 4, PF = 8, 4 LUT bits
(a of 13 bits), 31 s at the defaults (a of 25 bits, ``slow``); Rsqrt with RB = 8, 4 LUT
bits, one Newton step: 24 s at 12-bit ss, 51 s at 16 bits (``slow``); RB = 10, 5 LUT
bits: 116 s at 16 bits (``slow``, while another job ran). Not finished: the
Rsqrt at the default RB = 15 (6 LUT bits) with 16- and 24-bit ss, z3 still running after
5 minutes (the products mf · y² are 3RB + 4 bits wide); those widths are covered by
simulation against the golden reference (tests/test_hw_rsqrt.py).
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed

from tritforge.accelconfig import AttentionConfig, VectorConfig
from tritforge.codec.intnorm import rsqrt_lut
from tritforge.codec.intsoftmax import exp2_frac, exp_lut
from tritforge.hw.exp2neg import Exp2Neg
from tritforge.hw.rsqrt import Rsqrt
from tritforge.vectortiming import rsqrt_latency

from test_formal import prove


def _exp_width(acfg: AttentionConfig) -> int:
    """Width of exp2neg's argument in the attention unit: (mn - mrun).as_unsigned() of two
    signed z_bits = SI + SF + 2 logits."""
    return acfg.score_int_bits + acfg.score_frac_bits + 3


class Exp2NegSpec(Elaboratable):
    """hw.exp2neg.Exp2Neg against the golden 2^-a; ``wrong``: the model without the
    rounding of the LUT index (truncation), which the proof must refute."""

    def __init__(self, acfg: AttentionConfig, wrong: bool = False):
        self.acfg, self.wrong = acfg, wrong
        self.a = Signal(_exp_width(acfg))

    def elaborate(self, platform):
        m = Module()
        c = self.acfg
        SF, PF = c.score_frac_bits, c.prob_frac_bits
        table = [int(v) for v in exp_lut(c.exp_lut_bits, PF)]
        m.submodules.exp = exp = Exp2Neg(len(self.a), SF, PF, c.exp_lut_bits, table)
        m.d.comb += exp.a.eq(self.a)
        f, k = self.a[:SF], self.a[SF:]
        base = Signal(PF + 1)
        with m.Switch(f):
            for v in range(1 << SF):
                with m.Case(v):
                    golden = int(exp2_frac(v if not self.wrong else v & ~((1 << (SF - c.exp_lut_bits)) - 1), c))
                    m.d.comb += base.eq(golden)
        model = Signal(PF + 1)
        with m.Switch(k):
            for s in range(PF + 2):
                with m.Case(s):
                    shifted = base if s == 0 else (base + (1 << (s - 1))) >> s
                    m.d.comb += model.eq(Mux(shifted > (1 << PF), 1 << PF, shifted))
            with m.Default():
                m.d.comb += model.eq(0)
        late = model
        for i in range(Exp2Neg.latency):
            reg = Signal(PF + 1, name=f"model_d{i}")
            m.d.sync += reg.eq(late)
            late = reg
        filled = Signal(range(Exp2Neg.latency + 1))
        with m.If(filled != Exp2Neg.latency):
            m.d.sync += filled.eq(filled + 1)
        with m.Else():
            m.d.comb += Assert(exp.p == late)
        return m


#: the pipeline filled, then two cycles of comparisons
EXP_DEPTH = Exp2Neg.latency + 3
SMALL_ATT = AttentionConfig(score_frac_bits=6, score_int_bits=4, prob_frac_bits=8, exp_lut_bits=4)


def test_exp2neg_equals_golden_small(tmp_path):
    spec = Exp2NegSpec(SMALL_ATT)
    prove(tmp_path, spec, [spec.a], depth=EXP_DEPTH, name="exp2neg")


@pytest.mark.slow
@pytest.mark.parametrize("acfg", [AttentionConfig()])
def test_exp2neg_equals_golden_default(tmp_path, acfg):
    """The default widths (SF = 12, SI = 10, PF = 15, 8 LUT bits; a of 25 bits)."""
    spec = Exp2NegSpec(acfg)
    prove(tmp_path, spec, [spec.a], depth=EXP_DEPTH, name="exp2neg")


def test_exp2neg_proof_can_fail(tmp_path):
    spec = Exp2NegSpec(SMALL_ATT, wrong=True)
    with pytest.raises(AssertionError, match="FAIL"):
        prove(tmp_path, spec, [spec.a], depth=EXP_DEPTH, name="exp2neg")


class RsqrtSpec(Elaboratable):
    """Rsqrt(vcfg, ss_bits) against codec.intnorm.rsqrt's steps, delayed by the latency
    (``model_delay`` extra stages: a wrong model)."""

    def __init__(self, vcfg: VectorConfig, ss_bits: int, model_delay: int = 0):
        self.vcfg, self.ss_bits, self.model_delay = vcfg, ss_bits, model_delay
        self.ss = Signal(ss_bits)
        self.valid = Signal()
        self.ready = Signal()

    def elaborate(self, platform):
        m = Module()
        v = self.vcfg
        RB, L = v.rsqrt_frac_bits, v.rsqrt_lut_bits
        m.submodules.dut = dut = Rsqrt(v, self.ss_bits)
        m.d.comb += [dut.i.valid.eq(self.valid), dut.i.payload.ss.eq(self.ss), dut.o.ready.eq(self.ready),
                     Assume(~self.valid | (self.ss != 0))]
        # normalization: w = (bitlen(ss) - 1) // 2, mf = ss / 2^(2w - RB), E = RB + w
        mf = Signal(RB + 2)
        E = Signal(len(dut.o.payload.E))
        for b in range(1, self.ss_bits + 1):
            w = (b - 1) // 2
            sh = 2 * w - RB
            with m.If(self.ss[b - 1] & ((self.ss >> b) == 0)):
                m.d.comb += [mf.eq(self.ss >> sh if sh >= 0 else self.ss << -sh), E.eq(RB + w)]
        # the seed: rsqrt_lut indexed by mf's top L bits
        table = [int(t) for t in rsqrt_lut(L, RB)]
        wide = 4 * RB + 12
        y = Signal(signed(wide), name="y0")
        with m.Switch(mf >> (RB + 2 - L)):
            for idx in range(1 << (L - 2), 1 << L):
                with m.Case(idx):
                    m.d.comb += y.eq(table[idx - (1 << (L - 2))])
        # Newton: t = rshift_round(mf y², 2RB), y <- rshift_round(y (3 · 2^RB - t), RB + 1)
        for s in range(v.rsqrt_newton):
            t = Signal(signed(wide), name=f"t{s}")
            ny = Signal(signed(wide), name=f"y{s + 1}")
            m.d.comb += [t.eq((mf * y * y + (1 << (2 * RB - 1))) >> (2 * RB)),
                         ny.eq((y * ((3 << RB) - t) + (1 << RB)) >> (RB + 1))]
            y = ny
        # the model's (valid, y, E) through the pipeline's registers, enabled like them
        now = (self.valid, y, E)
        mv = Signal()
        for k in range(dut.latency + self.model_delay):
            regs = (Signal(name=f"mv{k}"), Signal(signed(wide), name=f"my{k}"), Signal(len(E), name=f"mE{k}"))
            with m.If(~mv | self.ready):
                m.d.sync += [r.eq(x) for r, x in zip(regs, now)]
            now = regs
        m.d.comb += mv.eq(now[0])
        o = dut.o.payload
        # the payload is checked where it is valid (the multipliers' registers have no reset)
        m.d.comb += [Assert(dut.o.valid == mv), Assert(dut.i.ready == (~mv | self.ready)),
                     Assert(~mv | ((o.y == now[1]) & (o.E == now[2])))]
        return m


def _prove_rsqrt(tmp_path, vcfg, ss_bits, model_delay=0):
    spec = RsqrtSpec(vcfg, ss_bits, model_delay)
    prove(tmp_path, spec, [spec.ss, spec.valid, spec.ready], depth=spec_latency(vcfg) + model_delay + 2,
          name="rsqrt")


def spec_latency(vcfg) -> int:
    """Rsqrt's latency (hw/rsqrt.py, tritforge/vectortiming.py): the staged normalization,
    the seed, RSQRT_NEWTON_STAGES per step."""
    return rsqrt_latency(vcfg.rsqrt_newton)


SMALL_RSQRT = VectorConfig(rsqrt_frac_bits=8, rsqrt_lut_bits=4, rsqrt_newton=1)


@pytest.mark.parametrize("ss_bits", [12])
def test_rsqrt_equals_golden_small(tmp_path, ss_bits):
    _prove_rsqrt(tmp_path, SMALL_RSQRT, ss_bits)


@pytest.mark.slow
@pytest.mark.parametrize("vcfg,ss_bits", [(SMALL_RSQRT, 16), (VectorConfig(rsqrt_frac_bits=10, rsqrt_lut_bits=5), 16)])
def test_rsqrt_equals_golden_wider(tmp_path, vcfg, ss_bits):
    _prove_rsqrt(tmp_path, vcfg, ss_bits)


def test_rsqrt_proof_can_fail(tmp_path):
    with pytest.raises(AssertionError, match="FAIL"):
        _prove_rsqrt(tmp_path, SMALL_RSQRT, 12, model_delay=1)
