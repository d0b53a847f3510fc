"""Balanced-ternary quantization of one linear weight matrix (tritllm v2 compatible).

Published rule (Stentzel 2026, "tritllm v2"), followed by both modes:

* depth d in 1..4; levels q with |q| <= L = (3**d - 1) / 2; groups of G = 16 consecutive
  weights along ``in_features`` share one scale (the step: w ~= scale * q);
* per group, the four order statistics of |w| at sorted indices G-6, G-4, G-2, G-1 are
  tried as the group's outermost level (scale = that value / L); the one with the lowest
  squared reconstruction error is kept;
* scales are stored as an index into a per-matrix 27-entry log-spaced codebook whose top
  is the largest group magnitude of the matrix (``hi = max|w| / L``).

Choices the published material leaves open, made here for ``mode="tritllm-v2"``:

* codebook bottom ``lo``: the smallest non-zero chosen group scale of the matrix, but not
  below ``hi * 2**-15`` (``lo_floor``), so that every entry keeps a full 12-bit mantissa in
  the integer form (``codec.codebook``); groups below it snap to entry 0;
* snapping: nearest codebook entry in log space (``Codebook.snap``);
* q is re-rounded with the snapped scale: ``q = clip(rint(w / c_k), -L, L)``;
* all-zero groups (and groups whose chosen scale is 0) get index 0 and q = 0;
  an all-zero matrix gets the codebook lo = hi = 1;
* ``in_features`` not a multiple of 16: padded with zero weights, the padding recorded
  (``TritTensor.shape`` keeps the original shape, ``q`` holds the padded one);
* NaN or Inf weights are refused;
* inputs in bf16/fp16/fp32 are computed in fp32 (scales and codebook in fp64);
* codebook entries are the exact values of their integer form (``codec.codebook``).

``mode="tritforge"`` (the improved mode, same format and bpw) changes two things:

* codebook endpoints: ``hi`` is chosen among ``max|w|`` and the soft cap
  ``min(max|w|, 4 * p99.9(|w|))`` and ``lo`` among quantiles of the chosen group scales,
  by the squared error on a row sample;
* per group, after the codebook is fixed, the four entries around the group's ideal
  scale (floor - 1 .. floor + 2 in log position) are tried, and the lowest error wins.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codebook import SHIFT_LIMIT, Codebook
from ..errors import TritforgeError
from .layout import GROUP, max_level

MODES = ("tritllm-v2", "tritforge")
CANDIDATE_STATS = (GROUP - 6, GROUP - 4, GROUP - 2, GROUP - 1)
_CHUNK = 8192   # groups per chunk: keeps the temporaries in cache


@dataclass(frozen=True)
class TritTensor:
    """One quantized matrix: levels, scale indices, codebook."""

    q: np.ndarray            #: int8 (out, in_pad): levels, |q| <= L
    k: np.ndarray            #: uint8 (out, in_pad / 16): codebook indices
    codebook: Codebook
    depth: int
    shape: tuple[int, int]   #: original (out_features, in_features)
    mode: str = "tritllm-v2"
    #: uint8 (out, in_pad / 16) or None: each group's own depth 0..depth in a variable-depth
    #: matrix (``codec.mixeddepth``; ``depth`` is then the base depth D, and a group of
    #: depth k has levels that are multiples of 3**(D - k)); None: every group has ``depth``
    group_depth: np.ndarray | None = None

    @property
    def variable(self) -> bool:
        return self.group_depth is not None

    def depth_histogram(self) -> list[int]:
        """Groups per depth 0..depth (every group at ``depth`` in a uniform matrix)."""
        if self.group_depth is None:
            return [0] * self.depth + [int(self.k.size)]
        return np.bincount(self.group_depth.reshape(-1), minlength=self.depth + 1).tolist()

    @property
    def in_padded(self) -> int:
        return self.q.shape[1]

    @property
    def pad(self) -> int:
        return self.in_padded - self.shape[1]

    @property
    def groups(self) -> int:
        return self.k.shape[1]

    def group_scales(self) -> np.ndarray:
        return self.codebook.values[self.k]

    def dequantize(self, dtype=np.float32) -> np.ndarray:
        out, cols = self.q.shape
        s = self.group_scales().astype(np.float32)[..., None]
        w = (self.q.reshape(out, cols // GROUP, GROUP).astype(np.float32) * s)
        return w.reshape(out, cols)[:, : self.shape[1]].astype(dtype)


# --- building blocks -------------------------------------------------------------------

def _prepare(w, name: str) -> np.ndarray:
    """Check and convert a weight matrix to fp32 (out, in_pad/16, 16)."""
    if hasattr(w, "detach"):                       # torch tensor, any float dtype
        w = w.detach().float().cpu().numpy()
    w = np.asarray(w)
    if w.ndim != 2:
        raise TritforgeError(f"{name}: expected a 2-D weight matrix, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        raise TritforgeError(f"{name}: expected floating-point weights, got {w.dtype}")
    w = w.astype(np.float32, copy=False)
    if not np.isfinite(w).all():
        bad = int((~np.isfinite(w)).sum())
        raise TritforgeError(f"{name}: {bad} NaN/Inf weights; expected finite values")
    out, cols = w.shape
    if out == 0 or cols == 0:
        raise TritforgeError(f"{name}: empty matrix {w.shape}")
    pad = (-cols) % GROUP
    if pad:
        w = np.concatenate([w, np.zeros((out, pad), dtype=np.float32)], axis=1)
    return np.ascontiguousarray(w).reshape(out, -1, GROUP)


def _rounded_levels(w: np.ndarray, c: np.ndarray, L: int) -> np.ndarray:
    """clip(rint(w / c), -L, L) in float32; a zero or tiny step saturates to +-L (0/0 -> 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = w / c
    np.nan_to_num(t, copy=False, nan=0.0, posinf=float(L), neginf=float(-L))
    np.rint(t, out=t)
    np.clip(t, -L, L, out=t)
    return t


def _sq_error(w: np.ndarray, c: np.ndarray, L: int) -> np.ndarray:
    """Per-group squared error of w (n, 16) quantized with step c (n, 1)."""
    t = _rounded_levels(w, c, L)
    t *= c
    np.subtract(w, t, out=t)
    np.square(t, out=t)
    return t.sum(-1)


def _levels(w: np.ndarray, c: np.ndarray, L: int) -> np.ndarray:
    return _rounded_levels(w, c, L).astype(np.int8)


def group_scales(wg: np.ndarray, d: int, stats=CANDIDATE_STATS) -> np.ndarray:
    """The per-group scale chosen among the order-statistic candidates (fp32, (out, ng)).

    ``stats`` are indices into the sorted |w| of a group; v2 uses G-6, G-4, G-2, G-1.
    """
    L = max_level(d)
    flat = wg.reshape(-1, GROUP)
    best = np.empty(flat.shape[0], dtype=np.float32)
    for i in range(0, flat.shape[0], _CHUNK):
        w = flat[i:i + _CHUNK]
        srt = np.sort(np.abs(w), axis=-1)
        best_err = np.full(w.shape[0], np.inf, dtype=np.float32)
        bs = np.zeros(w.shape[0], dtype=np.float32)
        for j in stats:
            c = srt[:, j] / np.float32(L)
            e = _sq_error(w, c[:, None], L)
            better = e < best_err
            best_err = np.where(better, e, best_err)
            bs = np.where(better, c, bs)
        best[i:i + _CHUNK] = bs
    return best.reshape(wg.shape[:2])


def assign(wg: np.ndarray, scales: np.ndarray, cb: Codebook, d: int,
           search: tuple[int, ...] = (0,)) -> tuple[np.ndarray, np.ndarray, float]:
    """Codebook indices and levels for every group; returns (q, k, total squared error).

    ``search=(0,)`` snaps to the nearest entry; ``search=(-1, 0, 1, 2)`` tries those
    offsets around ``floor(position)`` and keeps the lowest-error entry.
    """
    L = max_level(d)
    vals = cb.values.astype(np.float32)
    flat = wg.reshape(-1, GROUP)
    s = scales.reshape(-1)
    q = np.empty(flat.shape, dtype=np.int8)
    k = np.empty(flat.shape[0], dtype=np.uint8)
    total = 0.0
    for i in range(0, flat.shape[0], _CHUNK):
        w, sc = flat[i:i + _CHUNK], s[i:i + _CHUNK]
        if search == (0,):
            kk = cb.snap(sc)
            kk[sc <= 0] = 0
        else:
            base = np.floor(cb.position(sc)).astype(np.int64)
            best_err = np.full(w.shape[0], np.inf, dtype=np.float32)
            kk = np.zeros(w.shape[0], dtype=np.uint8)
            for off in search:
                cand = np.clip(base + off, 0, 26).astype(np.uint8)
                e = _sq_error(w, vals[cand][:, None], L)
                better = e < best_err
                best_err = np.where(better, e, best_err)
                kk = np.where(better, cand, kk)
            kk[sc <= 0] = 0
        c = vals[kk][:, None]
        qq = _levels(w, c, L)
        qq[sc <= 0] = 0
        q[i:i + _CHUNK] = qq
        k[i:i + _CHUNK] = kk
        total += float(np.square(w - c * qq).sum(dtype=np.float64))
    return q.reshape(wg.shape[0], -1), k.reshape(wg.shape[:2]), total


def lo_floor(hi: float) -> float:
    """Smallest codebook bottom whose entries all keep a full mantissa: hi * 2**-S."""
    return hi * 2.0 ** -SHIFT_LIMIT


def _improved_codebook(wg: np.ndarray, scales: np.ndarray, d: int, hi_max: float) -> Codebook:
    """Endpoint search of the improved mode, scored on a row sample."""
    L = max_level(d)
    absw = np.abs(wg.reshape(-1))
    nz = scales[scales > 0]
    his = {hi_max, min(hi_max, 4.0 * float(np.quantile(absw, 0.999)) / L)}
    los = {float(nz.min())} | {float(np.quantile(nz, p)) for p in (0.001, 0.01, 0.03)}
    # float32 group scales can round just above the float64 top: clamp lo to hi
    los = {min(max(lo, lo_floor(hi_max)), hi_max) for lo in los}
    rows = wg.shape[0]
    pick = np.unique(np.linspace(0, rows - 1, min(rows, 128)).astype(np.int64))
    sample_w, sample_s = wg[pick], scales[pick]
    best, best_err = None, np.inf
    for hi in sorted(his):
        for lo in sorted(los):
            if not 0 < lo <= hi:
                continue
            cb = Codebook(lo, hi)
            err = assign(sample_w, sample_s, cb, d, search=(-1, 0, 1, 2))[2]
            if err < best_err:
                best, best_err = cb, err
    return best


def prepare(w, name: str = "matrix") -> tuple[np.ndarray, tuple[int, int]]:
    """Checked fp32 groups (out, in_pad/16, 16) and the original shape.

    Depth-independent: ``quantize_model`` prepares each matrix once for all depths.
    """
    wg = _prepare(w, name)
    return wg, (int(w.shape[0]), int(w.shape[1]))


def quantize_groups(wg: np.ndarray, shape: tuple[int, int], d: int,
                    mode: str = "tritllm-v2") -> TritTensor:
    """Quantize prepared groups (see :func:`prepare`) at depth d."""
    if mode not in MODES:
        raise TritforgeError(f"mode {mode!r}: expected one of {MODES}")
    L = max_level(d)
    top = float(np.abs(wg).max())
    if top == 0.0:
        q = np.zeros((wg.shape[0], wg.shape[1] * GROUP), dtype=np.int8)
        k = np.zeros(wg.shape[:2], dtype=np.uint8)
        return TritTensor(q, k, Codebook(1.0, 1.0), d, shape, mode)
    scales = group_scales(wg, d)
    hi = top / L
    if not (scales > 0).any():
        # every candidate's squared error underflowed in float32 (|w| ~ 1e-38, found by
        # hypothesis), so every group chose scale 0: take the top level for all groups (in
        # float64: the top level of a subnormal matrix, 1e-45 / L, is 0 in float32)
        scales = np.full(scales.shape, hi)
    if mode == "tritllm-v2":
        # min(.., hi): a float32 group scale can round just above the float64 top
        cb = Codebook(min(max(float(scales[scales > 0].min()), lo_floor(hi)), hi), hi)
        q, k, _ = assign(wg, scales, cb, d)
    else:
        cb = _improved_codebook(wg, scales, d, hi)
        q, k, _ = assign(wg, scales, cb, d, search=(-1, 0, 1, 2))
    return TritTensor(q, k, cb, d, shape, mode)


def quantize_matrix(w, d: int, mode: str = "tritllm-v2", name: str = "matrix") -> TritTensor:
    """Quantize one 2-D weight matrix (out_features, in_features) at depth d."""
    wg, shape = prepare(w, name)
    return quantize_groups(wg, shape, d, mode)


def weight_error(w, t: TritTensor) -> dict:
    """Relative MSE (sum err^2 / sum w^2) and SQNR in dB of a quantized matrix."""
    if hasattr(w, "detach"):
        w = w.detach().float().cpu().numpy()
    w = np.asarray(w, dtype=np.float32)
    err = float(np.square(w - t.dequantize()).sum(dtype=np.float64))
    ref = float(np.square(w).sum(dtype=np.float64))
    rel = err / ref if ref > 0 else 0.0
    return {"sq_err": err, "sq_ref": ref, "rel_mse": rel,
            "sqnr_db": float(-10 * np.log10(rel)) if rel > 0 else float("inf")}


def mode_codebook(wg: np.ndarray, d: int, mode: str = "tritforge") -> Codebook:
    """The codebook ``quantize_groups`` would choose for these groups in ``mode``.

    For the calibrated mode (``codec.calibrate``), which keeps a mode's codebook and changes
    only how each group's entry and levels are picked. Same rules as ``quantize_groups``:
    an all-zero matrix gets ``lo = hi = 1``; if every group's candidate error underflowed,
    every group takes the top scale.
    """
    if mode not in MODES:
        raise TritforgeError(f"mode {mode!r}: expected one of {MODES}")
    L = max_level(d)
    top = float(np.abs(wg).max())
    if top == 0.0:
        return Codebook(1.0, 1.0)
    scales = group_scales(wg, d)
    hi = top / L
    if not (scales > 0).any():
        scales = np.full_like(scales, hi)
    if mode == "tritllm-v2":
        return Codebook(min(max(float(scales[scales > 0].min()), lo_floor(hi)), hi), hi)
    return _improved_codebook(wg, scales, d, hi)
