"""The per-matrix 27-entry log-spaced scale codebook and its integer form.

Ideal entries are log-spaced from ``lo`` (k = 0) to ``hi`` (k = 26):
``c_k = lo * (hi / lo) ** (k / 26)``.

Integer form (the numeric contract, docs/NUMERIC.md). Every entry is written relative to the
top one as a normalized F-bit mantissa and a right shift::

    c_k / hi  ~=  m_k * 2**-(F-1) * 2**-e_k,     2**(F-1) <= m_k < 2**F,  0 <= e_k <= S

so every entry keeps F significant bits however many decades the codebook spans (a plain
fixed point ``round(c_k / hi * 2**F)`` would lose the small entries). The hardware
applies the shift exactly, as a *left* shift ``delta_k = E - e_k`` (E = max e_k) into a
wide accumulator, and the host multiplies by ``hi * 2**-(F-1) * 2**-E`` at the end.

Entries smaller than ``2**-S`` of the top cannot be normalized; they keep
``e_k = S`` and a smaller mantissa (fewer significant bits). With S = 15 that is a
codebook spanning more than 4.5 decades, which the quantizer avoids (see
``codec.quantize``).

The codec uses the integer form's *exact* values as its scales (``Codebook.values``), so
the dequantized weights, the golden reference and the RTL all mean the same numbers; the
only difference from the ideal log spacing is the mantissa rounding, at most 2**-F
relative (``Codebook.max_rel_error``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import TritforgeError
from .layout import CODEBOOK_SIZE

MANT_BITS = 12     #: F: mantissa bits of a codebook entry
SHIFT_LIMIT = 15   #: S: largest right shift e_k (4-bit shift field)
SHIFT_BITS = 4     #: width of the shift field in a codebook word

_TOP = CODEBOOK_SIZE - 1


@dataclass(frozen=True)
class Codebook:
    """One matrix's scale codebook (``lo`` <= ``hi``, both > 0)."""

    lo: float
    hi: float
    mant_bits: int = MANT_BITS
    shift_limit: int = SHIFT_LIMIT
    mantissa: np.ndarray = field(init=False, repr=False, compare=False)
    shift: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lo, hi = float(self.lo), float(self.hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
            raise TritforgeError(f"codebook endpoints lo={lo!r}, hi={hi!r}: expected 0 < lo <= hi")
        if not 2 <= self.mant_bits <= 24 or not 0 <= self.shift_limit < 2 ** SHIFT_BITS:
            raise TritforgeError(f"codebook mant_bits={self.mant_bits}, shift_limit="
                                 f"{self.shift_limit}: expected 2..24 and 0..{2**SHIFT_BITS - 1}")
        F, S = self.mant_bits, self.shift_limit
        ratio = self.ideal() / hi                         # (0, 1], ratio[26] == 1
        e = np.clip(np.ceil(-np.log2(ratio)).astype(np.int64), 0, S)
        m = np.rint(ratio * 2.0 ** (e + F - 1)).astype(np.int64)
        over = m >= 2 ** F                                # rounding up to 2**F: renormalize
        m = np.where(over & (e > 0), m // 2, m)
        e = np.where(over & (e > 0), e - 1, e)
        m = np.minimum(m, 2 ** F - 1)
        object.__setattr__(self, "mantissa", m)
        object.__setattr__(self, "shift", e)

    # --- float views ---------------------------------------------------------------------
    def ideal(self) -> np.ndarray:
        """The ideal log-spaced entries (float64, 27)."""
        k = np.arange(CODEBOOK_SIZE, dtype=np.float64)
        return self.lo * (self.hi / self.lo) ** (k / _TOP)

    @property
    def values(self) -> np.ndarray:
        """The entries the codec uses: exactly what the integer form represents."""
        return self.hi * self.mantissa * 2.0 ** (-(self.mant_bits - 1) - self.shift)

    @property
    def max_rel_error(self) -> float:
        """Largest relative difference between the integer form and the ideal entries."""
        return float(np.max(np.abs(self.values / self.ideal() - 1)))

    # --- integer view (hardware) ---------------------------------------------------------
    @property
    def max_shift(self) -> int:
        """E: the largest right shift; the hardware left-shifts entry k by E - e_k."""
        return int(self.shift.max())

    @property
    def left_shift(self) -> np.ndarray:
        return self.max_shift - self.shift

    @property
    def host_scale(self) -> float:
        """Float factor from the integer accumulator to weight units: hi * 2**-(F-1) * 2**-E."""
        return self.hi * 2.0 ** (-(self.mant_bits - 1) - self.max_shift)

    # --- snapping ------------------------------------------------------------------------
    def position(self, scale: np.ndarray) -> np.ndarray:
        """Continuous log-space position of ``scale`` on the codebook (0 = lo, 26 = hi)."""
        s = np.asarray(scale, dtype=np.float64)
        if self.hi == self.lo:
            return np.full(s.shape, float(_TOP))
        with np.errstate(divide="ignore"):
            u = np.log(np.maximum(s, 1e-300) / self.lo) / np.log(self.hi / self.lo) * _TOP
        return u

    def snap(self, scale: np.ndarray) -> np.ndarray:
        """Nearest entry in log space (uint8 indices 0..26); zero scales go to 0."""
        return np.clip(np.rint(self.position(scale)), 0, _TOP).astype(np.uint8)

    def to_meta(self) -> dict:
        return {"lo": float(self.lo).hex(), "hi": float(self.hi).hex(),
                "mant_bits": self.mant_bits, "shift_limit": self.shift_limit}

    @classmethod
    def from_meta(cls, meta: dict) -> "Codebook":
        try:
            return cls(float.fromhex(meta["lo"]), float.fromhex(meta["hi"]),
                       int(meta["mant_bits"]), int(meta["shift_limit"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TritforgeError(f"codebook metadata {meta!r}: {exc}") from None
