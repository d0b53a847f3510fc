"""Fixed-point primitives of the vector and attention units (docs/NUMERIC.md, "Attention
and vector units"): rounding shifts, saturation, leading-zero normalization, dynamic
scales, int8 quantization of a vector and requantization of the GEMV accumulators.

Every function is exact integer arithmetic on numpy int64 and is written the way the
hardware computes it; floats appear only in :func:`to_multiplier`, which the host runs
once, offline, to turn a constant real factor (a codebook's ``host_scale``, 1/127,
log2(e)/sqrt(head_dim)) into an integer multiplier and shift.

Conventions
    rounding     ``rshift_round(x, s) = (x + 2^(s-1)) >> s`` for s > 0 (an add then an
                 arithmetic shift: round half up, towards +inf); s = 0 is the identity and
                 s < 0 a left shift by -s; s > 63 acts as 63 (the result is 0 for every
                 |x| < 2^62, the operands' bound). Every rounding of the contract is this one.
    saturation   ``saturate(x, bits)`` clamps to the signed range -2^(bits-1) .. 2^(bits-1) - 1.
    scale        a positive real factor held as (m, e), value m · 2^-e, with the mantissa
                 normalized to B bits, 2^(B-1) <= m < 2^B (B = ``scale_bits``). Normalizing
                 an integer v > 0 is a leading-zero count (``bitlen``) and a truncating
                 shift: m = v >> k, k = bitlen(v) - B (a left shift when k < 0), e -= k.
                 Truncation costs at most 2^-(B-1) relative.

Width bounds (B = 16 unless stated; every function asserts its operands):
    scale product   m1 · m2 < 2^(2B)                               (32 bits)
    quantize_int8   |v| < 2^VB with VB <= 39: R = floor(127 · 2^K / mu), K = bitlen(mu) + B,
                    so R <= 127 · 2^K / mu < 2^(7 + B + 1) and |v · R| <= 127 · 2^K
                    < 2^(7 + VB + B) <= 2^62
    requantize      A' = rshift_round(A, a), a = max(0, bitlen(bound_A) + B - 62), so
                    |A' · m| < 2^(62 - B) · 2^B = 2^62
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TritforgeError

#: int8 activations of the contract are symmetric: -127..127
Q8 = 127
#: right shifts saturate here: (x + 2^62) >> 63 = 0 for every |x| < 2^62, as for any longer shift
MAX_SHIFT = 63


def i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def check_bound(x, bits: int, what: str) -> None:
    """Assert |x| < 2^bits (a signed register of bits + 1 bits holds x)."""
    x = i64(x)
    if x.size and int(np.abs(x).max()) >= (1 << bits):
        raise AssertionError(f"{what}: |value| {int(np.abs(x).max())} exceeds the derived bound 2^{bits}")


def rshift_round(x, s) -> np.ndarray:
    """(x + 2^(s-1)) >> s for s > 0; x << -s for s < 0; s per element or scalar. A right
    shift beyond ``MAX_SHIFT`` is one of ``MAX_SHIFT`` (the same 0 for every |x| < 2^62)."""
    x, s = i64(x), i64(s)
    pos = np.minimum(np.maximum(s, 0), MAX_SHIFT)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    right = np.right_shift(x + half, pos)
    return np.where(s >= 0, right, np.left_shift(x, np.maximum(-s, 0)))


def saturate(x, bits: int) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    return np.clip(i64(x), -hi - 1, hi)


def bitlen(v) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0): the priority encoder of the
    leading-zero count, six compare-and-shift steps."""
    v = i64(v).copy()
    if v.size and int(v.min()) < 0:
        raise AssertionError("bitlen: negative value")
    n = np.zeros(v.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << s)
        n = n + np.where(big, s, 0)
        v = np.where(big, v >> s, v)
    return n + (v > 0)


def normalize(v, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """v > 0 -> (m, k) with m = v >> k (truncating; << -k when k < 0), 2^(bits-1) <= m < 2^bits."""
    v = i64(v)
    if v.size and int(v.min()) <= 0:
        raise AssertionError("normalize: expected positive values")
    k = bitlen(v) - bits
    m = np.where(k >= 0, np.right_shift(v, np.maximum(k, 0)), np.left_shift(v, np.maximum(-k, 0)))
    return m, k


def to_multiplier(real: float, bits: int) -> tuple[int, int]:
    """Host side, offline: real > 0 -> (M, e) with M = rint(real · 2^e), 2^(bits-1) <= M < 2^bits.

    The only float arithmetic of the contract; its result is a constant the hardware loads.
    """
    if not (math.isfinite(real) and real > 0):
        raise TritforgeError(f"multiplier {real!r}: expected a finite positive factor")
    mant, exp = math.frexp(real)               # real = mant · 2^exp, 0.5 <= mant < 1
    e = bits - exp
    M = int(round(mant * (1 << bits)))
    if M == 1 << bits:                          # rounded up to the next power of two
        M, e = M >> 1, e - 1
    return M, e


def scale_mul(m1, e1, m2, e2, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(m1 · 2^-e1) · (m2 · 2^-e2) as a normalized B-bit scale; m1 · m2 < 2^62 asserted
    (two B-bit mantissas: < 2^(2B))."""
    p = i64(m1) * i64(m2)
    check_bound(p, 62, "scale product")
    m, k = normalize(p, bits)
    return m, i64(e1) + i64(e2) - k


def quantize_int8(v, bits: int, in_bits: int = 39) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric int8 quantization of each vector along the last axis, the vector unit's way.

    v: integers with |v| < 2^in_bits (in_bits <= 39). Per vector:
        mu  = max |v|                          (a max tree)
        K   = bitlen(mu) + B
        R   = floor(127 · 2^K / mu)            (one integer division per vector: a
                                                sequential divider, one bit a cycle)
        x_q = clamp(rshift_round(v · R, K), -127, 127)
        step (m, e) = normalize(mu · M127) with (M127, e127) = to_multiplier(1/127, B):
              v ≈ x_q · m · 2^-e
    An all-zero vector gives x_q = 0 and the step 1 (m = 2^(B-1), e = B - 1).
    Returns (x_q (int64, -127..127), m, e), m and e of shape v.shape[:-1].
    """
    if in_bits > 39:
        raise AssertionError("quantize_int8: inputs wider than 39 bits overflow v · R")
    v = i64(v)
    check_bound(v, in_bits, "quantize_int8 input")
    mu = np.abs(v).max(axis=-1)
    zero = mu == 0
    mus = np.where(zero, 1, mu)
    K = bitlen(mus) + bits
    R = (np.int64(Q8) << K) // mus
    check_bound(R, 8 + bits, "reciprocal R")
    prod = v * R[..., None]
    check_bound(prod, 62, "v · R")
    xq = np.clip(rshift_round(prod, K[..., None]), -Q8, Q8)
    M127, e127 = to_multiplier(1 / Q8, bits)
    m, k = normalize(mus * M127, bits)
    e = e127 - k
    m = np.where(zero, 1 << (bits - 1), m)
    e = np.where(zero, bits - 1, e)
    return xq, m, e


def acc_preshift(acc_bound: int, bits: int) -> int:
    """a: right shift of the engine's accumulator before its B-bit multiply (see module doc)."""
    return max(0, int(acc_bound).bit_length() + bits - 62)


def requantize(A, a: int, m, e, out_frac: int, out_bits: int) -> np.ndarray:
    """Engine accumulators -> fixed point with ``out_frac`` fraction bits, ``out_bits`` wide.

    y = saturate(rshift_round(rshift_round(A, a) · m, e - a - out_frac), out_bits),
    the real value A · m · 2^-e in units of 2^-out_frac; m, e broadcast against A (per
    token and matrix: the token's activation step times the codebook's host_scale).
    """
    Ap = rshift_round(A, a)
    check_bound(Ap, 62 - int(np.max(bitlen(i64(m)))) if np.size(m) else 62, "pre-shifted accumulator")
    return saturate(rshift_round(Ap * i64(m), i64(e) - a - out_frac), out_bits)


def exact_matmul(a, b, bound: int) -> np.ndarray:
    """Integer a @ b (last axis of a with the second-last of b), exact.

    ``bound`` is a derived bound on every partial sum's magnitude (and on the operands);
    up to 2^24 the product is computed through float32 BLAS, up to 2^53 through float64
    (every partial sum is an integer the float type holds exactly, as in
    ``sim/fastmodel.py``), otherwise in int64. All three give the same integers; the
    choice is the simulation's speed, not part of the contract.
    """
    if bound >= (1 << 63):
        raise AssertionError(f"exact_matmul: bound {bound} exceeds int64")
    dt = np.float32 if bound <= (1 << 24) else np.float64 if bound < (1 << 53) else np.int64
    a, b = np.asarray(a), np.asarray(b)
    out = np.matmul(a if a.dtype == dt else a.astype(dt), b if b.dtype == dt else b.astype(dt))
    return out.astype(np.int64) if dt != np.int64 else out
