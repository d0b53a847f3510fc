"""Closed forms: the cycles of the vector unit's RTL components (hw/VECTOR.md) for one
vector of n elements without stalls.

Each function counts the cycles from the one in which the first input beat is accepted
to the one in which the last output beat is taken, both included, with every input
offered at full rate and every output always ready. The tests measure the RTL in
Amaranth's simulator against these (tests/test_hw_*: divider, int8quant, rsqrt, rmsnorm,
requant, silumul, rope). The models never import the RTL, so each stage count below is
written out with what it counts; hw/VECTOR.md derives them.

Symbols: B = ``scale_bits``, RB = ``rsqrt_frac_bits``, N = ``rsqrt_newton``; ``lanes``
elements per beat (one beat per cycle), so n elements are ceil(n / lanes) beats.
"""
from __future__ import annotations

from ..vectortiming import (INT8Q_OUT_STAGES, INT8Q_PREP_CYCLES, RMS_PREP_CYCLES, RMS_SCAN_STAGES, RMS_SS_CYCLES,
                            RMS_STEP_STAGES, ROPE_STAGES, SILU_STAGES, requant_stages)
from ..vectortiming import rsqrt_latency as _rsqrt_latency

def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def divider_cycles(quo_bits: int) -> int:
    """Divider: accept, quo_bits steps, the result beat."""
    return quo_bits + 2


def int8quant_cycles(n: int, scale_bits: int, lanes: int = 1) -> int:
    """Int8Quantizer: N = ceil(n / lanes) receive cycles, INT8Q_PREP_CYCLES (mu, K and the
    numerator), one cycle offering them to the divider, its B + 8 steps and its result
    beat (taken in the cycle it appears), then the output pass: N reads, the last one
    INT8Q_OUT_STAGES cycles before its output beat."""
    return int8quant_stream_cycles(n, 1, scale_bits, lanes)


class Int8QuantStream:
    """Int8Quantizer's closed form vector by vector, each vector's input offered from a
    given cycle (``vector(offer)``: its first element then, the others one per cycle as the
    quantizer takes them); returns the cycle after the vector's last output. Per vector k
    (N beats each): the receive from A_k (the later of the offer and the quantizer's
    readiness), its last beat E_k = A_k + N - 1; FOLD at F_k = max(E_k + 1, H_(k-1) + 2)
    (after the previous vector's hand-over: the divider is free); NORM at
    F_k + INT8Q_PREP_CYCLES; the hand-over H_k = max(NORM_k + B + 9,
    Z_(k-1) + INT8Q_OUT_STAGES + 1) (the divider's B + 8 steps, the previous output pass's
    pipeline drained); its reads H_k + 1 .. Z_k = H_k + N, its last output in
    Z_k + INT8Q_OUT_STAGES. The quantizer is ready for the next receive at Z_k + 1 with one
    bank, and with two at max(NORM_k, Z_(k-1)) + 1 (its bank, the one of vector k - 1, read
    to the end): at least INT8Q_PREP_CYCLES + 2 cycles after the previous vector's last
    beat, time enough for a reader restarted after that beat to offer the next one."""

    def __init__(self, n: int, scale_bits: int, lanes: int = 1, banks: int = 1):
        self.N, self.B, self.banks = _ceil(n, lanes), scale_bits, banks
        self.ready, self.H, self.Z, self.Z1 = None, None, None, None

    def vector(self, offer: int = 0) -> int:
        N = self.N
        A = offer if self.ready is None else max(self.ready, offer)
        E = A + N - 1
        F = E + 1 if self.H is None else max(E + 1, self.H + 2)
        norm = F + INT8Q_PREP_CYCLES
        H = norm + self.B + 9 if self.Z is None else max(norm + self.B + 9, self.Z + INT8Q_OUT_STAGES + 1)
        self.H, self.Z, self.Z1 = H, H + N, self.Z
        self.ready = self.Z + 1 if self.banks == 1 else max(norm, self.Z1 if self.Z1 is not None else norm) + 1
        return self.Z + INT8Q_OUT_STAGES + 1


def int8quant_stream_cycles(n: int, count: int, scale_bits: int, lanes: int = 1, banks: int = 1) -> int:
    """Int8Quantizer: ``count`` vectors of n elements back to back (each input offered as
    soon as the quantizer is ready), first input to last output (``Int8QuantStream``). One
    vector: ``int8quant_cycles``."""
    stream = Int8QuantStream(n, scale_bits, lanes, banks)
    return [stream.vector() for _ in range(count)][-1]


def rsqrt_latency(vcfg) -> int:
    """Rsqrt's registers: the normalization (RSQRT_NORM_STAGES), the seed ROM, per Newton
    step RSQRT_NEWTON_STAGES (three WideMultipliers, the rounding add of t, the
    correction term, the rounding)."""
    return _rsqrt_latency(vcfg.rsqrt_newton)


def rsqrt_cycles(n: int, vcfg) -> int:
    """Rsqrt on n values back to back: one per cycle, the last rsqrt_latency later."""
    return n + rsqrt_latency(vcfg)


def rmsnorm_cycles(n: int, vcfg, lanes: int = 1) -> int:
    """RmsNorm on N = n / lanes beats (the vector's ``k`` beat offered by the end of its
    receive): N receive cycles, RMS_PREP_CYCLES (the last |h| folded, its bit length, p
    and the k beat), the scan (N reads; the last u reaches the quantizer RMS_SCAN_STAGES
    later); then two paths meet at the first output: the quantizer's (one cycle for K, the
    divider and its hand-over, the first read through INT8Q_OUT_STAGES) and the 1/sqrt's
    (RMS_SS_CYCLES for ss, the Rsqrt, y registered); N beats through the RMS_STEP_STAGES
    step registers."""
    n = _ceil(n, lanes)
    last_u = n + RMS_PREP_CYCLES + (n - 1) + RMS_SCAN_STAGES    # cycle the last u is taken
    first_q = last_u + INT8Q_PREP_CYCLES + 1 + (vcfg.scale_bits + 8 + 1) + 1 + INT8Q_OUT_STAGES
    y_ready = last_u + RMS_SS_CYCLES + rsqrt_latency(vcfg) + 1
    return max(first_q, y_ready) + (n - 1) + RMS_STEP_STAGES + 1


def requant_cycles(n: int, residual: bool = False, lanes: int = 1) -> int:
    """Requantize on n elements: a beat of ``lanes`` per cycle through
    ``requant_stages(residual)`` registers (the pre-shift, the multiplier, the output
    shift, rounding and saturation; the residual add and its saturation)."""
    return _ceil(n, lanes) + requant_stages(residual)


def silumul_cycles(n: int, lanes: int = 1) -> int:
    """SiluMul on n pairs: a beat of ``lanes`` per cycle through SILU_STAGES registers."""
    return _ceil(n, lanes) + SILU_STAGES


def rope_cycles(head_dim: int, lanes: int = 1) -> int:
    """Rope on one head: W = head_dim / (2 lanes) beats for the first half, W for the second
    (its out[i] leave ROPE_STAGES later), then the W buffered beats of out[i + h]."""
    w = head_dim // 2 // lanes
    return w + w + ROPE_STAGES + w
