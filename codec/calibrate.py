"""The ``calibrated`` mode: error-compensated rounding on the balanced-ternary grid.

Same format, same bits per weight, same golden reference and hardware as the other modes:
the result is an ordinary ``TritTensor`` (levels |q| <= L, one 27-entry log codebook per
matrix, one codebook index per group of 16 weights along ``in_features``). What changes is
how the levels and the per-group indices are picked: by the output error on calibration
inputs instead of the weight error.

Method (GPTQ, Frantar et al. 2022, arXiv 2210.17323)
    A linear layer's output error on inputs X is ``||X W^T - X Wq^T||^2``; per row of W it is
    the quadratic form ``(w - wq) H (w - wq)^T`` with ``H = X^T X`` (section 3, the OBQ
    objective). Columns are quantized one at a time, and each column's rounding error is
    pushed onto the not yet quantized columns through the inverse Hessian so that they can
    absorb it (section 4, "Step 1: arbitrary order"). Two of the paper's reformulations
    make that fast and stable and are used as published:

    * lazy batch updates (section 4, "Step 2"): inside a block of ``BLOCK`` columns the
      updates touch only the block; the rest of the matrix is updated once per block with
      one matrix product ``W[:, i2:] -= Err @ U[i1:i2, i2:]``;
    * Cholesky reformulation (section 4, "Step 3"): the rows of H^-1 the algorithm needs
      are the rows of the upper Cholesky factor U of H^-1 (``H^-1 = U^T U``), so the
      error of column j is ``(w_j - wq_j) / U_jj`` and it moves column l > j by
      ``-err_j * U_jl``. H is dampened by a fraction of its mean diagonal first
      (section 4, "Step 3", 1 % in the paper).

    Every step is vectorized over the rows (torch); the only Python loop is over columns.

The trit grid
    The per-matrix codebook is chosen exactly as the ``tritforge`` mode (or, with
    ``codebook="tritllm-v2"``, the v2 mode) chooses it from the original weights
    (``codec.quantize.mode_codebook``). Groups run along ``in_features``, so when the
    column loop reaches a group's first column, the group's 16 compensated weights are
    known up to the error of their own group; the group's codebook index is picked then,
    as GPTQ picks its group parameters when it reaches a group (the reference
    implementation's ``groupsize`` branch), and it stays fixed while the 16 columns are
    rounded to the nearest of the 3**d levels ``c_k * q``, ``|q| <= L``:

    * candidates: the v2 scale of the compensated weights (best of the order statistics
      G-6, G-4, G-2, G-1, as ``codec.quantize.group_scales``) and the codebook entries
      floor - 1 .. floor + 2 around its log position (``CANDIDATE_OFFSETS``);
    * ``choice="hessian"`` (default): for every candidate the 16 columns are rounded with
      the in-group error compensation, and the candidate with the lowest GPTQ loss
      ``sum_j err_j^2 / U_jj^2`` wins per row; ``choice="plain"``: the lowest plain squared
      error of the compensated weights (``bench/bench_calibrate.py`` measures both).

Column order
    ``order="natural"`` runs the columns in index order. GPTQ's act-order (the reference
    implementation's ``actorder``: columns by decreasing diag(H)) would break the groups of
    16 the format needs, so ``order="act-groups"`` orders whole groups by the sum of their
    diag(H) and keeps each group's columns contiguous and in order; the levels and indices
    are put back in the natural order afterwards. The mode's default
    (``codec.calibration.CalibOptions``) is act-groups: on SmolLM2-135M at d = 2 it brings
    the held-out perplexity from 1.56x the source's to 1.31x (docs/CODEC.md).

Degenerate inputs (documented fallback, never NaN in the output)
    * a dead input channel (H_jj = 0: the input was always 0 on the calibration data, or a
      zero-padding column): its row and column of H are zeroed and H_jj is set to the mean
      live diagonal, so the column is rounded plainly and neither gives nor takes error;
    * non-finite entries of H (NaN/Inf activations): the channels involved are treated as
      dead;
    * a Hessian whose Cholesky factorization fails even dampened: the damping is raised
      tenfold up to ``_DAMP_RETRIES`` times, then H = identity (plain rounding with the same
      group choice);
    * an all-zero matrix: the other modes' result (codebook lo = hi = 1, q = 0).

Activations (H)
    ``codec.calibration`` captures ``H = X^T X / n`` of every linear layer from the
    floating-point model on calibration text, in one pass for all requested depths.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..errors import TritforgeError
from .layout import CODEBOOK_SIZE, GROUP, max_level
from .quantize import CANDIDATE_STATS, TritTensor, mode_codebook

MODE = "calibrated"
ORDERS = ("natural", "act-groups")
CHOICES = ("hessian", "plain")
CODEBOOKS = ("tritforge", "tritllm-v2")
CANDIDATE_OFFSETS = (-1, 0, 1, 2)     #: codebook entries tried around floor(position)
BLOCK = 128                           #: columns per lazy-batch block (a multiple of GROUP)
DEFAULT_DAMP = 0.01                   #: fraction of the mean diagonal of H added to it
_DAMP_RETRIES = 4
_TOP = CODEBOOK_SIZE - 1


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread inside: the column loop is many small operations, which
    intra-op threads only slow down (15x on a loaded 2-core machine, measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class HessianFactor:
    """A layer's H prepared for the column loop: upper Cholesky factor of H^-1 and the order.

    Depth-independent, so ``codec.modelquant`` builds it once per matrix for every depth.
    ``note`` records what the fallbacks did (dead channels, extra damping, identity).
    """

    def __init__(self, U, perm, note: dict):
        self.U = U              #: torch float32 (in_pad, in_pad), upper triangular
        self.perm = perm        #: None or int64 column permutation (whole groups)
        self.note = note


def hessian_factor(H, in_pad: int, damp: float = DEFAULT_DAMP,
                   order: str = "natural") -> HessianFactor:
    """Dampen, order and factor ``H`` (in, in) for a matrix padded to ``in_pad`` columns.

    ``H=None`` stands for the identity (every column rounded plainly).
    """
    with _one_thread():
        return _hessian_factor(H, in_pad, damp, order)


def _hessian_factor(H, in_pad: int, damp: float, order: str) -> HessianFactor:
    import torch

    if order not in ORDERS:
        raise TritforgeError(f"order {order!r}: expected one of {', '.join(ORDERS)}")
    if not (np.isfinite(damp) and damp >= 0):
        raise TritforgeError(f"damp {damp!r}: expected a finite fraction >= 0")
    if in_pad % GROUP:
        raise TritforgeError(f"in_pad {in_pad}: expected a multiple of {GROUP}")
    Hd = torch.zeros((in_pad, in_pad), dtype=torch.float64)
    if H is None:
        Hd.fill_diagonal_(1.0)
    else:
        H = torch.as_tensor(H).to(torch.float64)
        n = H.shape[0]
        if H.shape != (n, n) or n > in_pad:
            raise TritforgeError(f"Hessian of shape {tuple(H.shape)}: expected square, "
                                 f"at most {in_pad} wide")
        Hd[:n, :n] = H
    note = {"dead_channels": 0, "nonfinite_channels": 0, "damp": float(damp), "identity": False}
    bad = ~torch.isfinite(torch.diagonal(Hd))            # channels whose own energy is NaN/Inf
    Hd[bad, :] = 0.0
    Hd[:, bad] = 0.0
    rest = ~torch.isfinite(Hd).all(dim=1)                 # then any stray non-finite product
    Hd[rest, :] = 0.0
    Hd[:, rest] = 0.0
    note["nonfinite_channels"] = int((bad | rest).sum())
    diag = torch.diagonal(Hd)
    dead = diag <= 0
    real = in_pad if H is None else H.shape[0]           # the padding columns are dead too
    note["dead_channels"] = int((dead & ~bad & ~rest)[:real].sum())
    Hd[dead, :] = 0.0
    Hd[:, dead] = 0.0
    live = ~dead
    mean = float(diag[live].mean()) if bool(live.any()) else 1.0
    idx = torch.nonzero(dead).flatten()
    Hd[idx, idx] = mean

    perm = None
    if order == "act-groups":
        score = torch.diagonal(Hd).reshape(-1, GROUP).sum(1)
        gperm = torch.argsort(score, descending=True, stable=True)
        perm = (gperm[:, None] * GROUP + torch.arange(GROUP)[None, :]).reshape(-1)
        Hd = Hd[perm][:, perm]

    eye = torch.eye(in_pad, dtype=torch.float64)
    lam = damp * mean
    U = None
    for _ in range(_DAMP_RETRIES + 1):
        L, info = torch.linalg.cholesky_ex(Hd + lam * eye)
        if int(info) == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if int(info) == 0 and bool(torch.isfinite(U).all()):
                break
            U = None
        lam = max(lam * 10, mean * 1e-6)
        note["damp"] = lam / mean
    if U is None:                      # give up on H: plain rounding, same group choice
        U = eye.clone()
        note["identity"] = True
    return HessianFactor(U.to(torch.float32), perm, note)


# --- the column loop ---------------------------------------------------------------------

def _v2_scale(w, L: int):
    """Per-row v2 scale of a (rows, 16) block: best of the order statistics (float32)."""
    import torch

    srt = torch.sort(w.abs(), dim=-1).values
    best_err = torch.full(w.shape[:1], float("inf"))
    best = torch.zeros(w.shape[:1])
    for j in CANDIDATE_STATS:
        c = (srt[:, j] / L)[:, None]
        q = torch.nan_to_num(torch.round(w / c), nan=0.0, posinf=L, neginf=-L).clamp_(-L, L)
        e = (w - q * c).square_().sum(-1)
        better = e < best_err
        best_err = torch.where(better, e, best_err)
        best = torch.where(better, c[:, 0], best)
    return best


def _group_candidates(w, cb_lo: float, cb_hi: float, L: int):
    """Codebook indices (rows, C) around the v2 scale of the compensated block w (rows, 16)."""
    import torch

    s = _v2_scale(w, L).double()
    if cb_hi == cb_lo:
        pos = torch.full_like(s, float(_TOP))
    else:
        pos = torch.log(s.clamp_min(1e-300) / cb_lo) / np.log(cb_hi / cb_lo) * _TOP
    base = torch.floor(pos).to(torch.int64)
    offs = torch.tensor(CANDIDATE_OFFSETS, dtype=torch.int64)
    cand = (base[:, None] + offs[None, :]).clamp_(0, _TOP)
    cand[s <= 0] = 0                  # an all-zero block: entry 0, levels 0 below
    return cand


def _round_group(w, c, Ug, L: int):
    """Round a block w (..., rows, 16) with steps c (..., rows) column by column.

    Each column's error is pushed onto the later columns of the group through ``Ug``
    (the group's 16 x 16 block of U). Returns levels (float), scaled errors err_j / U_jj
    (the quantity the lazy batch update needs) and the GPTQ loss per row.
    """
    import torch

    w = w.clone()
    q = torch.empty_like(w)
    err = torch.empty_like(w)
    for j in range(GROUP):
        col = w[..., j]
        qj = torch.round(col / c).clamp_(-L, L)
        e = (col - qj * c) / Ug[j, j]
        q[..., j] = qj
        err[..., j] = e
        if j + 1 < GROUP:
            w[..., j + 1:] -= e[..., None] * Ug[j, j + 1:]
    return q, err, err.square().sum(-1)


def quantize_calibrated(wg: np.ndarray, shape: tuple[int, int], d: int, factor: HessianFactor,
                        codebook: str = "tritforge", choice: str = "hessian") -> TritTensor:
    """Quantize prepared groups (``codec.quantize.prepare``) at depth d with H's factor."""
    with _one_thread():
        return _quantize_calibrated(wg, shape, d, factor, codebook, choice)


def _quantize_calibrated(wg: np.ndarray, shape: tuple[int, int], d: int, factor: HessianFactor,
                         codebook: str, choice: str) -> TritTensor:
    import torch

    if choice not in CHOICES:
        raise TritforgeError(f"choice {choice!r}: expected one of {', '.join(CHOICES)}")
    if codebook not in CODEBOOKS:
        raise TritforgeError(f"codebook {codebook!r}: expected one of {', '.join(CODEBOOKS)}")
    L = max_level(d)
    rows, ng = wg.shape[:2]
    cols = ng * GROUP
    if tuple(factor.U.shape) != (cols, cols):
        raise TritforgeError(f"Hessian factor {tuple(factor.U.shape)} for a matrix with "
                             f"{cols} padded columns")
    cb = mode_codebook(wg, d, codebook)
    if float(np.abs(wg).max()) == 0.0:
        return TritTensor(np.zeros((rows, cols), np.int8), np.zeros((rows, ng), np.uint8),
                          cb, d, shape, MODE)
    vals = torch.from_numpy(cb.values.astype(np.float32))
    W = torch.from_numpy(wg.reshape(rows, cols)).clone()
    U = factor.U
    if factor.perm is not None:
        W = W[:, factor.perm]
    Q = torch.empty((rows, cols), dtype=torch.int8)
    K = torch.empty((rows, ng), dtype=torch.uint8)
    ar = torch.arange(rows)
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.empty_like(W1)
        for g0 in range(0, i2 - i1, GROUP):
            g1 = g0 + GROUP
            a, b = i1 + g0, i1 + g1
            wblk = W1[:, g0:g1]
            Ug = U[a:b, a:b]
            cand = _group_candidates(wblk, cb.lo, cb.hi, L)           # (rows, C)
            if choice == "plain":
                c = vals[cand]                                          # (rows, C)
                wq = wblk[:, None, :]
                qq = torch.round(wq / c[..., None]).clamp_(-L, L)
                e = (wq - qq * c[..., None]).square_().sum(-1)
                pick = cand[ar, torch.argmin(e, dim=1)]
                q, err, _ = _round_group(wblk, vals[pick], Ug, L)
            else:
                c = vals[cand].T.contiguous()                           # (C, rows)
                qc, errc, loss = _round_group(wblk.expand(c.shape[0], -1, -1), c, Ug, L)
                best = torch.argmin(loss, dim=0)                        # (rows,)
                pick = cand[ar, best]
                q, err = qc[best, ar], errc[best, ar]
            zero = wblk.abs().amax(-1) == 0
            if bool(zero.any()):       # nothing left to represent: index 0, levels 0
                pick = torch.where(zero, torch.zeros_like(pick), pick)
                q[zero] = 0.0
                err[zero] = wblk[zero] / torch.diagonal(Ug)
            Q[:, a:b] = q.to(torch.int8)
            K[:, a // GROUP] = pick.to(torch.uint8)
            Err1[:, g0:g1] = err
            if g1 < i2 - i1:
                W1[:, g1:] -= err @ U[a:b, b:i2]
        if i2 < cols:
            W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    if factor.perm is not None:
        inv = torch.argsort(factor.perm)
        Q = Q[:, inv]
        K = K[:, torch.argsort(factor.perm[::GROUP] // GROUP)]
    q = Q.numpy()
    q[:, shape[1]:] = 0               # zero padding stays zero
    return TritTensor(np.ascontiguousarray(q), np.ascontiguousarray(K.numpy()), cb, d, shape, MODE)
