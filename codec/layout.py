"""Every bit layout of tritforge, in one place.

Nothing else in the project (codec, RTL, cycle model, testbenches) packs or unpacks trits
on its own: they call these functions or read these constants.

Trits and bytes
    A trit t is in {-1, 0, +1}. Five trits t0..t4 make one byte
    ``b = sum((t_m + 1) * 3**m)`` (base 243, ``0 <= b <= 242``); bytes 243..255 are invalid.
    A trit costs 8/5 = 1.6 bits against log2(3) = 1.585 bits of information (+0.95 %).

Numbers as trits
    A weight level q with |q| <= L = (3**d - 1) / 2 is written as d balanced-ternary
    digits, least significant first: ``q = sum(t_i * 3**i)``.
    A codebook index k in 0..26 is written as the three balanced digits of ``k - 13``.

One group (16 weights along ``in_features`` and their shared scale) = 16*d + 3 trits:
    ``[s0, s1, s2, w0.t0, w0.t1, .., w0.t(d-1), w1.t0, .., w15.t(d-1)]``
    (scale trits first, then weight by weight, each weight's digits least significant first).

File stream (the packed file, ``codec.packfile``)
    The groups of a matrix in row-major order ``(row, group)`` over the zero-padded
    ``in_features``, their trits concatenated and packed five per byte; the last byte is
    padded with zero trits. Dense: 5 groups take exactly 16*d + 3 bytes.

Hardware stream (what ``hw`` consumes, and the cycle model with it)
    Rows are taken in tiles of R (the last tile padded with zero groups: index 0, q = 0).
    For each tile, for each group column g, one *beat* carries the R groups
    ``(tile*R + r, g)`` for r = 0..R-1, their trits concatenated in that order and packed
    five per byte, the beat padded with zero trits to ``beat_bytes = ceil(R*(16d+3)/5)``.
    For d = 2 (35 trits a group) and for R a multiple of 5 no padding is needed.

Variable-depth group (a matrix of base depth D whose groups have depths k of their own)
    ``4 + 16*k`` trits: ``[f, s0, s1, s2, P(D-1), P(D-2), .., P(D-k)]``.
    ``f`` is the depth trit, ``k = D - 1 + f`` (so k is one of D-2, D-1, D; k < 0, possible
    only at D = 1, is invalid); ``s0..s2`` the codebook index as in a uniform group (0 in a
    depth-0 group: anything else is invalid); ``P(i)`` the 16 trits of digit plane i of the
    group's depth-D levels, weight 0 first, the most significant plane first. A group of
    depth k stores only the top k planes: its levels are multiples of ``3**(D-k)`` and its
    low ``D - k`` planes, all zero, are left out. The codebook, the levels and hence the
    arithmetic are those of depth D; a shallower group is a prefix of the full one.
    The trit count of a group is ``4 + 16*k = 4 (mod 16)``, so every group starts at a
    trit offset that is a multiple of 4 (what :func:`unpack_var_matrix` uses to find the
    group starts without a sequential scan).

Variable-depth file stream
    The variable-depth groups of a matrix in row-major order ``(row, group)``, concatenated
    and packed five trits per byte, the last byte padded with zero trits. The stream's trit
    count ``sum(4 + 16*k)`` is recorded in the matrix's metadata entry (``codec.packfile``);
    a reader refuses a stream whose groups run past it or end before it.

Variable-depth hardware stream (what the variable-depth engine consumes, hw/ENGINE.md
"Variable-depth stream")
    Rows in tiles of R as in the uniform hardware stream (padded rows: the shallowest depth
    of ``var_depths(D)``, index 0, levels 0). For each tile, for each group column g, one
    *column*: the R groups' 4-trit headers ``[f, s0, s1, s2]`` in row order, then row by
    row its ``k_r`` planes (top plane first, 16 trits each, weight 0 first); its
    ``4R + 16*sum(k_r)`` trits packed five per byte and padded with zero trits to whole
    bytes, so every column starts on a byte and its length in bytes,
    ``ceil((4R + 16*sum(k_r)) / 5)``, follows from its header trits, which sit in its first
    ``ceil(4R / 5)`` bytes. Columns follow each other tile-major, then group column, with
    no gap: the stream's bytes fall with the average depth.

Activation stream: one beat = one group of 16 int8 activations, lane j in bits 8j..8j+7.

Codebook entry word: mantissa m in bits 0..F-1, left shift in bits F..F+shift_width-1.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TritforgeError

GROUP = 16                #: weights per group (one scale each)
SCALE_TRITS = 3           #: trits of one codebook index
CODEBOOK_SIZE = 27        #: 3**SCALE_TRITS entries
SCALE_OFFSET = 13         #: codebook index k is stored as the balanced number k - 13
TRITS_PER_BYTE = 5
BYTE_LIMIT = 243          #: 3**5; bytes >= this are invalid in a trit stream
#: byte 121 = 1 + 3 + 9 + 27 + 81: all five trits zero (what an invalid byte decodes as)
ZERO_BYTE = sum(3 ** m for m in range(TRITS_PER_BYTE))
#: bits of one activation group word: 16 int8 lanes, lane j in bits 8j..8j+7
ACT_WORD_BITS = GROUP * 8
DEPTHS = (1, 2, 3, 4)
DEPTH_TRITS = 1           #: trits of a variable-depth group's depth field
#: trits of a variable-depth group's header (depth trit + codebook index)
VAR_HEADER_TRITS = DEPTH_TRITS + SCALE_TRITS

_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.int32)
# _BYTE_TRITS[b] = the five trits of byte b (rows 243..255 unused).
_BYTE_TRITS = np.zeros((256, TRITS_PER_BYTE), dtype=np.int8)
for _b in range(BYTE_LIMIT):
    _v = _b
    for _m in range(TRITS_PER_BYTE):
        _BYTE_TRITS[_b, _m] = _v % 3 - 1
        _v //= 3


def check_depth(d: int) -> int:
    if d not in DEPTHS:
        raise TritforgeError(f"depth d={d!r}: expected one of {DEPTHS}")
    return d


def max_level(d: int) -> int:
    """L = (3**d - 1) / 2: the largest |q| that d balanced trits can hold."""
    return (3 ** check_depth(d) - 1) // 2


def group_trits(d: int) -> int:
    """Trits of one group: 16 weights of d digits and one 3-trit scale index."""
    return GROUP * check_depth(d) + SCALE_TRITS


def info_bpw(d: int) -> float:
    """Information bits per weight: (d + 3/16) * log2(3)."""
    return group_trits(d) / GROUP * math.log2(3)


def packed_bytes(n_trits: int) -> int:
    return -(-n_trits // TRITS_PER_BYTE)


# --- numbers <-> trits -----------------------------------------------------------------

def to_trits(values: np.ndarray, n: int) -> np.ndarray:
    """Balanced-ternary digits of integer ``values`` (any shape), least significant first.

    Returns int8 of shape ``values.shape + (n,)``. Values must satisfy
    ``|v| <= (3**n - 1) / 2``.
    """
    v = np.asarray(values, dtype=np.int32).copy()
    lim = (3 ** n - 1) // 2
    if v.size and (v.max() > lim or v.min() < -lim):
        raise TritforgeError(f"value out of range for {n} balanced trits (|v| <= {lim})")
    out = np.empty(v.shape + (n,), dtype=np.int8)
    for i in range(n):
        r = (v + 1) % 3 - 1
        out[..., i] = r
        v = (v - r) // 3
    return out


def from_trits(trits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_trits` over the last axis."""
    t = np.asarray(trits, dtype=np.int32)
    w = 3 ** np.arange(t.shape[-1], dtype=np.int32)
    return t @ w


# --- trits <-> bytes -------------------------------------------------------------------

def pack_trits(trits: np.ndarray) -> np.ndarray:
    """Pack a flat trit sequence five per byte (zero trits pad the last byte)."""
    t = np.asarray(trits, dtype=np.int8).reshape(-1)
    pad = (-t.size) % TRITS_PER_BYTE
    if pad:
        t = np.concatenate([t, np.zeros(pad, dtype=np.int8)])
    t = t.reshape(-1, TRITS_PER_BYTE).astype(np.int32) + 1
    return (t @ _POW3).astype(np.uint8)


def unpack_trits(data: np.ndarray, n_trits: int, what: str = "trit stream") -> np.ndarray:
    """Unpack ``n_trits`` trits from packed bytes; rejects bytes >= 243 and short input."""
    b = np.asarray(data, dtype=np.uint8).reshape(-1)
    need = packed_bytes(n_trits)
    if b.size != need:
        raise TritforgeError(f"{what}: {b.size} bytes, expected {need} for {n_trits} trits")
    bad = np.flatnonzero(b >= BYTE_LIMIT)
    if bad.size:
        raise TritforgeError(
            f"{what}: byte {int(b[bad[0]])} at offset {int(bad[0])} is not a trit byte "
            f"(expected 0..{BYTE_LIMIT - 1}); {bad.size} such bytes")
    return _BYTE_TRITS[b].reshape(-1)[:n_trits]


def byte_trits(byte: int) -> tuple[int, ...]:
    """The five trits of one byte (for decoder models and tests); byte must be < 243."""
    if not 0 <= byte < BYTE_LIMIT:
        raise TritforgeError(f"byte {byte}: expected 0..{BYTE_LIMIT - 1}")
    return tuple(int(x) for x in _BYTE_TRITS[byte])


# --- groups ----------------------------------------------------------------------------

def encode_groups(q: np.ndarray, k: np.ndarray, d: int) -> np.ndarray:
    """Group trits: q (..., 16) levels and k (...) codebook indices -> (..., 16*d+3) trits."""
    q = np.asarray(q)
    k = np.asarray(k)
    if q.shape[-1] != GROUP or q.shape[:-1] != k.shape:
        raise TritforgeError(f"groups: q shape {q.shape} and k shape {k.shape} do not match")
    if k.size and (k.min() < 0 or k.max() >= CODEBOOK_SIZE):
        raise TritforgeError(f"codebook index out of 0..{CODEBOOK_SIZE - 1}")
    st = to_trits(k.astype(np.int32) - SCALE_OFFSET, SCALE_TRITS)
    wt = to_trits(q, check_depth(d)).reshape(q.shape[:-1] + (GROUP * d,))
    return np.concatenate([st, wt], axis=-1)


def decode_groups(trits: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_groups`: (..., 16*d+3) trits -> q (..., 16) int8, k (...) uint8."""
    t = np.asarray(trits)
    if t.shape[-1] != group_trits(d):
        raise TritforgeError(f"groups: last axis {t.shape[-1]}, expected {group_trits(d)}")
    k = (from_trits(t[..., :SCALE_TRITS]) + SCALE_OFFSET).astype(np.uint8)
    q = from_trits(t[..., SCALE_TRITS:].reshape(t.shape[:-1] + (GROUP, d))).astype(np.int8)
    return q, k


# --- file stream -----------------------------------------------------------------------

def pack_matrix(q: np.ndarray, k: np.ndarray, d: int) -> np.ndarray:
    """File stream of a matrix: q (rows, in_pad) levels, k (rows, in_pad/16) indices."""
    rows, cols = q.shape
    if cols % GROUP:
        raise TritforgeError(f"matrix columns {cols}: expected a multiple of {GROUP}")
    return pack_trits(encode_groups(q.reshape(rows, cols // GROUP, GROUP), k, d))


def unpack_matrix(data: np.ndarray, rows: int, cols: int, d: int,
                  what: str = "packed matrix") -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_matrix`; checks size and trit bytes."""
    ng = cols // GROUP
    t = unpack_trits(data, rows * ng * group_trits(d), what)
    q, k = decode_groups(t.reshape(rows, ng, group_trits(d)), d)
    return q.reshape(rows, cols), k


# --- variable-depth groups and their file stream -----------------------------------------

def var_depths(base: int) -> tuple[int, ...]:
    """The group depths a variable-depth matrix of base depth D can hold: D-2, D-1, D (>= 0)."""
    check_depth(base)
    return tuple(k for k in (base - 2, base - 1, base) if k >= 0)


def var_group_trits(k):
    """Trits of a variable-depth group of depth k (scalar or array): 4 + 16*k."""
    return VAR_HEADER_TRITS + GROUP * k


def var_stream_trits(group_depth: np.ndarray) -> int:
    """Trits of the variable-depth file stream of a matrix with these group depths."""
    gd = np.asarray(group_depth, dtype=np.int64)
    return int(gd.size * VAR_HEADER_TRITS + GROUP * gd.sum())


def _check_var(q: np.ndarray, k: np.ndarray, gd: np.ndarray, base: int) -> None:
    allowed = var_depths(base)
    if gd.shape != k.shape:
        raise TritforgeError(f"group depths shape {gd.shape} does not match the indices' {k.shape}")
    if gd.size and not np.isin(gd, allowed).all():
        raise TritforgeError(f"group depths {sorted(set(np.unique(gd).tolist()) - set(allowed))}: "
                             f"expected {allowed} at base depth {base}")
    step = 3 ** (base - gd.astype(np.int64))[..., None]
    qg = q.reshape(gd.shape + (GROUP,)).astype(np.int64)
    if (qg % step).any() or (np.abs(qg) > max_level(base)).any():
        raise TritforgeError("variable-depth levels: a group's levels are not multiples of "
                             "3**(D - k) within the depth-D range")
    if ((gd == 0) & (k != 0)).any():
        raise TritforgeError("variable-depth groups: a depth-0 group must have codebook index 0")


def encode_var_matrix(q: np.ndarray, k: np.ndarray, gd: np.ndarray, base: int) -> np.ndarray:
    """Variable-depth trits of a matrix: q (rows, in_pad) depth-D levels, k and gd (rows,
    in_pad/16) codebook indices and group depths -> the flat trit sequence (int8)."""
    q, k, gd = np.asarray(q), np.asarray(k), np.asarray(gd)
    rows, cols = q.shape
    if cols % GROUP or k.shape != (rows, cols // GROUP):
        raise TritforgeError(f"matrix {q.shape} and indices {k.shape}: expected (rows, cols/16)")
    _check_var(q, k, gd, base)
    d = gd.reshape(-1).astype(np.int64)
    lengths = VAR_HEADER_TRITS + GROUP * d
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out = np.zeros(int(lengths.sum()), dtype=np.int8)
    out[starts] = (d - base + 1).astype(np.int8)
    st = to_trits(k.reshape(-1).astype(np.int32) - SCALE_OFFSET, SCALE_TRITS)
    for i in range(SCALE_TRITS):
        out[starts + DEPTH_TRITS + i] = st[:, i]
    digits = to_trits(q.reshape(-1, GROUP), base)           # (groups, 16, D), least significant first
    lane = np.arange(GROUP)
    for j in range(base):                                   # plane D-1-j, stored j-th
        sel = np.flatnonzero(d > j)
        pos = (starts[sel] + VAR_HEADER_TRITS + GROUP * j)[:, None] + lane
        out[pos] = digits[sel, :, base - 1 - j]
    return out


def pack_var_matrix(q: np.ndarray, k: np.ndarray, gd: np.ndarray, base: int) -> np.ndarray:
    """The variable-depth file stream of a matrix (bytes); its trit count is
    :func:`var_stream_trits` of ``gd``."""
    return pack_trits(encode_var_matrix(q, k, gd, base))


def _var_group_starts(t: np.ndarray, n_groups: int, base: int) -> np.ndarray:
    """Trit offsets of the ``n_groups`` groups of a variable-depth stream ``t``.

    Group i starts where group i-1 ends, and every start is a multiple of 4, so the map
    "a group starting at 4m ends at 4m'" is a function on the multiples of 4; the i-th
    start is that map applied i times to 0, computed for all i at once by repeated
    squaring (log2(n_groups) gathers over the stream/4 positions, no loop over groups).
    A start beyond the stream maps to the end marker and stays there."""
    n = t.size
    slots = n // VAR_HEADER_TRITS + 1                       # positions 0, 4, 8, .., and "end"
    end = slots - 1
    pos = np.arange(slots, dtype=np.int64) * VAR_HEADER_TRITS
    f = np.zeros(slots, dtype=np.int64)
    inside = pos < n
    f[inside] = t[pos[inside]]
    k = np.maximum(base - 1 + f, 0)
    nxt = np.minimum(np.arange(slots, dtype=np.int64) + 1 + (GROUP // VAR_HEADER_TRITS) * k, end)
    nxt[end] = end
    idx = np.zeros(n_groups, dtype=np.int64)
    order = np.arange(n_groups, dtype=np.int64)
    jump = nxt
    for bit in range(max(1, int(n_groups).bit_length())):
        sel = (order >> bit) & 1 == 1
        idx[sel] = jump[idx[sel]]
        if bit + 1 < int(n_groups).bit_length():
            jump = jump[jump]
    return idx * VAR_HEADER_TRITS


def unpack_var_matrix(data: np.ndarray, n_trits: int, rows: int, cols: int, base: int,
                      what: str = "packed matrix") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_var_matrix`: bytes -> q (rows, cols) int8 depth-D levels,
    k (rows, cols/16) uint8, group depths (rows, cols/16) uint8.

    Refuses, naming ``what``: a depth trit giving a depth below 0, a group that runs past
    the stream's ``n_trits`` trits, a stream with trits left after the last group, a
    depth-0 group whose codebook index is not 0."""
    check_depth(base)
    ng = cols // GROUP
    n_groups = rows * ng
    t = unpack_trits(data, n_trits, what)
    starts = _var_group_starts(t, n_groups, base)
    inside = starts < n_trits
    f = np.zeros(n_groups, dtype=np.int64)
    f[inside] = t[starts[inside]]
    gd = base - 1 + f
    ends = starts + VAR_HEADER_TRITS + GROUP * np.maximum(gd, 0)
    bad = ~inside | (gd < 0) | (ends > n_trits)
    if bad.any():                              # the first problem in stream order
        i = int(np.argmax(bad))
        at = f"group {i} (row {i // ng}, group {i % ng})"
        if not inside[i]:
            raise TritforgeError(f"{what}: the stream ends at trit {n_trits} before {at} of {n_groups}")
        if gd[i] < 0:
            raise TritforgeError(f"{what}: {at} has depth field {int(f[i])}, depth {int(gd[i])} "
                                 f"out of range {var_depths(base)}")
        raise TritforgeError(f"{what}: {at} runs past the stream end (trit {int(ends[i])} of {n_trits})")
    if n_groups and ends[-1] != n_trits:
        raise TritforgeError(f"{what}: {n_trits - int(ends[-1])} trits left after the last group; "
                             f"expected the groups to end at trit {n_trits}")
    st = np.stack([t[starts + DEPTH_TRITS + i] for i in range(SCALE_TRITS)], axis=-1)
    k = (from_trits(st) + SCALE_OFFSET).astype(np.uint8)
    zero_bad = np.flatnonzero((gd == 0) & (k != 0))
    if zero_bad.size:
        i = int(zero_bad[0])
        raise TritforgeError(f"{what}: group {i} (row {i // ng}, group {i % ng}) has depth 0 "
                             f"and codebook index {int(k[i])}; expected index 0")
    q = np.zeros((n_groups, GROUP), dtype=np.int64)
    lane = np.arange(GROUP)
    for j in range(base):
        sel = np.flatnonzero(gd > j)
        pos = (starts[sel] + VAR_HEADER_TRITS + GROUP * j)[:, None] + lane
        q[sel] += t[pos].astype(np.int64) * 3 ** (base - 1 - j)
    return (q.astype(np.int8).reshape(rows, cols), k.reshape(rows, ng),
            gd.astype(np.uint8).reshape(rows, ng))


# --- hardware stream -------------------------------------------------------------------

def beat_trits(d: int, rows: int) -> int:
    return rows * group_trits(d)


def beat_bytes(d: int, rows: int) -> int:
    """Bytes of one weight beat (R groups of one group column)."""
    return packed_bytes(beat_trits(d, rows))


def beat_window(d: int, first_row: int, rows: int) -> tuple[int, int, int]:
    """The bytes of a beat that hold rows ``first_row .. first_row + rows - 1``: (first
    byte, bytes, offset of the first row's first trit in the first byte). Rows need not
    start on a byte (a group is 19, 35, 51 or 67 trits), so neighbouring windows can share
    a byte."""
    lo = first_row * group_trits(d)
    hi = lo + rows * group_trits(d)
    first = lo // TRITS_PER_BYTE
    return first, packed_bytes(hi) - first, lo - first * TRITS_PER_BYTE


def tile_rows(q: np.ndarray, k: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad rows to a multiple of R with zero groups; q (out, in_pad) -> (tiles, R, ng, 16)."""
    out, cols = q.shape
    ng = cols // GROUP
    pad = (-out) % rows
    if pad:
        q = np.concatenate([q, np.zeros((pad, cols), dtype=q.dtype)])
        k = np.concatenate([k, np.zeros((pad, ng), dtype=k.dtype)])
    n_tiles = q.shape[0] // rows
    return q.reshape(n_tiles, rows, ng, GROUP), k.reshape(n_tiles, rows, ng)


def stream_beats(q: np.ndarray, k: np.ndarray, d: int, rows: int) -> np.ndarray:
    """Hardware weight stream: (tiles, groups, beat_bytes) uint8, beat order tile-major."""
    qt, kt = tile_rows(q, k, rows)
    n_tiles, _, ng, _ = qt.shape
    # (tiles, R, ng, ...) -> (tiles, ng, R, ...): one beat = the R rows of one group column
    t = encode_groups(qt.transpose(0, 2, 1, 3), kt.transpose(0, 2, 1), d)
    t = t.reshape(n_tiles, ng, beat_trits(d, rows))
    pad = beat_bytes(d, rows) * TRITS_PER_BYTE - beat_trits(d, rows)
    if pad:
        t = np.concatenate([t, np.zeros(t.shape[:-1] + (pad,), dtype=np.int8)], axis=-1)
    flat = pack_trits(t.reshape(-1))
    return flat.reshape(n_tiles, ng, beat_bytes(d, rows))


def decode_beat(beat: np.ndarray, d: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """One beat -> q (R, 16) and k (R,) (what the RTL trit decoder computes)."""
    t = unpack_trits(beat, beat_trits(d, rows), "weight beat")
    return decode_groups(t.reshape(rows, group_trits(d)), d)


def decode_stream(beats: np.ndarray, d: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """All beats (tiles, ng, beat_bytes) -> q (tiles, ng, R, 16), k (tiles, ng, R)."""
    n_tiles, ng, nb = beats.shape
    t = unpack_trits(beats.reshape(-1), n_tiles * ng * nb * TRITS_PER_BYTE, "weight stream")
    t = t.reshape(n_tiles, ng, nb * TRITS_PER_BYTE)[..., :beat_trits(d, rows)]
    return decode_groups(t.reshape(n_tiles, ng, rows, group_trits(d)), d)


# --- variable-depth hardware stream ----------------------------------------------------

def var_header_bytes(rows: int) -> int:
    """Bytes at the start of a variable-depth column that hold its R headers."""
    return packed_bytes(VAR_HEADER_TRITS * rows)


def var_column_bytes(gd: np.ndarray) -> np.ndarray:
    """Bytes of variable-depth columns from their group depths ``gd`` (..., R) (any depth
    counted as at least 0): ``ceil((4R + 16*sum(k_r)) / 5)``."""
    gd = np.maximum(np.asarray(gd, dtype=np.int64), 0)
    trits = VAR_HEADER_TRITS * gd.shape[-1] + GROUP * gd.sum(-1)
    return -(-trits // TRITS_PER_BYTE)


def var_tile_depths(gd: np.ndarray, base: int, rows: int) -> np.ndarray:
    """Group depths (out, ng) -> (tiles, ng, R) in column order, padded rows at the
    shallowest depth of ``var_depths(base)``."""
    gd = np.asarray(gd)
    pad = (-gd.shape[0]) % rows
    if pad:
        gd = np.concatenate([gd, np.full((pad, gd.shape[1]), min(var_depths(base)), gd.dtype)])
    return gd.reshape(-1, rows, gd.shape[1]).transpose(0, 2, 1)


def var_stream_columns(q: np.ndarray, k: np.ndarray, gd: np.ndarray, base: int,
                       rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The variable-depth hardware stream of a matrix: q (out, in_pad) depth-D levels, k and
    gd (out, in_pad/16) indices and group depths -> (bytes uint8, column starts int64 of
    ``tiles*ng + 1`` entries: column c is ``bytes[starts[c]:starts[c+1]]``)."""
    q, k, gd = np.asarray(q), np.asarray(k), np.asarray(gd)
    out, cols = q.shape
    if cols % GROUP or k.shape != (out, cols // GROUP):
        raise TritforgeError(f"matrix {q.shape} and indices {k.shape}: expected (rows, cols/16)")
    _check_var(q, k, gd, base)
    qt, kt = tile_rows(q, k, rows)                               # (tiles, R, ng, 16), (tiles, R, ng)
    qc = qt.transpose(0, 2, 1, 3).reshape(-1, rows, GROUP)       # (columns, R, 16)
    kc = kt.transpose(0, 2, 1).reshape(-1, rows)
    dc = var_tile_depths(gd, base, rows).reshape(-1, rows).astype(np.int64)
    nbytes = var_column_bytes(dc)
    starts = np.concatenate([[0], np.cumsum(nbytes)]).astype(np.int64)
    t = np.zeros(int(starts[-1]) * TRITS_PER_BYTE, dtype=np.int8)
    head = (starts[:-1, None] * TRITS_PER_BYTE + VAR_HEADER_TRITS * np.arange(rows)).reshape(-1)
    t[head] = (dc.reshape(-1) - base + 1).astype(np.int8)
    st = to_trits(kc.reshape(-1).astype(np.int32) - SCALE_OFFSET, SCALE_TRITS)
    for i in range(SCALE_TRITS):
        t[head + DEPTH_TRITS + i] = st[:, i]
    # row r's planes start after the headers and the planes of rows 0..r-1
    before = np.cumsum(dc, axis=1) - dc
    pstart = (starts[:-1, None] * TRITS_PER_BYTE + VAR_HEADER_TRITS * rows + GROUP * before).reshape(-1)
    digits = to_trits(qc.reshape(-1, GROUP), base)               # (groups, 16, D)
    d = dc.reshape(-1)
    lane = np.arange(GROUP)
    for j in range(base):
        sel = np.flatnonzero(d > j)
        t[(pstart[sel] + GROUP * j)[:, None] + lane] = digits[sel, :, base - 1 - j]
    return pack_trits(t), starts


def scan_var_columns(data: np.ndarray, n_columns: int, base: int, rows: int) -> dict:
    """What the variable-depth engine's gearbox reads from a stream, for ``n_columns``
    columns, without refusing anything: per column its start byte (``starts``, with the end
    of the last column appended), its group depths (``depth`` (n, R), from the depth trits;
    an invalid byte reads as zero trits, as in the uniform engine) and indices (``index``),
    and ``bad`` (n,): the column holds a byte >= 243, a depth outside ``var_depths(base)``
    or a depth-0 group with a non-zero index (the engine's ``err``). A column that runs past
    the data has ``starts[c+1] > data.size`` (``truncated``: the first such column, or -1).

    Every column starts on a byte, so "the column starting at byte p ends at byte p'" is a
    function on byte positions; the c-th start is that map applied c times to 0, for all c
    at once by repeated squaring (no loop over columns)."""
    b = np.asarray(data, dtype=np.uint8).reshape(-1)
    n = b.size
    hb = var_header_bytes(rows)
    trits = _BYTE_TRITS[np.where(b < BYTE_LIMIT, b, ZERO_BYTE)].reshape(-1)
    slots = n + 1
    pos = np.arange(slots, dtype=np.int64)
    fpos = pos[:, None] * TRITS_PER_BYTE + VAR_HEADER_TRITS * np.arange(rows)
    f = np.zeros((slots, rows), dtype=np.int64)
    ok = fpos < trits.size
    f[ok] = trits[fpos[ok]]
    length = var_column_bytes(base - 1 + f)
    nxt = np.minimum(pos + length, n)                             # past the data: the end
    nxt[(pos + hb > n)] = n
    idx = np.zeros(n_columns + 1, dtype=np.int64)
    order = np.arange(n_columns + 1, dtype=np.int64)
    jump = nxt
    bits = max(1, int(n_columns).bit_length())
    for bit in range(bits):
        sel = (order >> bit) & 1 == 1
        idx[sel] = jump[idx[sel]]
        if bit + 1 < bits:
            jump = jump[jump]
    starts = idx
    # the true length of every column (not clipped), for truncation
    full_end = starts[:-1] + length[starts[:-1]]
    truncated = np.flatnonzero((full_end > n) | (starts[:-1] + hb > n))
    depth = base - 1 + f[starts[:-1]]
    hpos = starts[:-1, None] * TRITS_PER_BYTE + VAR_HEADER_TRITS * np.arange(rows)
    hpos = np.minimum(hpos, max(trits.size - SCALE_TRITS - 1, 0))
    st = np.stack([trits[hpos + DEPTH_TRITS + i] if trits.size else np.zeros_like(hpos)
                   for i in range(SCALE_TRITS)], -1)
    index = from_trits(st) + SCALE_OFFSET
    invalid = (b >= BYTE_LIMIT).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(invalid)])
    ends = np.minimum(np.concatenate([starts[:-1] + length[starts[:-1]]]), n)
    bad_byte = cum[ends] - cum[np.minimum(starts[:-1], n)] > 0
    bad = bad_byte | (depth < 0).any(-1) | ((depth == 0) & (index != 0)).any(-1)
    starts = starts.copy()
    starts[1:] = starts[:-1] + length[starts[:-1]]
    return {"starts": starts, "depth": depth, "index": index, "bad": bad, "bad_byte": bad_byte,
            "truncated": int(truncated[0]) if truncated.size else -1}


def var_column_levels(data: np.ndarray, starts: np.ndarray, depth: np.ndarray, base: int,
                      rows: int) -> np.ndarray:
    """Depth-D levels (columns, R, 16) int8 of scanned columns (``scan_var_columns``): what
    the gearbox puts into a depth-D beat (the planes a group leaves out are zero; a group
    of an invalid depth has none; an invalid byte reads as zero trits)."""
    b = np.asarray(data, dtype=np.uint8).reshape(-1)
    trits = _BYTE_TRITS[np.where(b < BYTE_LIMIT, b, ZERO_BYTE)].reshape(-1)
    dc = np.maximum(np.asarray(depth, dtype=np.int64), 0)
    before = np.cumsum(dc, axis=1) - dc
    pstart = (np.asarray(starts[:dc.shape[0]])[:, None] * TRITS_PER_BYTE
              + VAR_HEADER_TRITS * rows + GROUP * before).reshape(-1)
    d = dc.reshape(-1)
    q = np.zeros((d.size, GROUP), dtype=np.int64)
    lane = np.arange(GROUP)
    for j in range(base):
        sel = np.flatnonzero(d > j)
        q[sel] += trits[(pstart[sel] + GROUP * j)[:, None] + lane].astype(np.int64) * 3 ** (base - 1 - j)
    return q.astype(np.int8).reshape(dc.shape + (GROUP,))


def unpack_var_stream(data: np.ndarray, out_features: int, cols: int, base: int, rows: int,
                      what: str = "variable-depth stream") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`var_stream_columns`: bytes -> q (out, cols) int8, k and gd
    (out, cols/16) uint8. Refuses, naming ``what`` and the first bad column: a byte >= 243,
    a depth out of range, a depth-0 group with a non-zero index, a column that runs past the
    data, bytes left after the last column."""
    check_depth(base)
    ng = cols // GROUP
    tiles = -(-out_features // rows)
    n = tiles * ng
    b = np.asarray(data, dtype=np.uint8).reshape(-1)
    s = scan_var_columns(b, n, base, rows)

    def at(c):
        return f"column {c} (tile {c // ng}, group column {c % ng})"

    bad = np.flatnonzero(s["bad"] | (np.arange(n) == s["truncated"]))
    if bad.size:
        c = int(bad[0])
        if c == s["truncated"]:
            raise TritforgeError(f"{what}: {at(c)} runs past the end of the {b.size} bytes "
                                 f"(it needs bytes {int(s['starts'][c])}..{int(s['starts'][c + 1]) - 1})")
        if s["bad_byte"][c]:
            raise TritforgeError(f"{what}: {at(c)} holds a byte >= {BYTE_LIMIT}; expected trit bytes")
        r = int(np.argmax((s["depth"][c] < 0) | ((s["depth"][c] == 0) & (s["index"][c] != 0))))
        if s["depth"][c, r] < 0:
            raise TritforgeError(f"{what}: {at(c)} row {r} has depth {int(s['depth'][c, r])}; "
                                 f"expected one of {var_depths(base)}")
        raise TritforgeError(f"{what}: {at(c)} row {r} has depth 0 and codebook index "
                             f"{int(s['index'][c, r])}; expected index 0")
    if n and s["starts"][-1] != b.size:
        raise TritforgeError(f"{what}: {b.size - int(s['starts'][-1])} bytes left after the last "
                             f"column; expected the columns to end at byte {b.size}")
    q = var_column_levels(b, s["starts"], s["depth"], base, rows)        # (n, R, 16)
    q = q.reshape(tiles, ng, rows, GROUP).transpose(0, 2, 1, 3).reshape(tiles * rows, cols)
    k = s["index"].reshape(tiles, ng, rows).transpose(0, 2, 1).reshape(tiles * rows, ng)
    gd = s["depth"].reshape(tiles, ng, rows).transpose(0, 2, 1).reshape(tiles * rows, ng)
    return (q[:out_features], k[:out_features].astype(np.uint8),
            gd[:out_features].astype(np.uint8))


# --- activations and codebook words ----------------------------------------------------

def pack_activation_group(xq: np.ndarray) -> int:
    """16 int8 activations -> one 128-bit activation beat (lane j in bits 8j..8j+7)."""
    v = 0
    for j, x in enumerate(np.asarray(xq, dtype=np.int64).reshape(GROUP)):
        v |= (int(x) & 0xFF) << (8 * j)
    return v


def unpack_activation_group(word: int) -> np.ndarray:
    out = np.empty(GROUP, dtype=np.int8)
    for j in range(GROUP):
        b = (word >> (8 * j)) & 0xFF
        out[j] = b - 256 if b >= 128 else b
    return out


def codebook_word(mantissa: int, shift: int, mant_bits: int) -> int:
    return (int(shift) << mant_bits) | int(mantissa)


def split_codebook_word(word: int, mant_bits: int) -> tuple[int, int]:
    return word & ((1 << mant_bits) - 1), word >> mant_bits
