"""Integer attention of the attention unit: int8 KV cache, int8 q·Kᵀ, grouped-query
attention, online softmax, p·V, output requantization (docs/NUMERIC.md, "Attention").

Inputs are fixed-point vectors with FR fraction bits (``resid_frac_bits``), as the GEMV
requantization (``codec/fixedpoint.requantize``) and RoPE (``codec/introtary.py``)
produce them: q (T, Hq, hd), k and v (T, Hkv, hd); Hq is a multiple of Hkv and query
head h reads KV head h // (Hq / Hkv) (grouped-query attention, as in SmolLM2 and Qwen2;
Hq = Hkv is plain multi-head attention).

KV cache (``IntKVCache``): every new token's k and v are quantized per KV head with
``fixedpoint.quantize_int8`` — int8 elements and one step (m, e) per token and head
(B-bit mantissa), v_fix ≈ v_q · m · 2^-e. Entries are written once and never
requantized, so a token's cache entry does not depend on the tokens after it.

Per query token at position t and head h (all arithmetic exact integers):

1. q is quantized the same way: (q_q, m_q, e_q); the host's offline constant
   (M_c, e_c) = to_multiplier(log2(e) / sqrt(hd), B) joins it: (m_c, e_c') =
   scale_mul(m_q, e_q, M_c, e_c).
2. score s_j = Σ_d q_q[d] · k_q[j, d]   (int8 x int8; |s| <= hd · 127²)
3. base-2 logit with SF fraction bits:
       z_j = clamp(rshift_round(s_j · m_c · m_k[j], e_c' + e_k[j] + 2 FR - SF), ±(2^(SF + score_int_bits) - 1))
   (q and k steps are in units of 2^-FR, hence the 2 FR)
   |s · m_c · m_k| < hd · 2^14 · 2^(2B) (2^55 at hd = 256, B = 16).
4. keys j <= t in blocks of ``block`` keys, in order from position 0, through
   ``intsoftmax.OnlineSoftmax`` (exp2 by ``exp_method``); key j's weight in p·V is
       w_j = rshift_round(p_j · m_v[j], e_v[j] + FR - OVF)   (≈ p_j · v_scale_real · 2^OVF)
   and o += Σ_j w_j · v_q[j]  (int8 V; |w_j · v_q| <= 2^PF · |v|max_real · 2^OVF (+ rounding)).
5. normalization, one reciprocal per query and head: sl = max(0, bitlen(l) - RL),
   l_t = rshift_round(l, sl), o_t = rshift_round(o, sl), R = floor(2^(2 RL) / l_t),
       out = sat(rshift_round(o_t · R, 2 RL + OVF - FR), resid_bits)
   (RL = recip_bits; |o_t| <= l_t · |v|max_real · 2^OVF, R <= 2^(RL+1)).

Widths are asserted where they are formed; with the default configuration
(PF = 15, OVF = 8, FR = 14, resid_bits = 32: |v|max_real < 2^17) |o| < max_context ·
2^(15 + 17 + 8) = 2^53 at 8192 tokens and |o_t · R| < 2^(16 + 25 + 17) = 2^58.

Because each query's result depends only on its own position, the cache entries 0..t
and the fixed block boundaries, a prompt run in one pass (prefill) and the same tokens
run one at a time (decode) give identical integers (tests/test_hwlayer.py).

The int8 lm_head (``int8_head``) uses the same int8 datapath: int8 weights with one
offline step per row, int8 activations from the final RMSNorm, int32 accumulators
(|acc| <= n · 127 · 127).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TritforgeError
from .fixedpoint import (Q8, bitlen, check_bound, exact_matmul, i64, quantize_int8,
                         rshift_round, saturate, scale_mul, to_multiplier)
from .intsoftmax import OnlineSoftmax


class IntKVCache:
    """int8 K and V with one (m, e) step per token and KV head; grows to max_context."""

    def __init__(self, kv_heads: int, head_dim: int, acfg, vcfg):
        self.acfg, self.vcfg = acfg, vcfg
        self.kv_heads, self.head_dim = kv_heads, head_dim
        self.clear()

    def clear(self) -> None:
        z8 = np.zeros((0, self.kv_heads, self.head_dim), np.int64)
        z = np.zeros((0, self.kv_heads), np.int64)
        self.k_q, self.k_m, self.k_e = z8, z, z
        self.v_q, self.v_m, self.v_e = z8.copy(), z.copy(), z.copy()

    def __len__(self) -> int:
        return self.k_q.shape[0]

    def truncated(self, n: int) -> "IntKVCache":
        """A copy holding the first ``n`` tokens (the state before token n was appended)."""
        out = IntKVCache(self.kv_heads, self.head_dim, self.acfg, self.vcfg)
        for name in ("k_q", "k_m", "k_e", "v_q", "v_m", "v_e"):
            setattr(out, name, getattr(self, name)[:n].copy())
        return out

    def append(self, k_fix, v_fix) -> None:
        """k, v (T, Hkv, hd) fixed point -> quantized and appended."""
        T = k_fix.shape[0]
        if len(self) + T > self.acfg.max_context:
            raise TritforgeError(f"attention: context of {len(self) + T} tokens exceeds "
                                 f"max_context={self.acfg.max_context}")
        B = self.acfg.scale_bits
        kq, km, ke = quantize_int8(k_fix, B)
        vq, vm, ve = quantize_int8(v_fix, B)
        self.k_q = np.concatenate([self.k_q, kq]); self.k_m = np.concatenate([self.k_m, km])
        self.k_e = np.concatenate([self.k_e, ke])
        self.v_q = np.concatenate([self.v_q, vq]); self.v_m = np.concatenate([self.v_m, vm])
        self.v_e = np.concatenate([self.v_e, ve])


def query_constant(head_dim: int, bits: int) -> tuple[int, int]:
    """Host, offline: log2(e) / sqrt(head_dim) as (M_c, e_c)."""
    return to_multiplier(math.log2(math.e) / math.sqrt(head_dim), bits)


def weight_left_max(acfg, vcfg) -> int:
    """The largest left shift of a p·V weight's p · m_v (< 2^(PF + B)) that keeps |w| within
    its bound 2^(PF + v_real_bits + OVF + 1), v_real_bits = resid_bits - 1 - FR: a V step
    asking more is outside the contract."""
    return (vcfg.resid_bits - 1 - vcfg.resid_frac_bits) + acfg.pv_frac_bits + 1 - acfg.scale_bits


def attend(q_fix, positions, cache: IntKVCache, acfg, vcfg) -> np.ndarray:
    """q (T, Hq, hd) fixed point at ``positions`` (T,) -> attention output (T, Hq, hd),
    FR fraction bits, over the cache's keys 0..position (the cache already holds them)."""
    q_fix = i64(q_fix)
    T, Hq, hd = q_fix.shape
    Hkv = cache.kv_heads
    if hd != cache.head_dim or hd > acfg.max_head_dim:
        raise TritforgeError(f"attention: head_dim {hd} (cache {cache.head_dim}, "
                             f"max_head_dim {acfg.max_head_dim})")
    if Hq % Hkv:
        raise TritforgeError(f"attention: {Hq} query heads do not share {Hkv} KV heads evenly")
    pos = i64(positions)
    ctx = len(cache)
    if T and int(pos.max()) >= ctx:
        raise TritforgeError(f"attention: query position {int(pos.max())} beyond the {ctx} cached keys")
    B, SF, PF = acfg.scale_bits, acfg.score_frac_bits, acfg.prob_frac_bits
    FR, OVF, RL = vcfg.resid_frac_bits, acfg.pv_frac_bits, acfg.recip_bits
    kvmap = np.arange(Hq) // (Hq // Hkv)
    qq, qm, qe = quantize_int8(q_fix, B)
    Mc, ec = query_constant(hd, B)
    cm, ce = scale_mul(qm, qe, Mc, ec, B)                      # (T, Hq)
    qh = qq.transpose(1, 0, 2)                                  # (Hq, T, hd)
    cmh, ceh = cm.T[:, :, None], ce.T[:, :, None]               # (Hq, T, 1)
    zlim = (1 << (acfg.score_int_bits + SF)) - 1
    sm = OnlineSoftmax((Hq, T), hd, acfg)
    vmax_real_bits = vcfg.resid_bits - 1 - FR
    w_left = weight_left_max(acfg, vcfg)
    for j0 in range(0, int(pos.max()) + 1 if T else 0, acfg.block):
        j1 = min(j0 + acfg.block, ctx)
        kb = cache.k_q[j0:j1][:, kvmap].transpose(1, 2, 0)      # (Hq, hd, bk)
        s = exact_matmul(qh, kb, hd * Q8 * Q8)                  # (Hq, T, bk)
        check_bound(s, bitlen(np.int64(hd * Q8 * Q8)).item(), "q·K score")
        km = cache.k_m[j0:j1][:, kvmap].T[:, None, :]           # (Hq, 1, bk)
        ke = cache.k_e[j0:j1][:, kvmap].T[:, None, :]
        prod = s * cmh * km
        check_bound(prod, 62, "score · scales")
        valid = np.arange(j0, j1)[None, None, :] <= pos[None, :, None]
        zsh = ceh + ke + 2 * FR - SF
        vm = cache.v_m[j0:j1][:, kvmap].T[:, None, :]
        ve = cache.v_e[j0:j1][:, kvmap].T[:, None, :]
        if ((zsh < 0) & valid).any() or ((ve + FR - OVF < -w_left) & valid).any():
            raise TritforgeError("attention: a query or K/V step outside the contract's range (a logit "
                                 f"shift below 0 or a p·V weight shift left of {w_left} bits)")
        z = np.clip(rshift_round(prod, zsh), -zlim, zlim)
        vb = cache.v_q[j0:j1][:, kvmap].transpose(1, 0, 2)      # (Hq, bk, hd)

        def contribution(p, vm=vm, ve=ve, vb=vb):
            w = rshift_round(p * vm, ve + FR - OVF)
            check_bound(w, PF + vmax_real_bits + OVF + 1, "p·V weight")
            bound = int(np.abs(w).max(initial=0)) * Q8 * vb.shape[1]
            return exact_matmul(w, vb, bound)

        sm.update(z, valid, contribution)
    check_bound(sm.o, PF + vmax_real_bits + OVF + int(bitlen(np.int64(acfg.max_context))) + 1,
                "p·V accumulator")
    l = np.maximum(sm.l, 1)
    sl = np.maximum(bitlen(l) - RL, 0)
    lt = rshift_round(l, sl)
    ot = rshift_round(sm.o, sl[..., None])
    R = (np.int64(1) << (2 * RL)) // lt
    prod = ot * R[..., None]
    check_bound(prod, 62, "o · 1/l")
    out = saturate(rshift_round(prod, 2 * RL + OVF - FR), vcfg.resid_bits)
    return out.transpose(1, 0, 2)                               # (T, Hq, hd)


def quantize_rows_int8(w, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host, offline: a float matrix (out, in) -> int8 rows w_q and one step (m, e) per row
    (w ≈ w_q · m · 2^-e), symmetric, rint, max|row| -> 127."""
    w = np.asarray(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise TritforgeError("int8 matrix: NaN/Inf values; expected finite values")
    top = np.abs(w).max(axis=1)
    step = np.where(top > 0, top / Q8, 1.0)
    wq = np.clip(np.rint(w / step[:, None]), -Q8, Q8).astype(np.int64)
    mant, ex = np.frexp(step)
    m = np.rint(mant * (1 << bits)).astype(np.int64)
    e = bits - ex.astype(np.int64)
    over = m >= (1 << bits)
    m, e = np.where(over, m >> 1, m), np.where(over, e - 1, e)
    return wq, m, e


def int8_head(w_q, x_q) -> np.ndarray:
    """int32 accumulators of the int8 lm_head: x_q (T, n) int8, w_q (V, n) int8 -> (T, V)."""
    n = w_q.shape[1]
    bound = n * Q8 * 128
    acc = exact_matmul(i64(x_q), i64(w_q).T, bound)
    check_bound(acc, 31, "int8 head accumulator")
    return acc
