"""Integer SiLU·mul of the vector unit: silu(g) · u for the gated MLP (docs/NUMERIC.md,
"SiLU").

g and u are fixed point with FR fraction bits (|g|, |u| < 2^(resid_bits - 1)).
silu(g) = g · sigma(g); sigma comes from a LUT with linear interpolation on |g|
(``silu_method = "lut-interp"``), using sigma(-x) = 1 - sigma(x):

    LUT   S[i] = rint(sigma(i · 2^(RS - LB)) · 2^SG),  i = 0 .. 2^LB   (2^LB + 1 entries;
          RS = silu_range_log2, LB = silu_lut_bits, SG = sigmoid_frac_bits)
    x     = min(|g|, 2^(RS + FR) - 1)                 (|g| clipped to the table's range)
    i     = x >> (RS + FR - LB),  r = x & (2^(RS + FR - LB) - 1)
    s+    = S[i] + rshift_round((S[i+1] - S[i]) · r, RS + FR - LB)
    sigma = s+ for g >= 0, 2^SG - s+ for g < 0
    silu  = rshift_round(g · sigma, SG)                |g · sigma| < 2^(resid_bits - 1 + SG)
    y     = sat(rshift_round(silu · u, FR), resid_bits) |silu · u| < 2^(2 resid_bits - 2)

At |x| >= 2^RS the table's last entry holds (sigma(16) = 1 - 1.1e-7 at RS = 4), so
silu(g) = g · S[2^LB] there: the clipping error is below 2^-SG relative. The linear
interpolation's error is at most h²/8 · max|sigma''| = h² / 8 · 0.0962 with
h = 2^(RS - LB) (4.7e-5 at RS = 4, LB = 8). The products need resid_bits <= 32 for the
last one to stay below 2^62 (asserted).
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import check_bound, i64, rshift_round, saturate


def sigmoid_lut(lut_bits: int, range_log2: int, frac_bits: int) -> np.ndarray:
    x = np.arange((1 << lut_bits) + 1) * 2.0 ** (range_log2 - lut_bits)
    return np.rint(2.0 ** frac_bits / (1.0 + np.exp(-x))).astype(np.int64)


def sigmoid_int(g, vcfg) -> np.ndarray:
    """sigma(g) with SG fraction bits for g with FR fraction bits."""
    g = i64(g)
    FR, RS, LB, SG = vcfg.resid_frac_bits, vcfg.silu_range_log2, vcfg.silu_lut_bits, vcfg.sigmoid_frac_bits
    S = sigmoid_lut(LB, RS, SG)
    sh = RS + FR - LB
    x = np.minimum(np.abs(g), (1 << (RS + FR)) - 1)
    i = x >> sh
    r = x & ((1 << sh) - 1)
    pos = S[i] + rshift_round((S[i + 1] - S[i]) * r, sh)
    return np.where(g >= 0, pos, (1 << SG) - pos)


def silu_mul(g, u, vcfg) -> np.ndarray:
    """silu(g) · u, FR fraction bits, saturated to resid_bits."""
    g, u = i64(g), i64(u)
    RB, FR, SG = vcfg.resid_bits, vcfg.resid_frac_bits, vcfg.sigmoid_frac_bits
    check_bound(g, RB - 1, "SiLU gate input")
    check_bound(u, RB - 1, "SiLU up input")
    gs = g * sigmoid_int(g, vcfg)
    check_bound(gs, RB - 1 + SG, "g · sigma")
    silu = rshift_round(gs, SG)
    prod = silu * u
    check_bound(prod, 62, "silu · u")
    return saturate(rshift_round(prod, FR), RB)
