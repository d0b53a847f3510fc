"""Vectorized cycle model of the variable-depth engine (hw/ENGINE.md "Variable-depth stream").

The engine is the uniform depth-D engine (``sim.fastmodel``: one beat per T cycles, each
used for T vectors) behind a word FIFO and a gearbox that expands a column of the
variable-depth hardware stream (``codec.layout.var_stream_columns``) into a depth-D beat.
The memory delivers the stream in whole beats of ``P = port_bytes(cfg, W)`` bytes (the
commands' columns back to back, the last beat partial), at W bytes per cycle on average
(W a :class:`fractions.Fraction`, ``stream_rate``): ``rho = min(1, W / P)`` beats per
cycle, by the end of the m-th cycle of the stream ``floor((m + 1) rho)`` beats.

Column issue (the max-plus recurrence). Column j of a command stream (columns of all its
commands concatenated, ``B_j`` the bytes through column j) is complete in the FIFO in
cycle ``n_j = origin + ceil(ceil(B_j / P) / rho) - 1`` and is accepted by the issue stage in

    c_j = max(c_{j-1} + T, n_j + G, first cycle its command allows)

(G the gearbox's ``HwConfig.gearbox_cycles``, of ``built_config``)

so ``c_j = j T + max_{i <= j}(a_i - i T)`` within a command: ``np.maximum.accumulate``.
Everything else is the uniform engine's: its command front end, LOAD, pipeline of
``pipeline_stages``, results (the last result of a command is valid ``T + S - 1`` cycles
after its last column is accepted), and the accumulators, which are the depth-D ones
(a shallower group's low planes are zero), bit-exact with ``codec.golden``.

The memory origin is the cycle the issue side takes the first command; the FIFO is taken
as never full (the memory is never back-pressured). ``VarTimeline.fifo_peak`` bounds the
beats the FIFO holds on that schedule: an engine whose FIFO holds at least that many beats
(``HwConfig.window_words``) behaves exactly so (hw/ENGINE.md).

``err``: a column holding a byte >= 243, a depth outside ``layout.var_depths(D)`` or a
depth-0 group with a non-zero index (``layout.scan_var_columns``) sets ``err`` from the
cycle after it is accepted by the issue stage.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..codec import layout
from ..codec.quantize import TritTensor
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from . import fastmodel
from .fastmodel import MatrixRun


def stream_rate(bytes_per_cycle) -> Fraction:
    """W, the bytes the memory delivers per engine cycle, as an exact fraction (a float is
    taken to within 1/4096)."""
    try:
        w = Fraction(bytes_per_cycle).limit_denominator(4096)
    except (TypeError, ValueError):
        raise TritforgeError(f"stream rate {bytes_per_cycle!r}: expected bytes per cycle > 0") from None
    if w <= 0:
        raise TritforgeError(f"stream rate {bytes_per_cycle!r}: expected bytes per cycle > 0")
    return w


def board_rate(board) -> Fraction:
    """W of a board: its sustained memory bandwidth per engine cycle, shared by its engines."""
    return stream_rate(board.sustained_gbs * 1e9 / (board.clock_mhz * 1e6) / board.engines)


def port_bytes(cfg: HwConfig, rate) -> int:
    """P, the bytes of one memory beat: the built engine's ``mem_bytes``; for a
    configuration built for the uniform stream (an estimate of a mixed configuration), the
    narrowest port that carries W, at most the longest column (the engine takes one column
    a cycle at most) and at least a column's header, as ``run --rtl-sample`` builds it."""
    if cfg.variable:
        return cfg.mem_bytes
    return max(min(math.ceil(stream_rate(rate)), cfg.column_bytes_max), layout.var_header_bytes(cfg.rows))


def built_config(cfg: HwConfig, rate) -> HwConfig:
    """The variable-depth engine the models time: ``cfg`` itself, or for a configuration
    built for the uniform stream, the variable-depth build with a ``mem`` port of
    ``port_bytes(cfg, rate)`` (what ``run --rtl-sample`` builds); its ``gearbox_cycles``
    depend on the port's width (hw/columnfinder.py)."""
    if cfg.variable:
        return cfg
    return dataclasses.replace(cfg, weight_stream="variable", mem_bytes=port_bytes(cfg, rate))


def beat_rate(cfg: HwConfig, rate) -> Fraction:
    """rho, memory beats per cycle: ``min(1, W / P)`` (the port carries at most one a cycle)."""
    return min(Fraction(1), stream_rate(rate) / port_bytes(cfg, rate))


def column_bytes(cfg: HwConfig, group_depth: np.ndarray) -> np.ndarray:
    """Bytes of every column of a matrix (tile-major, then group column), from its group
    depths (out, ng)."""
    return layout.var_column_bytes(layout.var_tile_depths(group_depth, cfg.depth, cfg.rows)).reshape(-1)


def complete_cycles(col_bytes: np.ndarray, rho: Fraction, port: int, before: int = 0) -> np.ndarray:
    """Per column, the stream cycle (from 0) in which the beat holding its last byte is in
    the FIFO, with ``before`` bytes of the stream ahead of it: ``ceil(ceil(B_j / P) / rho) - 1``."""
    B = before + np.cumsum(np.asarray(col_bytes, dtype=np.int64))
    beats = -(-B // port)
    return -(-(beats * rho.denominator) // rho.numerator) - 1


def delivered_beats(cycles: np.ndarray, rho: Fraction) -> np.ndarray:
    """Beats the memory has delivered by the end of stream cycle m: ``floor((m + 1) rho)``."""
    return (np.asarray(cycles, dtype=np.int64) + 1) * rho.numerator // rho.denominator


def issue_cycles(avail: np.ndarray, T: int, first: int) -> np.ndarray:
    """``c_j = max(c_{j-1} + T, avail_j)``, ``c_0 = max(first, avail_0)``, vectorized."""
    j = np.arange(avail.size, dtype=np.int64) * T
    return j + np.maximum(np.maximum.accumulate(avail - j), first)


@dataclass(frozen=True)
class VarCommand:
    """One command of the variable-depth engine: its matrix shape and column bytes."""

    out_features: int
    in_features: int
    col_bytes: np.ndarray
    load_act: bool = True
    codebook: bool = True


@dataclass(frozen=True)
class VarTimeline(fastmodel.Timeline):
    issue: tuple = ()          #: per command, the issue cycles of its columns (int64 arrays)
    stream_bytes: int = 0      #: bytes of all columns
    fifo_peak: int = 0         #: a bound on the beats the FIFO holds on this schedule


def timeline(cfg: HwConfig, cmds, rate, overlap: bool = True) -> VarTimeline:
    """The cycles of a stream of variable-depth commands, as ``fastmodel.timeline`` gives
    them for the uniform engine (the same host: codebooks, accept, LOAD, take), with the
    columns issued by the recurrence above; the memory streams the commands' columns back
    to back from the cycle the first command is taken."""
    rho, port = beat_rate(cfg, rate), port_bytes(cfg, rate)
    T, S, G = cfg.vectors, cfg.pipeline_stages, built_config(cfg, rate).gearbox_cycles
    front = fastmodel.CommandFront(cfg, overlap)
    issue, before, origin, peak = [], 0, 0, 0
    cmds = list(cmds)
    beats = -(-sum(int(np.sum(c.col_bytes)) for c in cmds) // port)
    for j, c in enumerate(cmds):
        cfg.check_shape(c.out_features, c.in_features)
        n = cfg.tiles(c.out_features) * fastmodel._groups(c.in_features)
        cb = np.asarray(c.col_bytes, dtype=np.int64)
        if cb.size != n:
            raise TritforgeError(f"command {j}: {cb.size} columns, expected {n} for "
                                 f"{c.out_features} x {c.in_features} at R={cfg.rows}")
        first = front.start(c)
        if j == 0:
            origin = front.taken[0]
        done = origin + complete_cycles(cb, rho, port, before)
        ci = issue_cycles(done + G, T, first)
        # beats held while column i waits, counted until its issue: delivered - its first beat
        first_beat = (before + np.cumsum(cb) - cb) // port
        held = np.minimum(delivered_beats(ci - origin, rho), beats) - first_beat
        peak = max(peak, int(held.max()) if n else 0)
        before += int(cb.sum())
        front.finish(int(ci[0]), int(ci[-1]), int(ci[-1]) + T + S - 1, n * T)
        issue.append(ci)
    return front.timeline(VarTimeline, issue=tuple(issue), stream_bytes=before, fifo_peak=peak)


def matrix_commands(cfg: HwConfig, out_features: int, in_features: int, col_bytes: np.ndarray,
                    n_vectors: int, load_act: bool = True) -> list:
    n_cmd = fastmodel.commands(cfg, n_vectors)
    return ([VarCommand(out_features, in_features, col_bytes, load_act)]
            + [VarCommand(out_features, in_features, col_bytes, True, codebook=False)] * (n_cmd - 1))


def run_cycles(cfg: HwConfig, out_features: int, in_features: int, col_bytes: np.ndarray,
               n_vectors: int, rate, load_act: bool = True) -> int:
    """Cycles of ``run_matrix`` for n vectors: its commands back to back, from the first
    accept to the cycle ``busy`` falls."""
    return timeline(cfg, matrix_commands(cfg, out_features, in_features, col_bytes, n_vectors,
                                         load_act), rate).cycles


def command_actions(cfg: HwConfig, out_features: int, in_features: int, nnz_trits: int,
                    col_bytes: np.ndarray, cycles: int, load_act: bool = True):
    """The actions of one command: the depth-D datapath's (``fastmodel.command_actions``:
    the inserted zero planes are zero trits, skipped) with the stream's own bytes."""
    a = fastmodel.command_actions(cfg, out_features, in_features, nnz_trits, load_act)
    return dataclasses.replace(a, cycles=int(cycles), weight_bytes=int(np.sum(col_bytes)))


def run_matrix(cfg: HwConfig, t: TritTensor, xq, rate, load_act: bool = True) -> MatrixRun:
    """Run n int8 activation vectors (n, in_pad) through a variable-depth matrix (or a
    uniform one, every group at its depth) on the variable-depth engine at W = ``rate``:
    exact accumulators (equal to ``codec.golden.accumulators``), the cycles of the
    ceil(n / T) commands back to back, their actions."""
    if t.depth != cfg.depth:
        raise TritforgeError(f"matrix base depth d={t.depth} does not match the config's d={cfg.depth}")
    gd = t.group_depth if t.variable else np.full(t.k.shape, t.depth, np.uint8)
    p = fastmodel.prepare(t)
    return run_prepared(cfg, p, column_bytes(cfg, gd), xq, rate, t.q.shape[0], load_act)


def run_prepared(cfg: HwConfig, p, col_bytes: np.ndarray, xq, rate, out_features: int,
                 load_act: bool = True) -> MatrixRun:
    cfg.check_shape(out_features, p.in_padded)
    single = np.ndim(xq) == 1
    x = fastmodel._check_xq(np.asarray(xq)[None] if single else xq, p.in_padded)
    n = x.shape[0]
    n_cmd = fastmodel.commands(cfg, n)
    if not load_act and n_cmd > 1:
        raise TritforgeError(f"load_act=False reuses the activation buffer of one command "
                             f"(T={cfg.vectors} vectors), but {n} vectors were given")
    acc = fastmodel.accumulators(p, x)[:, :out_features]
    cyc = run_cycles(cfg, out_features, p.in_padded, col_bytes, n, rate, load_act)
    first = command_actions(cfg, out_features, p.in_padded, p.nnz_trits, col_bytes, 0, load_act)
    actions = first + command_actions(cfg, out_features, p.in_padded, p.nnz_trits, col_bytes, 0,
                                      True).scaled(n_cmd - 1)
    actions = dataclasses.replace(actions, cycles=cyc)
    return MatrixRun(acc=acc[0] if single else acc, cycles=cyc, actions=actions, commands=n_cmd,
                     ideal_cycles=fastmodel.ideal_cycles(cfg, out_features, p.in_padded, n))


@dataclass
class StreamRun:
    """One command from a variable-depth stream: what the engine computes and when."""

    acc: np.ndarray        #: int64 (T, out_features)
    issue: np.ndarray      #: per column, the cycle the issue stage accepts it (from the take)
    last_result: int       #: the cycle the command's last result is valid (from the take)
    err: bool
    err_cycle: int         #: the first cycle err is high (from the take), -1 if never


def run_stream(cfg: HwConfig, data: np.ndarray, mantissa, left_shift, xq, out_features: int,
               in_features: int, rate) -> StreamRun:
    """One command (T vectors) from the packed variable-depth stream, timed from the cycle
    the issue side takes it (cycle 0, the memory's first cycle): what the gearbox reads
    (``layout.scan_var_columns``: invalid bytes as zero trits), the accumulators of the
    depth-D beats it builds, the issue cycles, the last result and ``err``. A stream shorter
    than its columns never completes: refused (the engine would wait for it)."""
    rho, port = beat_rate(cfg, rate), port_bytes(cfg, rate)
    ng = fastmodel._groups(in_features)
    tiles = cfg.tiles(out_features)
    n = tiles * ng
    s = layout.scan_var_columns(data, n, cfg.depth, cfg.rows)
    if s["truncated"] >= 0:
        raise TritforgeError(f"variable-depth stream: column {s['truncated']} runs past the end of "
                             f"its {np.asarray(data).size} bytes; the engine would wait for the rest")
    q = layout.var_column_levels(data, s["starts"], s["depth"], cfg.depth, cfg.rows)
    q = q.reshape(tiles, ng, cfg.rows, layout.GROUP).transpose(0, 2, 1, 3).reshape(tiles * cfg.rows, ng * layout.GROUP)
    k = np.clip(s["index"], 0, layout.CODEBOOK_SIZE - 1).reshape(tiles, ng, cfg.rows).transpose(0, 2, 1)
    k = k.reshape(tiles * cfg.rows, ng).astype(np.uint8)
    p = fastmodel.prepare_levels(q, k, mantissa, left_shift, cfg.depth)
    x = fastmodel._check_xq(xq, p.in_padded)
    if x.shape[0] != cfg.vectors:
        raise TritforgeError(f"activations: {x.shape[0]} vectors, expected T={cfg.vectors}")
    ci = issue_cycles(complete_cycles(np.diff(s["starts"]), rho, port) + built_config(cfg, rate).gearbox_cycles,
                      cfg.vectors, 1)
    bad = np.flatnonzero(s["bad"])
    return StreamRun(acc=fastmodel.accumulators(p, x)[:, :out_features], issue=ci,
                     last_result=int(ci[-1]) + cfg.vectors + cfg.pipeline_stages - 1,
                     err=bool(bad.size), err_cycle=int(ci[bad[0]]) + 1 if bad.size else -1)
