"""Integer rotary position embedding (RoPE) of the vector unit (docs/NUMERIC.md, "RoPE").

Tables: for position pos and frequency index i < head_dim / 2,

    cos_q[pos, i] = rint(cos(pos · inv_freq[i]) · a · 2^RF),   sin_q likewise

with ``inv_freq`` and the attention scaling ``a`` the model's rotary embedding (the
frequencies already include any "linear" or "llama3" rescaling), RF = rope_frac_bits.
The host computes the tables once, offline (max_context × head_dim / 2 entries each,
|entry| <= a · 2^RF); the hardware reads them by position.

Rotation, in the half-split pairing of the Hugging Face models (element i pairs with
i + head_dim / 2), on x with FR fraction bits:

    out[i]          = rshift_round(x[i] · c - x[i + h] · s, RF)
    out[i + h]      = rshift_round(x[i + h] · c + x[i] · s, RF)

Width: |x| < 2^XB, |c|, |s| <= a · 2^RF, so |x c ± x' s| <= 2 · 2^XB · a · 2^RF
(asserted < 2^62; 32-bit x and RF = 14 use 48 bits) and the result is at most
sqrt(2) · a · |x| (+ 1/2) < 2^(XB+1) for a <= 1, held in XB + 2 signed bits (saturated there;
the layer then saturates q and k to resid_bits).
"""
from __future__ import annotations

import numpy as np

from ..errors import TritforgeError
from .fixedpoint import check_bound, i64, rshift_round, saturate


def rope_tables(positions, inv_freq, frac_bits: int, scaling: float = 1.0,
                max_context: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Host side, offline: (cos_q, sin_q) of shape (len(positions), len(inv_freq)) int64."""
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size and (int(pos.min()) < 0 or (max_context is not None and int(pos.max()) >= max_context)):
        raise TritforgeError(f"RoPE: position {int(pos.max())} outside the table "
                             f"(max_context={max_context})")
    ang = pos[:, None].astype(np.float64) * np.asarray(inv_freq, dtype=np.float64)[None, :]
    c = np.rint(np.cos(ang) * scaling * 2.0 ** frac_bits).astype(np.int64)
    s = np.rint(np.sin(ang) * scaling * 2.0 ** frac_bits).astype(np.int64)
    return c, s


def apply_rope(x, cos_q, sin_q, frac_bits: int, x_bits: int) -> np.ndarray:
    """x (T, heads, head_dim) integers with |x| < 2^x_bits; tables (T, head_dim / 2)."""
    x = i64(x)
    h = x.shape[-1] // 2
    if x.shape[-1] % 2 or cos_q.shape[-1] != h:
        raise TritforgeError(f"RoPE: head_dim {x.shape[-1]} does not match a table of {cos_q.shape[-1]} "
                             "frequencies")
    check_bound(x, x_bits, "RoPE input")
    c, s = i64(cos_q)[:, None, :], i64(sin_q)[:, None, :]
    a, b = x[..., :h], x[..., h:]
    lo, hi = a * c - b * s, b * c + a * s
    check_bound(np.concatenate([lo, hi], -1), 62, "RoPE products")
    out = np.concatenate([rshift_round(lo, frac_bits), rshift_round(hi, frac_bits)], -1)
    return saturate(out, x_bits + 2)
