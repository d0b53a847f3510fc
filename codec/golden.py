"""Integer golden reference of the hardware arithmetic (docs/NUMERIC.md).

The single oracle for every test: the cycle model, the Amaranth simulations and the
cocotb/Verilator runs all compare against these functions, bit for bit.

Contract
    activations  any int8 x_q in -128..127 (the engine's ``act`` port takes the whole range);
                 the host's quantizer (``quantize_activations``) gives
                 x_q = clamp(rint(x / s_x), -127, 127) with s_x = max|x| / 127 per vector
                 (s_x = 1 for an all-zero vector; rint rounds half to even).
    group dot    P[r, g] = sum_{j<16} q[r, 16g+j] * x_q[16g+j]
                 = sum_i 3**i * sum_j t_i[r, 16g+j] * x_q[16g+j]   (per trit plane i)
    accumulate   A[r] = sum_g (m[k[r,g]] * P[r, g]) << delta[k[r,g]]
                 (m: codebook mantissa, delta = E - e: left shift; exact integers)
    host         y[r] = A[r] * s_x * codebook.host_scale                      (float)

Widths (``widths``), with L = (3**d - 1) / 2, F mantissa bits, S the largest shift and
n = in_features / 16 groups:
    |x_q| <= 128 (ACT_ABS);  |q| <= L;  |P| <= 16 * L * 128;
    0 <= m <= 2**F - 1, so |m * P| <= 16 * L * 128 * (2**F - 1);
    0 <= delta <= E <= S, so one shifted term is at most 16 * L * 128 * (2**F - 1) * 2**S;
    |A| <= n * 16 * L * 128 * (2**F - 1) * 2**S.
A signed register of ``bit_length(bound) + 1`` bits holds every value, so the
accumulator cannot overflow for any input the config admits; ``tests/test_golden.py``
drives the extreme case (all |q| = L, all x_q = -128, every entry at the largest
mantissa and shift) and checks the bound is reached exactly and fits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TritforgeError
from .layout import GROUP, max_level
from .quantize import TritTensor

ACT_BITS = 8
#: the largest |x_q| the host's quantizer produces (symmetric: -127..127)
ACT_MAX = 2 ** (ACT_BITS - 1) - 1
#: the int8 range the hardware takes: -128..127; widths are sized for |x_q| <= ACT_ABS
ACT_MIN = -(2 ** (ACT_BITS - 1))
ACT_ABS = -ACT_MIN


@dataclass(frozen=True)
class Widths:
    """Signed bit widths of the datapath for one (d, in_features, F, S)."""

    act: int        #: activation x_q
    dot: int        #: group dot product P
    product: int    #: m * P
    acc: int        #: row accumulator A
    bound: int      #: largest |A|


def widths(d: int, in_features: int, mant_bits: int, shift_limit: int) -> Widths:
    L = max_level(d)
    n = -(-in_features // GROUP)
    p = GROUP * L * ACT_ABS
    prod = p * (2 ** mant_bits - 1)
    bound = n * prod * 2 ** shift_limit
    return Widths(ACT_BITS, p.bit_length() + 1, prod.bit_length() + 1,
                  bound.bit_length() + 1, bound)


def quantize_activations(x, in_padded: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int8 symmetric per-vector quantization of x (..., in) -> (x_q (..., in_padded), s_x (...)).

    Columns beyond ``in`` (up to ``in_padded``) are zero.
    """
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise TritforgeError("activations: NaN/Inf values; expected finite values")
    n = x.shape[-1]
    in_padded = n if in_padded is None else in_padded
    if in_padded < n:
        raise TritforgeError(f"activations: {n} features, more than the matrix's {in_padded}")
    s = np.abs(x).max(axis=-1) / ACT_MAX
    s = np.where(s > 0, s, 1.0)
    xq = np.clip(np.rint(x / s[..., None]), -ACT_MAX, ACT_MAX).astype(np.int8)
    if in_padded > n:
        xq = np.concatenate([xq, np.zeros(xq.shape[:-1] + (in_padded - n,), np.int8)], -1)
    return xq, s


def group_dots(q: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """P for every row and group: q (rows, in_pad), xq (..., in_pad) -> (..., rows, ng) int64."""
    rows, cols = q.shape
    qg = q.reshape(rows, cols // GROUP, GROUP).astype(np.int32)
    xg = np.asarray(xq).reshape(xq.shape[:-1] + (cols // GROUP, GROUP)).astype(np.int32)
    return np.einsum("rgj,...gj->...rg", qg, xg).astype(np.int64)


def group_dots_by_planes(q: np.ndarray, xq: np.ndarray, d: int) -> np.ndarray:
    """The same P, computed as the hardware does: per trit plane add/subtract/skip, then 3x = 2x + x."""
    from .layout import to_trits
    t = to_trits(q, d)                               # (rows, in_pad, d)
    total = 0
    for i in reversed(range(d)):                     # Horner: acc = 3 * acc + plane_i
        plane = group_dots(t[..., i], xq)
        total = (total << 1) + total + plane
    return total


def accumulate(P: np.ndarray, k: np.ndarray, mantissa: np.ndarray, left_shift: np.ndarray) -> np.ndarray:
    """A[..., r] = sum_g (m[k] * P) << delta[k], exact (int64, or Python ints past 62 bits)."""
    m = np.asarray(mantissa, dtype=np.int64)[k]
    sh = np.asarray(left_shift, dtype=np.int64)[k]
    terms = (m * P) << sh
    return terms.sum(axis=-1)


def accumulators(t: TritTensor, xq: np.ndarray) -> np.ndarray:
    """Integer row accumulators A for x_q (in_pad,) or (T, in_pad): (rows,) or (T, rows)."""
    w = widths(t.depth, t.in_padded, t.codebook.mant_bits, t.codebook.shift_limit)
    if w.acc > 63:
        raise TritforgeError(f"accumulator width {w.acc} bits exceeds the reference's int64")
    return accumulate(group_dots(t.q, xq), t.k, t.codebook.mantissa, t.codebook.left_shift)


def rescale(A: np.ndarray, s_x: np.ndarray, t: TritTensor) -> np.ndarray:
    """Host side: y = A * s_x * host_scale (float64)."""
    return A.astype(np.float64) * np.asarray(s_x, dtype=np.float64)[..., None] * t.codebook.host_scale


def gemv(t: TritTensor, x) -> np.ndarray:
    """y = W_q x through the integer path; x (..., in_features) -> (..., out_features) float64."""
    xq, s = quantize_activations(x, t.in_padded)
    flat = xq.reshape(-1, t.in_padded)
    A = accumulators(t, flat)
    y = rescale(A, s.reshape(-1), t)
    return y.reshape(xq.shape[:-1] + (t.q.shape[0],))
