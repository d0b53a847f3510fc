"""Variable depth per group: the mixed configurations and how they choose each group's depth.

A mixed configuration has a base depth D. Each matrix gets the codebook the uniform-dD
configuration of the same mode would give it (``codec.quantize.mode_codebook``), and each
group of 16 weights gets a depth k of its own, one of ``layout.var_depths(D)`` = D-2, D-1,
D (those >= 0), with its own codebook index chosen for that depth. A group of depth k has
levels ``q = 3**(D-k) * l`` with ``|l| <= (3**k - 1) / 2``: the top k trit planes of a
depth-D number, its step ``3**(D-k) * c_idx``. So the codebook, the levels, the golden
arithmetic and the dequantized weights ``q * c_idx`` are those of depth D, and the file
stream leaves the zero low planes out (``codec.layout``, variable-depth group).

Per group and depth k (``depth_candidates``):

* the step's ideal value is the v2 rule's scale for L_k = (3**k - 1) / 2 (the best of the
  order statistics G-6, G-4, G-2, G-1 of |w| as the outermost level,
  ``codec.quantize.group_scales``); divided by 3**(D-k) it is placed on the codebook;
* ``tritllm-v2`` mode snaps it to the nearest entry; ``tritforge`` mode tries the entries
  floor - 1 .. floor + 2 of its log position and keeps the one with the lowest error;
* the levels round to nearest, ``l = clip(rint(w / step), -L_k, L_k)``;
* the error is sensitivity-weighted, ``err_k = sum_j h_j (w_j - q_j c)**2``, with h the
  error weight of each weight: by default (``tritforge quantize --sensitivity fisher``)
  the empirical Fisher diagonal of the loss on the calibration text
  (``codec.calibration.weight_fisher``: mean squared gradient over 20 sequences of 128
  tokens), so err approximates twice the loss the group's rounding adds, comparable
  across matrices; ``diag-h``: h_j the activation energy of input channel j, ``diag(H)``
  (``codec.calibration.input_energy``), the group's share of its layer's mean squared
  output error; ``weight``: h = 1, the plain weight error (also without calibration
  text). Measured on SmolLM2-135M at 4.08 bpw (docs/CODEC.md): Fisher 33.6, diag(H) 37.0,
  plain 43.6 held-out perplexity;
* depth 0 (D = 2 only): all levels 0, index 0, ``err_0 = sum_j h_j w_j**2``.

Every group costs a 4-trit header (depth trit + index) plus 16 trits per plane, so the
choice is between ``err_k + lambda * 16 k`` (the header is the same at every depth).

Rules (the configuration names, ``parse_mixed``):

* ``mixed-d<D>-bpw<B>``: rate-distortion over the whole model. Every group takes the depth
  minimising ``err_k + lambda * 16 k`` (ties to the shallower depth), with one lambda for
  all groups of all matrices; lambda is the smallest value (found by bisection on
  log lambda, 100 steps) at which the packed streams of all quantized matrices take at
  most B bits per weight (bytes * 8 / weights, as ``physical_bpw``). A target at or above
  the all-depth-D size gives every group depth D; a target below the all-shallowest size
  is refused. Each group's depth falls monotonically as lambda rises (the cost grows with
  k), so a lower target never deepens a group.
* ``d<D>scale-sens<digits>``: a threshold per group. ``tau`` is the digits read as a
  decimal fraction (``sens002`` -> 0.002, ``sens02`` -> 0.02, ``sens1`` -> 0.1); a group
  takes the shallowest depth k with ``err_k - err_D <= tau * E`` where
  ``E = sum_j h_j w_j**2`` is the group's own weighted energy: the error a group may gain
  by dropping planes is tau of its energy. (An all-zero group takes the shallowest depth.)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from . import layout
from .codebook import Codebook
from ..errors import TritforgeError
from .layout import GROUP
from .quantize import _rounded_levels, group_scales

RULES = ("bpw", "sens")
_CHUNK = 8192
_BISECT_STEPS = 100
_MIXED = re.compile(r"mixed-d([1-4])-bpw(\d+(?:\.\d+)?)")
_SENS = re.compile(r"d([1-4])scale-sens(\d+)")


@dataclass(frozen=True)
class MixedConfig:
    """A mixed configuration: base depth and the rule that chooses each group's depth."""

    name: str
    base: int
    rule: str        #: "bpw": target bits per weight; "sens": threshold tau
    value: float

    def describe(self) -> dict:
        return {"base_depth": self.base, "rule": self.rule,
                ("target_bpw" if self.rule == "bpw" else "tau"): self.value,
                "group_depths": list(layout.var_depths(self.base))}


def min_bpw(base: int) -> float:
    """Bits per weight of a stream whose groups all take the shallowest depth (no padding)."""
    return layout.var_group_trits(min(layout.var_depths(base))) * 8 / (layout.TRITS_PER_BYTE * GROUP)


def parse_mixed(name: str) -> MixedConfig | None:
    """A mixed configuration's name -> :class:`MixedConfig`; None if it names no mixed rule."""
    m = _MIXED.fullmatch(name)
    if m:
        base, bpw = int(m.group(1)), float(m.group(2))
        if bpw < min_bpw(base):
            raise TritforgeError(f"config {name!r}: target {bpw} bpw is below the {min_bpw(base):.3f} "
                                 f"bpw of base depth {base}'s shallowest groups")
        return MixedConfig(name, base, "bpw", bpw)
    m = _SENS.fullmatch(name)
    if m:
        return MixedConfig(name, int(m.group(1)), "sens", float("0." + m.group(2)))
    return None


# --- per matrix: errors and indices at every depth --------------------------------------

def _fit(w, hw, ideal, k, base, vals, cb: Codebook, search) -> tuple[np.ndarray, np.ndarray]:
    """Weighted error and codebook index of groups w (n, 16) at depth k >= 1."""
    L = layout.max_level(k)
    mult = np.float32(3 ** (base - k))
    pos = cb.position(ideal / mult)
    if search == (0,):
        cands = [np.clip(np.rint(pos), 0, layout.CODEBOOK_SIZE - 1).astype(np.int64)]
    else:
        fl = np.floor(pos).astype(np.int64)
        cands = [np.clip(fl + off, 0, layout.CODEBOOK_SIZE - 1) for off in search]
    best_err = np.full(w.shape[0], np.inf)
    best = np.zeros(w.shape[0], dtype=np.uint8)
    for cand in cands:
        step = (vals[cand] * mult)[:, None]
        r = _rounded_levels(w, step, L)
        r *= step
        np.subtract(w, r, out=r)
        np.square(r, out=r)
        e = (r * hw).sum(-1, dtype=np.float64)
        better = e < best_err
        best_err = np.where(better, e, best_err)
        best = np.where(better, cand, best).astype(np.uint8)
    return best_err, best


def weight_sensitivity(h, rows: int, in_padded: int) -> np.ndarray:
    """Per-weight sensitivity (rows, in_padded) float32 with zero padding: from ``h`` (in,)
    per input channel (diag(H)), (rows, in) per weight (a Fisher diagonal), or None (ones).
    Non-finite and negative values count as 0."""
    if h is None:
        return np.ones((rows, in_padded), dtype=np.float32)
    h = np.asarray(h, dtype=np.float32)
    h = np.where(np.isfinite(h) & (h > 0), h, 0.0).astype(np.float32)
    if h.ndim == 1:
        h = np.broadcast_to(h, (rows, h.size))
    if h.ndim != 2 or h.shape[0] != rows or h.shape[1] > in_padded:
        raise TritforgeError(f"sensitivities of shape {h.shape}, the matrix has {rows} rows "
                             f"and {in_padded} padded columns")
    return np.concatenate([h, np.zeros((rows, in_padded - h.shape[1]), np.float32)], axis=1)


def depth_candidates(wg: np.ndarray, cb: Codebook, base: int, h=None,
                     search: tuple[int, ...] = (-1, 0, 1, 2)):
    """Per group and allowed depth (``layout.var_depths(base)``, ascending): the weighted
    error (float64 (n, nd)) and codebook index (uint8 (n, nd)), and the group's weighted
    energy (float64 (n,)); wg (out, ng, 16) prepared groups, h per-column sensitivities."""
    depths = layout.var_depths(base)
    rows, ng, _ = wg.shape
    flat = wg.reshape(-1, GROUP)
    hflat = weight_sensitivity(h, rows, ng * GROUP).reshape(-1, GROUP)
    n = flat.shape[0]
    errs = np.empty((n, len(depths)), dtype=np.float64)
    idx = np.zeros((n, len(depths)), dtype=np.uint8)
    energy = np.empty(n, dtype=np.float64)
    vals = cb.values.astype(np.float32)
    ideal = {k: group_scales(wg, k).reshape(-1) for k in depths if k > 0}
    for i in range(0, n, _CHUNK):
        w, hw = flat[i:i + _CHUNK], hflat[i:i + _CHUNK]
        energy[i:i + _CHUNK] = (np.square(w) * hw).sum(-1, dtype=np.float64)
        for j, k in enumerate(depths):
            if k == 0:
                errs[i:i + _CHUNK, j] = energy[i:i + _CHUNK]
            else:
                errs[i:i + _CHUNK, j], idx[i:i + _CHUNK, j] = _fit(
                    w, hw, ideal[k][i:i + _CHUNK], k, base, vals, cb, search)
    return errs, idx, energy


def levels_for(wg: np.ndarray, cb: Codebook, base: int, gd: np.ndarray, k_idx: np.ndarray) -> np.ndarray:
    """Depth-D levels (out, in_pad) int8 of groups with depths ``gd`` and indices ``k_idx``."""
    flat = wg.reshape(-1, GROUP)
    d = gd.reshape(-1).astype(np.int64)
    kk = k_idx.reshape(-1)
    q = np.zeros(flat.shape, dtype=np.int8)
    vals = cb.values.astype(np.float32)
    for k in np.unique(d):
        if k == 0:
            continue
        sel = np.flatnonzero(d == k)
        mult = 3 ** (base - int(k))
        step = (vals[kk[sel]] * np.float32(mult))[:, None]
        q[sel] = (_rounded_levels(flat[sel], step, layout.max_level(int(k))) * mult).astype(np.int8)
    return q.reshape(wg.shape[0], -1)


# --- over the whole model: the depth of every group ------------------------------------

def choose(errs: np.ndarray, base: int, lam: float) -> np.ndarray:
    """Column (into ``layout.var_depths(base)``) minimising ``err_k + lam * 16 k`` per row;
    ties go to the shallower depth."""
    cost = np.array(layout.var_depths(base), dtype=np.float64) * GROUP
    return np.argmin(errs + lam * cost, axis=1).astype(np.uint8)


def stream_bytes(columns: np.ndarray, base: int, bounds: np.ndarray) -> int:
    """Packed bytes of every matrix's stream for the chosen columns (``bounds``: the first
    group of each matrix in the concatenated rows)."""
    depths = np.array(layout.var_depths(base), dtype=np.int64)
    trits = layout.VAR_HEADER_TRITS + GROUP * depths[columns]
    per = np.add.reduceat(trits, bounds) if trits.size else np.zeros(0, np.int64)
    return int((-(-per // layout.TRITS_PER_BYTE)).sum())


def lambda_for_bpw(errs: np.ndarray, base: int, bounds: np.ndarray, weights: int,
                   target: float) -> tuple[float, np.ndarray]:
    """The smallest lambda (geometric bisection) whose choice packs into at most ``target``
    bits per weight, and that choice."""
    def bpw(cols):
        return stream_bytes(cols, base, bounds) * 8 / weights

    cols = choose(errs, base, 0.0)
    if bpw(cols) <= target:
        return 0.0, cols
    hi = float(errs.max()) / GROUP + 1.0          # every group at the shallowest depth
    top = choose(errs, base, hi)
    if bpw(top) > target:
        raise TritforgeError(f"target {target} bpw: below the {bpw(top):.4f} bpw of every group "
                             f"at the shallowest depth of base {base} (padding included)")
    lo = hi * 1e-30
    for _ in range(_BISECT_STEPS):
        mid = math.sqrt(lo * hi)
        if bpw(choose(errs, base, mid)) <= target:
            hi = mid
        else:
            lo = mid
    return hi, choose(errs, base, hi)


def choose_by_threshold(errs: np.ndarray, energy: np.ndarray, tau: float) -> np.ndarray:
    """The shallowest column with ``err_k - err_D <= tau * E`` per row."""
    ok = errs - errs[:, -1:] <= tau * energy[:, None]
    return np.argmax(ok, axis=1).astype(np.uint8)
