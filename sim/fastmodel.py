"""Vectorized cycle model of the GEMV engine: bit-exact results, exact cycle counts, actions.

It computes what ``hw/engine.py`` computes for whole matrices at once, fast enough for
whole models, and is held equal to the per-cycle stepping model (``sim.stepmodel``) and,
through co-simulation, to the RTL:

* results: bit-exact with ``codec.golden.accumulators``;
* cycles: the exact count of ``sim.stepmodel`` / the RTL with always-valid inputs and an
  always-ready result stream, from the cycle a command is accepted to the cycle its last
  result beat is accepted (inclusive), summed over the commands of a call;
* actions: ``sim.actions.Actions`` (what the engine does, for the energy model).

Commands (hw/ENGINE.md): one command runs T = ``cfg.vectors`` activation vectors through a
whole matrix. ``run_matrix`` takes any number n >= 1 of vectors and issues ceil(n / T)
commands; the last one is padded with zero vectors, computed by the engine (and counted)
but not returned.

Exactness of the fast path. Folding each group's scale into its weights,
``W'[r, c] = q[r, c] * m[k[r, g]] * 2**delta[k[r, g]]`` (g = c // 16), the engine's
accumulator is the plain dot product ``A[v, r] = sum_c W'[r, c] * x[v, c]`` (the shift
distributes over the sum exactly in integers). Every ``W'`` entry (< 2**33) and every
product is an integer exactly representable in float64, and every partial sum of a row,
in any order, is bounded by ``B_r = max|x| * sum_c |W'[r, c]|``. If ``B_r < 2**53`` for
every row, float64 arithmetic (a BLAS matmul) makes no rounding at all, so converting the
result to int64 gives the exact accumulators. The bound is checked once per matrix for
any int8 input (``max|x| <= 128``), first with the cheap ``|q| <= L`` and then, if that
fails, with the actual levels; when it still does not hold (``in_features`` in the tens of
thousands at d = 4) the model uses exact int64 arithmetic instead (group dots in int32,
shifted accumulation in int64).

Timing (``command_cycles``, equal to hw/ENGINE.md "Timing" and to ``sim.stepmodel``), one
command on an idle engine::

    cycles = 2 (accept, start) + T*ng + 1 (LOAD, if load_act) + tiles*ng*T + pipeline_stages
             + 1 (end: busy falls one cycle after the last result)

Commands back to back overlap (hw/ENGINE.md "Back to back"): ``timeline`` gives every
command's cycles in a stream, exactly as the stepping model's host plays it.

``ideal_cycles`` = commands x tiles x ng x T (the weight stream at full rate) and the
per-matrix stream utilisation is ideal / simulated (``utilisation``, ``MatrixRun.utilisation``).

Prepared (float64) weights are cached per TritTensor object (LRU, bounded by
``TRITFORGE_FASTMODEL_CACHE_MB``, default 2048 MiB; a whole SmolLM2-135M needs ~850 MiB).
"""
from __future__ import annotations

import dataclasses
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..codec import layout
from ..errors import TritforgeError
from ..codec.quantize import TritTensor
from ..hwconfig import CMD_ACCEPT_CYCLES, END_CYCLES, LOAD_OPEN_CYCLES, HwConfig
from .actions import Actions

#: adders forming the shared activation multiples +-3**i x, per lane and item, by depth
#: (hw/actmultiples.py: -x; -x, 3x, -3x; then 9x, -9x; then 5x, 27x, -27x)
MULTIPLE_ADDS = {1: 1, 2: 3, 3: 5, 4: 8}
_EXACT_LIMIT = 2.0 ** 53

# Command timing (hw/ENGINE.md "Timing"), cycles counted inclusively from the cycle the
# command is accepted (cycle 0) to the end cycle after its last result beat is accepted.
#   cycle 0                  cmd accepted
#   cycle 1                  start: the counters load from the registered command
#   LOAD (load_act only)     T*ng activation words, one per cycle, from cycle 2; RUN opens
#                            one cycle after the last
#   RUN                      one weight beat every T cycles, tiles*ng beats; the last use
#                            of the last beat leaves the pipeline after pipeline_stages
#   last result accepted     in the cycle it is valid (always-ready result stream)
#   end                      one more cycle before the engine is idle again
# (CMD_ACCEPT_CYCLES, LOAD_OPEN_CYCLES, END_CYCLES: tritforge.hwconfig, their owner)


@dataclass
class MatrixRun:
    acc: np.ndarray       #: int64 (n, out_features): exact row accumulators (real rows only)
    cycles: int           #: total cycles of all commands (no stalls)
    actions: Actions      #: summed over all commands
    commands: int = 1     #: engine commands issued (ceil(n / T))
    ideal_cycles: int = 0  #: weight-beat cycles at full stream rate (see ideal_cycles)

    @property
    def utilisation(self) -> float:
        """Weight-stream utilisation: ideal weight-beat cycles / simulated cycles."""
        return self.ideal_cycles / self.cycles if self.cycles else 0.0


# --- timing ------------------------------------------------------------------------------

def _groups(in_features: int) -> int:
    return -(-in_features // layout.GROUP)


def command_cycles(cfg: HwConfig, out_features: int, in_features: int,
                   load_act: bool = True) -> int:
    """Cycles of one command (T vectors) on an idle engine, from its accept to the cycle
    ``busy`` falls (the last result accepted, then ``END_CYCLES``), no stalls; commands
    back to back overlap (``timeline``)."""
    cfg.check_shape(out_features, in_features)
    ng = _groups(in_features)
    tiles = cfg.tiles(out_features)
    load = cfg.vectors * ng + LOAD_OPEN_CYCLES if load_act else 0
    return (CMD_ACCEPT_CYCLES + load + tiles * ng * cfg.vectors + cfg.pipeline_stages
            + END_CYCLES)


@dataclass(frozen=True)
class Command:
    """One engine command of a back-to-back stream: its matrix shape, whether it loads, and
    whether the host writes a codebook for it (into the other bank) or it reads the one
    the command before it read (the same matrix again)."""

    out_features: int
    in_features: int
    load_act: bool = True
    codebook: bool = True


@dataclass(frozen=True)
class Timeline:
    """Cycles of a command stream (hw/ENGINE.md "Back to back"), numbered from the first
    codebook write (cycle 0), per command: ``accept``, ``taken`` (the issue stage takes it),
    ``first_beat``, ``last_beat``, ``last_result`` (its last result beat accepted), and
    ``end``: the first cycle ``busy`` is low after the last command."""

    accept: tuple
    taken: tuple
    first_beat: tuple
    last_beat: tuple
    last_result: tuple
    end: int
    beat_cycles: int     #: beats x T summed: the weight stream at full rate

    @property
    def cycles(self) -> int:
        """From the first command's accept to ``end``, exclusive (the engine's share)."""
        return self.end - self.accept[0]

    @property
    def utilisation(self) -> float:
        return self.beat_cycles / self.cycles


def timeline(cfg: HwConfig, cmds, overlap: bool = True) -> Timeline:
    """The exact cycles of a stream of commands sent by the host of ``sim.stepmodel
    .JobDriver`` with always-valid streams and an always-ready result stream: a command's
    27 codebook words (the banks alternate from one codebook to the next) are written one
    per cycle once the command before it was accepted and its bank is free (the last
    result accepted of the command before the previous codebook's; with ``overlap=False``
    of the command before it: one command at a time), its command offered the cycle after;
    a command without a codebook of its own is offered the cycle after the one before it
    was accepted (with ``overlap=False`` after that one's last result). Per command, with ng
    groups, N = tiles·ng beats, T vectors and S pipeline stages:

    * accepted when offered and the front end is free (the cycle after the issue stage
      took the command before);
    * pending from ``CMD_ACCEPT_CYCLES - 1`` cycles after the accept, or with LOAD from
      ``CMD_ACCEPT_CYCLES + T·ng - 1 + LOAD_OPEN_CYCLES``;
    * taken in the first pending cycle that the previous command's last beat is accepted
      in or follows;
    * its first beat accepted the cycle after it is taken, but not before the previous
      command's last beat has had its T uses (last beat + T); one beat per T cycles;
    * its last result accepted N·T + S − 1 cycles after its first beat;
    * ``busy`` low ``END_CYCLES + 1`` cycles after the last command's last result.
    """
    T, S = cfg.vectors, cfg.pipeline_stages
    front = CommandFront(cfg, overlap)
    for c in cmds:
        n = cfg.tiles(c.out_features) * _groups(c.in_features)
        first = front.start(c)
        front.finish(first, first + (n - 1) * T, first + n * T + S - 1, n * T)
    return front.timeline(Timeline)


class CommandFront:
    """The host and the engine's front end over a stream of commands, the part of
    ``timeline`` (its docstring) the uniform and the variable-depth engine share: per
    command, :meth:`start` gives the earliest cycle of its first beat from its accept and
    take; the engine's own timing of its beats then says, through :meth:`finish`, when its
    first and last beat were accepted and its last result."""

    def __init__(self, cfg: HwConfig, overlap: bool = True):
        self.cfg, self.overlap = cfg, overlap
        self.accept, self.taken, self.first, self.last_beat, self.last_result = [], [], [], [], []
        self.books = []              # per codebook, the last command that read it
        self.beat_cycles = 0

    def start(self, c) -> int:
        """Command ``c`` accepted and taken; returns the earliest cycle of its first beat."""
        cfg, T = self.cfg, self.cfg.vectors
        cfg.check_shape(c.out_features, c.in_features)
        j, lr, books = len(self.accept), self.last_result, self.books
        offer = 0 if j == 0 else self.accept[-1] + 1
        if not self.overlap and j:
            offer = max(offer, lr[-1] + 1)
        if c.codebook or not books:
            # after the previous accept, once the bank is free
            if self.overlap and len(books) >= 2:
                offer = max(offer, lr[books[-2]] + 1)
            books.append(j)
            offer += layout.CODEBOOK_SIZE
        books[-1] = j
        a = offer if j == 0 else max(offer, self.taken[-1] + 1)
        pend = a + CMD_ACCEPT_CYCLES - 1
        if c.load_act:
            pend += T * _groups(c.in_features) + LOAD_OPEN_CYCLES
        take = pend if j == 0 else max(pend, self.last_beat[-1])
        self.accept.append(a)
        self.taken.append(take)
        return take + 1 if j == 0 else max(take + 1, self.last_beat[-1] + T)

    def finish(self, first: int, last_beat: int, last_result: int, beat_cycles: int) -> None:
        """The command just started: its first and last beat, its last result, its beats x T."""
        self.first.append(first)
        self.last_beat.append(last_beat)
        self.last_result.append(last_result)
        self.beat_cycles += beat_cycles

    def timeline(self, cls, **extra):
        return cls(tuple(self.accept), tuple(self.taken), tuple(self.first), tuple(self.last_beat),
                   tuple(self.last_result), end=max(self.last_result) + END_CYCLES + 1,
                   beat_cycles=self.beat_cycles, **extra)


def commands(cfg: HwConfig, n_vectors: int) -> int:
    if not isinstance(n_vectors, (int, np.integer)) or n_vectors < 1:
        raise TritforgeError(f"n_vectors={n_vectors!r}: expected an integer >= 1")
    return -(-int(n_vectors) // cfg.vectors)


def ideal_cycles(cfg: HwConfig, out_features: int, in_features: int, n_vectors: int) -> int:
    """Cycles the weight stream needs at full rate: every beat used T times, no overhead.

    ``commands * tiles * groups * T``: the lower bound any implementation of the engine
    meets when the weight stream (one beat per T cycles) is the only limit.
    """
    cfg.check_shape(out_features, in_features)
    return commands(cfg, n_vectors) * cfg.tiles(out_features) * _groups(in_features) * cfg.vectors


def matrix_commands(cfg: HwConfig, out_features: int, in_features: int, n_vectors: int,
                    load_act: bool = True) -> list:
    """The commands of ``run_matrix`` for n vectors (every command after the first loads)."""
    n_cmd = commands(cfg, n_vectors)
    return ([Command(out_features, in_features, load_act)]
            + [Command(out_features, in_features, True, codebook=False)] * (n_cmd - 1))


def run_cycles(cfg: HwConfig, out_features: int, in_features: int, n_vectors: int,
               load_act: bool = True) -> int:
    """Cycles of ``run_matrix`` for n vectors: its commands back to back, from the first
    accept to the cycle ``busy`` falls (one command: ``command_cycles``)."""
    return timeline(cfg, matrix_commands(cfg, out_features, in_features, n_vectors,
                                         load_act)).cycles


def utilisation(cfg: HwConfig, out_features: int, in_features: int, n_vectors: int = 1,
                load_act: bool = True) -> float:
    """Per-matrix weight-stream utilisation: ideal weight-beat cycles / simulated cycles."""
    return (ideal_cycles(cfg, out_features, in_features, n_vectors)
            / run_cycles(cfg, out_features, in_features, n_vectors, load_act))


# --- actions -----------------------------------------------------------------------------

def _nonzero_digit_table(d: int) -> np.ndarray:
    """Non-zero balanced-ternary digits of every level q = -L..L (index q + L)."""
    L = layout.max_level(d)
    return (layout.to_trits(np.arange(-L, L + 1), d) != 0).sum(-1).astype(np.int64)


def nonzero_trits(q: np.ndarray, d: int) -> int:
    """Non-zero weight trits of a level matrix (all planes).

    -q has the negated digits of q, so the count depends on |q| only: one count per
    magnitude 1..L (a compare pass over int8; faster than a histogram for d <= 3).
    """
    L = layout.max_level(d)
    q = np.asarray(q)
    if d == 1:
        return int(np.count_nonzero(q))
    table = _nonzero_digit_table(d)[L:]               # magnitudes 0..L
    a = np.abs(q.astype(np.int8, copy=False)).reshape(-1)
    if L > 13:                                        # d = 4: 40 magnitudes, histogram instead
        return int(np.bincount(a, minlength=L + 1) @ table)
    return int(sum(int(table[m]) * int(np.count_nonzero(a == m)) for m in range(1, L + 1)))


def command_actions(cfg: HwConfig, out_features: int, in_features: int, nnz_trits: int,
                    load_act: bool = True) -> Actions:
    """Actions of one command over a matrix with ``nnz_trits`` non-zero weight trits."""
    T, d, R = cfg.vectors, cfg.depth, cfg.rows
    ng = _groups(in_features)
    tiles = cfg.tiles(out_features)
    row_groups = tiles * R * ng                   # (row, group) pairs incl. padded rows
    all_trits = row_groups * layout.GROUP * d
    slices = len(cfg.slices)      # each slice forms its multiples and holds its own buffer
    return Actions(
        cycles=command_cycles(cfg, out_features, in_features, load_act),
        trit_addsub=nnz_trits * T,
        trit_skip=(all_trits - nnz_trits) * T,
        tree_add=row_groups * (layout.GROUP * d - 1) * T,
        plane_add=tiles * ng * T * layout.GROUP * MULTIPLE_ADDS[d] * slices,
        group_mul=row_groups * T,
        acc_add=row_groups * T,
        codebook_read=row_groups,
        act_read_bits=tiles * ng * T * layout.ACT_WORD_BITS * slices,
        act_write_bits=(T * ng * layout.ACT_WORD_BITS * slices) if load_act else 0,
        weight_bytes=tiles * ng * cfg.beat_bytes,
        result_bits=tiles * T * R * cfg.widths.acc,
    )


# --- prepared weights --------------------------------------------------------------------

@dataclass
class Prepared:
    """A matrix ready for the fast path (levels, indices and scale words folded)."""

    out_features: int
    in_padded: int
    depth: int
    wt: np.ndarray | None     #: float64 (in_pad, out) view of W' (out, in_pad), or None (int64 path)
    row_abs: float            #: an upper bound of max_r sum_c |W'[r, c]|
    q: np.ndarray             #: int8 (out, in_pad)
    k: np.ndarray             #: uint8 (out, ng)
    mantissa: np.ndarray      #: int64 (27,)
    left_shift: np.ndarray    #: int64 (27,)
    nnz_trits: int

    @property
    def nbytes(self) -> int:
        return 0 if self.wt is None else self.wt.nbytes


def prepare_levels(q: np.ndarray, k: np.ndarray, mantissa, left_shift, d: int) -> Prepared:
    """Prepare from levels q (out, in_pad), indices k (out, ng) and the codebook's integer form."""
    q = np.asarray(q)
    k = np.asarray(k)
    out, cols = q.shape
    if cols % layout.GROUP or k.shape != (out, cols // layout.GROUP):
        raise TritforgeError(f"matrix: levels {q.shape} and indices {k.shape} do not match "
                             f"(expected (out, in_pad) and (out, in_pad/{layout.GROUP}))")
    m = np.asarray(mantissa, dtype=np.int64)
    sh = np.asarray(left_shift, dtype=np.int64)
    scale = m * (np.int64(1) << sh)                       # m * 2**delta, < 2**(F+S)
    gs = scale[k].astype(np.float64)                      # (out, ng)
    q3 = q.reshape(out, -1, layout.GROUP)
    # sum_c |W'[r, c]| <= 16 * L * sum_g m * 2**delta: usually far below the limit; only
    # when this cheap bound fails are the actual |q| summed
    row_abs = float(gs.sum(-1).max()) * layout.GROUP * layout.max_level(d) if out else 0.0
    if row_abs * 128.0 >= _EXACT_LIMIT:
        abs_sum = np.abs(q3.astype(np.int16)).sum(-1, dtype=np.int32)   # (out, ng)
        row_abs = float((abs_sum * gs).sum(-1).max())
    wt = None
    if row_abs * 128.0 < _EXACT_LIMIT:                    # exact for any int8 input
        w = np.multiply(q3, gs[..., None], dtype=np.float64).reshape(out, cols)
        wt = w.T                                          # (in_pad, out) view: BLAS takes it as is
    return Prepared(out, cols, d, wt, row_abs, q, k, m, sh, nonzero_trits(q, d))


def _cache_limit() -> int:
    try:
        return int(os.environ.get("TRITFORGE_FASTMODEL_CACHE_MB", "2048")) << 20
    except ValueError:
        raise TritforgeError("TRITFORGE_FASTMODEL_CACHE_MB: expected an integer (MiB)") from None


_CACHE: "OrderedDict[int, Prepared]" = OrderedDict()


def prepare(t: TritTensor) -> Prepared:
    """The prepared form of a TritTensor, cached per object while it lives."""
    key = id(t)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    cb = t.codebook
    p = prepare_levels(t.q, t.k, cb.mantissa, cb.left_shift, t.depth)
    limit = _cache_limit()
    if p.nbytes <= limit:
        _CACHE[key] = p
        weakref.finalize(t, _CACHE.pop, key, None)
        total = sum(v.nbytes for v in _CACHE.values())
        while total > limit and len(_CACHE) > 1:
            _, old = _CACHE.popitem(last=False)
            total -= old.nbytes
    return p


def clear_cache() -> None:
    _CACHE.clear()


# --- the model ---------------------------------------------------------------------------

def _check_xq(xq, in_padded: int) -> np.ndarray:
    x = np.asarray(xq)
    if x.ndim != 2 or x.shape[1] != in_padded or x.shape[0] < 1:
        raise TritforgeError(f"activations: shape {x.shape}, expected (n >= 1, {in_padded})")
    if x.dtype != np.int8:
        if not np.issubdtype(x.dtype, np.integer):
            raise TritforgeError(f"activations: dtype {x.dtype}, expected int8")
        if x.size and (x.min() < -128 or x.max() > 127):
            raise TritforgeError("activations: values outside int8 (-128..127)")
        x = x.astype(np.int8)
    return x


def accumulators(p: Prepared, xq: np.ndarray) -> np.ndarray:
    """Exact row accumulators (n, out) int64 of a prepared matrix."""
    if p.wt is not None:
        y = xq.astype(np.float64) @ p.wt
        return y.astype(np.int64)
    # exact fallback: group dots in int32 (|P| < 2**17), shifted sum in int64
    n = xq.shape[0]
    ng = p.in_padded // layout.GROUP
    xg = xq.reshape(n, ng, layout.GROUP).astype(np.int32)
    qg = p.q.reshape(p.q.shape[0], ng, layout.GROUP).astype(np.int32)
    sm = p.mantissa[p.k]
    sh = p.left_shift[p.k]
    out = np.empty((n, p.q.shape[0]), dtype=np.int64)
    for v in range(n):
        P = np.einsum("rgj,gj->rg", qg, xg[v]).astype(np.int64)
        out[v] = ((sm * P) << sh).sum(-1)
    return out


def run_prepared(cfg: HwConfig, p: Prepared, xq, out_features: int | None = None,
                 load_act: bool = True) -> MatrixRun:
    """``run_matrix`` on a prepared matrix (see :func:`prepare_levels`)."""
    if p.depth != cfg.depth:
        raise TritforgeError(f"matrix depth d={p.depth} does not match the config's d={cfg.depth}")
    out = p.q.shape[0] if out_features is None else int(out_features)
    in_pad = p.in_padded
    cfg.check_shape(out, in_pad)
    single = np.ndim(xq) == 1
    x = _check_xq(np.asarray(xq)[None] if single else xq, in_pad)
    n = x.shape[0]
    n_cmd = commands(cfg, n)
    if not load_act and n_cmd > 1:
        raise TritforgeError(f"load_act=False reuses the activation buffer of one command "
                             f"(T={cfg.vectors} vectors), but {n} vectors were given")
    acc = accumulators(p, x)[:, :out]
    first = command_actions(cfg, out, in_pad, p.nnz_trits, load_act)
    actions = first + command_actions(cfg, out, in_pad, p.nnz_trits, True).scaled(n_cmd - 1)
    # the commands back to back: the overlapped cycles, not the sum of single commands
    actions = dataclasses.replace(actions, cycles=run_cycles(cfg, out, in_pad, n, load_act))
    return MatrixRun(acc=acc[0] if single else acc, cycles=actions.cycles, actions=actions,
                     commands=n_cmd, ideal_cycles=ideal_cycles(cfg, out, in_pad, n))


def run_matrix(cfg: HwConfig, t: TritTensor, xq, load_act: bool = True) -> MatrixRun:
    """Run n activation vectors (int8 (n, in_pad)) through one quantized matrix.

    Returns exact accumulators (n, out_features) int64 (equal to
    ``codec.golden.accumulators``), the total cycles of the ceil(n/T) commands and their
    actions. ``load_act=False`` reuses the activations already in the buffer (one command
    only), e.g. for the k/v projections after q.
    """
    if t.depth != cfg.depth:
        raise TritforgeError(f"matrix depth d={t.depth} does not match the config's d={cfg.depth}")
    return run_prepared(cfg, prepare(t), xq, t.q.shape[0], load_act)


def run_stream(cfg: HwConfig, beats: np.ndarray, mantissa, left_shift, xq,
               out_features: int, load_act: bool = True) -> MatrixRun:
    """The same from the packed hardware weight stream (``codec.layout.stream_beats``).

    Decodes the beats as the RTL's trit decoder does (``codec.layout.decode_stream``), so
    this path reads exactly the bytes the RTL is fed.
    """
    beats = np.asarray(beats, dtype=np.uint8)
    if beats.ndim != 3 or beats.shape[2] != cfg.beat_bytes:
        raise TritforgeError(f"weight stream: shape {beats.shape}, expected "
                             f"(tiles, groups, {cfg.beat_bytes})")
    q, k = layout.decode_stream(beats, cfg.depth, cfg.rows)   # (tiles, ng, R, 16), (tiles, ng, R)
    tiles, ng = q.shape[:2]
    q = q.transpose(0, 2, 1, 3).reshape(tiles * cfg.rows, ng * layout.GROUP)
    k = k.transpose(0, 2, 1).reshape(tiles * cfg.rows, ng)
    if tiles != cfg.tiles(out_features):
        raise TritforgeError(f"weight stream: {tiles} tiles, expected {cfg.tiles(out_features)} "
                             f"for out_features={out_features}")
    p = prepare_levels(q, k, mantissa, left_shift, cfg.depth)
    return run_prepared(cfg, p, xq, out_features, load_act)
