"""Closed forms: the cycles of the vector unit's RTL components (hw/VECTOR.md) for one
vector of n elements without stalls.

Each function counts the cycles from the one in which the first input beat is accepted
to the one in which the last output beat is taken, both included, with every input
offered at full rate and every output always ready. The tests measure the RTL in
Amaranth's simulator against these (tests/test_hw_*: divider, int8quant, rsqrt, rmsnorm,
requant, silumul, rope). The models never import the RTL, so each stage count below is
written out with what it counts; hw/VECTOR.md derives them.

Symbols: B = ``scale_bits``, RB = ``rsqrt_frac_bits``, N = ``rsqrt_newton``.
"""
from __future__ import annotations

#: hw.multiplier.PipelinedMultiplier: input, product and output registers
MUL_STAGES = 3
#: Int8Quantizer's output pass: the buffer read, the multiplier, round-shift-and-clamp
INT8Q_OUT_STAGES = 1 + MUL_STAGES + 1


def divider_cycles(quo_bits: int) -> int:
    """RestoringDivider: accept, quo_bits restoring steps, the result beat."""
    return quo_bits + 2


def int8quant_cycles(n: int, scale_bits: int) -> int:
    """Int8Quantizer: n receive cycles, one cycle for K, the divider's B + 8 steps and its
    result beat (taken in the cycle it appears), then the output pass: n reads, the last
    one INT8Q_OUT_STAGES cycles before its output beat."""
    quo = scale_bits + 8
    return n + 1 + (quo + 1) + 1 + (n - 1) + INT8Q_OUT_STAGES
