"""Integer RMSNorm of the vector unit, fused with the int8 quantization of its output
(docs/NUMERIC.md, "RMSNorm").

Input: the residual h, integers with FR fraction bits, |h| < 2^(resid_bits - 1). Output:
int8 x_q and a step (m, e) per vector with x_real ≈ x_q · m · 2^-e — exactly what the
GEMV engine (or the int8 lm_head) takes next.

    RMSNorm(h) = gamma · h / sqrt(mean(h²) + eps)
               = (gamma · sqrt(n)) · h / sqrt(Σ h² + n · eps)

Steps, per vector of n elements (the width bounds with NB = norm_in_bits, GB =
gamma_bits, RB = rsqrt_frac_bits, B = scale_bits):

1. Pre-shift: p = max(0, bitlen(max|h|) - NB), hs = rshift_round(h, p), so |hs| <= 2^NB.
   The mean square needs NB significant bits, not resid_bits; one leading-zero count per
   vector picks the shift.
2. Sum of squares: ss = Σ hs² + rshift_round(eps_q, 2p), eps_q = rint(eps · n · 2^(2FR))
   (host, offline). ss <= n · 2^(2 NB) + eps_q (asserted < 2^62).
3. Reciprocal square root ``rsqrt``: a LUT seed and Newton steps on 1/sqrt directly (the
   hardware then needs no divider for the norm). I-BERT (Kim et al. 2021, Sec. 3.5,
   integer-only LayerNorm) instead takes floor(sqrt(n)) by an integer Newton iteration and
   divides; the reciprocal form saves the division and a data-dependent iteration count.
   Normalize by an even shift so that ss = mf · 2^(2w - RB)
   with mf in [2^RB, 2^(RB+2)) (a value in [1, 4) with RB fraction bits, truncated); a
   LUT of 3 · 2^(L-2) entries indexed by mf's top L bits holds y0 = rint(2^RB /
   sqrt(bin centre)); each Newton step y <- y (3 - mf y²) / 2:
       t = rshift_round(mf · y · y, 2 RB)     (mf · y² < 2^(RB+2) · 2^(2RB+2) = 2^(3RB+4))
       y = rshift_round(y · (3 · 2^RB - t), RB + 1)
   Result: ss^(-1/2) ≈ y · 2^-(RB + w).
4. Weight: u = g_q · hs with g_q = rint(gamma · sqrt(n) · 2^GF) (host, offline; GF per
   norm, the largest that keeps |g_q| < 2^(GB-1)), |u| < 2^(GB - 1 + NB).
5. int8: (x_q, m_u, e_u) = quantize_int8(u); the step in real units is
   m_u · 2^-e_u · y · 2^-(GF + RB + w) = scale_mul(m_u, e_u, y, GF + RB + w).

Why: gamma · sqrt(n) · h_real / sqrt(Σ h_real² + n eps) with h_real = hs · 2^(p - FR) and
Σ h_real² + n eps = ss · 2^(2p - 2FR) equals g_q 2^-GF · hs · ss^(-1/2); the 2^(p - FR)
factors cancel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import TritforgeError
from .fixedpoint import bitlen, check_bound, i64, quantize_int8, rshift_round, scale_mul


def rsqrt_lut(lut_bits: int, frac_bits: int) -> np.ndarray:
    """y0 for mf's top ``lut_bits`` bits in [2^(L-2), 2^L): 3 · 2^(L-2) entries, the bin centres."""
    lo = 1 << (lut_bits - 2)
    idx = np.arange(lo, 1 << lut_bits)
    centre = (idx + 0.5) * 2.0 ** (2 - lut_bits)
    return np.rint(2.0 ** frac_bits / np.sqrt(centre)).astype(np.int64)


def rsqrt(ss, lut_bits: int, frac_bits: int, newton: int) -> tuple[np.ndarray, np.ndarray]:
    """ss > 0 (int64) -> (y, E) with ss^(-1/2) ≈ y · 2^-E; 2^(RB-1) < y <= 2^RB (+ rounding)."""
    ss = i64(ss)
    RB = frac_bits
    b = bitlen(ss)
    w = (b - 1) // 2                                 # ss / 2^(2w) in [1, 4)
    sh = 2 * w - RB
    mf = np.where(sh >= 0, np.right_shift(ss, np.maximum(sh, 0)), np.left_shift(ss, np.maximum(-sh, 0)))
    check_bound(mf, RB + 2, "rsqrt mantissa")
    table = rsqrt_lut(lut_bits, RB)
    idx = (mf >> (RB + 2 - lut_bits)) - (1 << (lut_bits - 2))
    y = table[idx]
    # mf · y² < 2^(RB+2) · 2^(2RB+2) = 2^(3RB+4): past int64 from RB = 20 on, so that one
    # product is formed in Python integers (a handful per vector); t < 2^(RB+4) again fits
    newton_t = np.frompyfunc(lambda m, yy: (int(m) * int(yy) * int(yy) + (1 << (2 * RB - 1))) >> (2 * RB), 2, 1)
    for _ in range(newton):
        t = np.asarray(newton_t(mf, y), dtype=np.int64).reshape(np.shape(y))
        check_bound(t, RB + 4, "Newton rshift_round(m · y², 2 RB)")
        y = rshift_round(y * (3 * (1 << RB) - t), RB + 1)
    return y, RB + w


@dataclass(frozen=True)
class IntNormWeights:
    """The host's offline conversion of one RMSNorm: g_q, its fraction bits GF, eps_q."""

    g_q: np.ndarray
    gamma_frac: int
    eps_q: int
    n: int

    @classmethod
    def from_float(cls, gamma, eps: float, resid_frac: int, gamma_bits: int) -> "IntNormWeights":
        g = np.asarray(gamma, dtype=np.float64).reshape(-1)
        n = g.size
        if not np.isfinite(g).all():
            raise TritforgeError("RMSNorm weight: NaN/Inf values; expected finite values")
        gs = g * math.sqrt(n)
        top = float(np.abs(gs).max())
        limit = (1 << (gamma_bits - 1)) - 1
        gf = 24 if top == 0 else int(math.floor(math.log2(limit / top)))
        while gf > -16 and np.abs(np.rint(gs * 2.0 ** gf)).max() > limit:
            gf -= 1
        g_q = np.rint(gs * 2.0 ** gf).astype(np.int64)
        eps_q = int(round(eps * n * 2.0 ** (2 * resid_frac)))
        return cls(g_q, gf, eps_q, n)


def rmsnorm_int8(h, w: IntNormWeights, vcfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h (..., n) integers (FR fraction bits) -> (x_q int8 (..., n), m, e) per vector."""
    h = i64(h)
    if h.shape[-1] != w.n:
        raise TritforgeError(f"RMSNorm: input has {h.shape[-1]} features, expected {w.n}")
    check_bound(h, vcfg.resid_bits - 1, "RMSNorm input")
    NB = vcfg.norm_in_bits
    p = np.maximum(bitlen(np.abs(h).max(axis=-1)) - NB, 0)
    hs = rshift_round(h, p[..., None])
    check_bound(hs, NB + 1, "RMSNorm pre-shifted input")
    sq = hs * hs
    ss = sq.sum(axis=-1) + rshift_round(np.int64(w.eps_q), 2 * p)
    check_bound(ss, 62, "RMSNorm sum of squares")
    ss = np.maximum(ss, 1)                            # eps = 0 and h = 0: any scale serves
    y, E = rsqrt(ss, vcfg.rsqrt_lut_bits, vcfg.rsqrt_frac_bits, vcfg.rsqrt_newton)
    u = w.g_q * hs
    check_bound(u, vcfg.gamma_bits - 1 + NB + 1, "RMSNorm weighted input")
    xq, mu, eu = quantize_int8(u, vcfg.scale_bits)
    m, e = scale_mul(mu, eu, y, E + w.gamma_frac, vcfg.scale_bits)
    return xq, m, e
