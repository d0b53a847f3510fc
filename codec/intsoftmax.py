"""Integer exponential and online softmax of the attention unit (docs/NUMERIC.md,
"Softmax").

Base-2 logits. The attention unit multiplies every score by log2(e) / sqrt(head_dim)
(folded into the query's scale, ``codec/intattention.py``), so softmax is over
z = score · log2(e) in fixed point with SF = score_frac_bits fraction bits, and
exp(score - max) = 2^(z - max). The range reduction by ln 2 of I-BERT (Kim et al. 2021,
"I-BERT: Integer-only BERT Quantization", Sec. 3.4, integer-only softmax: x = -z ln 2 + p) becomes a
bit split: for x = z - max <= 0, a = -x,

    k = a >> SF                (integer part: a right shift of the result)
    f = a & (2^SF - 1)         (fraction, in [0, 1) with SF bits)
    2^x = 2^-f · 2^-k

2^-f with PF = prob_frac_bits fraction bits, two methods (``exp_method``):

``"lut"``    T[i] = rint(2^PF · 2^(-i / 2^LB)), i = 0 .. 2^LB (2^LB + 1 entries,
             LB = exp_lut_bits), read at i = rshift_round(f, SF - LB). Error <= half a
             LUT step: ln 2 · 2^-(LB+1) relative (0.14 % at LB = 8) plus 2^-PF.
``"poly2"``  I-BERT's second-order polynomial exp(p) ≈ 0.35815147 p² + 0.96963238 p + 1
             on p in (-ln 2, 0] (the coefficients of the I-BERT reference implementation,
             kssteven418/I-BERT, ``IntSoftmax``; exact at p = 0), with p = -f ln 2:
                 2^-f ≈ 2^PF + rshift_round(f · (rshift_round(A f, SF) - C), SF)
             A = rint(0.35815147 ln²2 · 2^PF), C = rint(0.96963238 ln 2 · 2^PF).
             Relative error at most 0.33 % on [0, 1) (the fit's own), plus the rounding.
Both give exactly 2^PF at x = 0, so the running max's own term and an unchanged max's
correction factor are exactly one. Then e = rshift_round(2^-f, k) (0 once k > PF + 1),
0 <= e <= 2^PF.

Online softmax (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax";
FlashAttention, Dao et al. 2022, Sec. 3.1, Algorithm 1): keys arrive in blocks; the unit
keeps per query and head a running max m, a running sum l and an output accumulator o,
and never holds the whole context:

    m' = max(m, max_j z_j)              (masked keys excluded)
    c  = exp2neg(m - m')                 (= 2^PF when the max did not move)
    p_j = exp2neg(z_j - m')              (0 for masked keys)
    l' = rshift_round(l · c, PF) + Σ_j p_j
    o' = rshift_round(o · c, PF) + Σ_j w_j · v_j     (w_j: p_j with the key's V scale,
                                                      codec/intattention.py)

Widths: 0 <= p, c <= 2^PF; l <= ctx · 2^PF (each key adds at most 2^PF and the rescale
never grows l), so l fits PF + bitlen(max_context) + 1 bits; l · c < 2^(2PF + bitlen(ctx) + 1).
"""
from __future__ import annotations

import math

import numpy as np

from .fixedpoint import check_bound, i64, rshift_round

#: I-BERT's exp(p) ≈ A2 p² + A1 p + A0 on (-ln 2, 0] (reference implementation's fit)
IBERT_COEF = (0.35815147, 0.96963238, 1.0)


def exp_lut(lut_bits: int, prob_frac: int) -> np.ndarray:
    i = np.arange((1 << lut_bits) + 1)
    return np.rint(2.0 ** prob_frac * 2.0 ** (-i / 2.0 ** lut_bits)).astype(np.int64)


def poly_consts(prob_frac: int) -> tuple[int, int]:
    ln2 = math.log(2.0)
    A = int(round(IBERT_COEF[0] * ln2 * ln2 * 2 ** prob_frac))
    C = int(round(IBERT_COEF[1] * ln2 * 2 ** prob_frac))
    return A, C


def exp2_frac(f, cfg) -> np.ndarray:
    """2^-f for f in [0, 2^SF) (SF fraction bits) -> PF fraction bits."""
    SF, PF = cfg.score_frac_bits, cfg.prob_frac_bits
    f = i64(f)
    if cfg.exp_method == "lut":
        return exp_lut(cfg.exp_lut_bits, PF)[rshift_round(f, SF - cfg.exp_lut_bits)]
    A, C = poly_consts(PF)
    inner = rshift_round(A * f, SF) - C                 # |.| < 2^(PF+1)
    check_bound(f * inner, SF + PF + 1, "poly2 product")
    return (np.int64(1) << PF) + rshift_round(f * inner, SF)


def exp2neg(x, cfg) -> np.ndarray:
    """2^x for integer x <= 0 with SF fraction bits -> 0..2^PF (PF fraction bits)."""
    x = i64(x)
    if x.size and int(x.max()) > 0:
        raise AssertionError("exp2neg: expected x <= 0")
    SF, PF = cfg.score_frac_bits, cfg.prob_frac_bits
    a = -x
    k = a >> SF
    f = a & ((1 << SF) - 1)
    base = exp2_frac(f, cfg)
    kk = np.minimum(k, PF + 2)                           # beyond PF + 1 the result is 0
    out = np.where(k > PF + 1, 0, rshift_round(base, kk))
    return np.clip(out, 0, 1 << PF)


class OnlineSoftmax:
    """Running (m, l, o) of the online softmax for a batch of (query, head) rows.

    ``update`` takes one block of base-2 logits z (rows, block), a validity mask, the
    per-key weights' V products (a callable turning p (rows, block) into the block's
    contribution to o) and folds them in; ``m`` starts below every admissible logit.
    """

    def __init__(self, rows_shape, out_dim: int, cfg):
        self.cfg = cfg
        zmax = 1 << (cfg.score_int_bits + cfg.score_frac_bits)
        self.floor = -2 * zmax                          # below every saturated logit
        self.m = np.full(rows_shape, self.floor, dtype=np.int64)
        self.l = np.zeros(rows_shape, dtype=np.int64)
        self.o = np.zeros(tuple(rows_shape) + (out_dim,), dtype=np.int64)

    def update(self, z, valid, contribution) -> None:
        PF = self.cfg.prob_frac_bits
        z = i64(z)
        bm = np.where(valid, z, self.floor).max(axis=-1)
        m_new = np.maximum(self.m, bm)
        c = exp2neg(self.m - m_new, self.cfg)
        p = np.where(valid, exp2neg(np.where(valid, z - m_new[..., None], 0), self.cfg), 0)
        self.l = rshift_round(self.l * c, PF) + p.sum(axis=-1)
        self.o = rshift_round(self.o * c[..., None], PF) + contribution(p)
        self.m = m_new
