"""Per-cycle stepping model of the variable-depth engine's RUN (hw/ENGINE.md "Variable-depth stream").

One command of T vectors, from the cycle the issue side takes it (cycle 0, the memory's
first cycle). Each cycle, in this order:

1. the memory: if its ``valid`` is high this cycle, ``floor(m rho)`` beats of P bytes are
   delivered after m valid cycles (``varmodel.beat_rate``, ``varmodel.port_bytes``; the
   last beat partial), into the word FIFO (never full here, as in ``sim.varmodel``);
2. the gearbox: the next column's header bytes (its first ``layout.var_header_bytes(R)``)
   are in the FIFO -> its length from the depth trits (an invalid byte reads as zero
   trits); once all its bytes are in, it is assembled (at most one column a cycle): its
   planes become a depth-D beat (zero planes inserted) with its ``err`` flag, ready for
   the issue stage ``HwConfig.gearbox_cycles`` cycles later, and leave the FIFO;
3. the issue stage: it accepts the oldest ready beat once the beat before it has had its
   T uses (cycle >= its acceptance + T; the first beat from cycle 1); use v of a beat
   accepted in cycle c is in cycle c + v and the result beat of a tile's last column for
   vector v is valid in cycle c + v + pipeline_stages; an accepted beat with its flag set
   raises ``err`` from the next cycle.

The beat's arithmetic is done per (row, group, vector) from its levels, the group dot and
the shifted scale product, as ``codec.golden`` defines it (no float shortcut), so this
model is independent of ``sim.varmodel``'s closed forms; ``tests/test_varmodel.py`` holds
the two equal cycle for cycle.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..codec import layout
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .varmodel import StreamRun, beat_rate, built_config, port_bytes


@dataclass
class _Beat:
    column: int
    ready: int
    q: np.ndarray      #: (R, 16) depth-D levels
    k: np.ndarray      #: (R,) codebook indices
    bad: bool


def step_stream(cfg: HwConfig, data: np.ndarray, mantissa, left_shift, xq, out_features: int,
                in_features: int, rate, valid=None, max_cycles: int = 10 ** 7) -> StreamRun:
    """Step one command through the engine; ``valid(cycle) -> bool`` gates the memory
    (default: always valid). Returns what ``varmodel.run_stream`` returns."""
    rho, port = beat_rate(cfg, rate), port_bytes(cfg, rate)
    G = built_config(cfg, rate).gearbox_cycles
    R, T, S, D = cfg.rows, cfg.vectors, cfg.pipeline_stages, cfg.depth
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    ng = -(-in_features // layout.GROUP)
    tiles = cfg.tiles(out_features)
    n_cols = tiles * ng
    x = np.asarray(xq, dtype=np.int64)
    if x.shape != (T, ng * layout.GROUP):
        raise TritforgeError(f"activations: shape {x.shape}, expected ({T}, {ng * layout.GROUP})")
    m = np.asarray(mantissa, dtype=np.int64)
    sh = np.asarray(left_shift, dtype=np.int64)
    hb = layout.var_header_bytes(R)
    acc = np.zeros((T, tiles * R), dtype=np.int64)
    issue = np.full(n_cols, -1, dtype=np.int64)
    last_result, err_cycle = -1, -1
    delivered, valid_cycles = 0, 0
    col, start, length = 0, 0, None          # the gearbox's next column, its first byte, bytes
    ready: deque[_Beat] = deque()
    next_accept = 1                          # the issue stage: the first beat from cycle 1
    accepted = 0
    for cycle in range(max_cycles):
        # 1. memory
        if valid is None or valid(cycle):
            valid_cycles += 1
            delivered = min(data.size, valid_cycles * rho.numerator // rho.denominator * port)
        # 2. gearbox: at most one column a cycle
        if col < n_cols:
            if length is None and delivered >= start + hb:
                head = layout.scan_var_columns(data[start:start + hb], 1, D, R)
                length = int(layout.var_column_bytes(head["depth"][0]))
            if length is not None and delivered >= start + length:
                piece = data[start:start + length]
                s = layout.scan_var_columns(piece, 1, D, R)
                q = layout.var_column_levels(piece, s["starts"], s["depth"], D, R)[0]
                k = np.clip(s["index"][0], 0, layout.CODEBOOK_SIZE - 1)
                ready.append(_Beat(col, cycle + G, q, k, bool(s["bad"][0])))
                col, start, length = col + 1, start + length, None
        if (col < n_cols and delivered >= data.size
                and (start + hb > data.size or (length is not None and start + length > data.size))):
            raise TritforgeError(f"variable-depth stream: column {col} runs past the end of its "
                                 f"{data.size} bytes; the engine would wait for the rest")
        # 3. issue stage
        if ready and cycle >= next_accept and ready[0].ready <= cycle:
            b = ready.popleft()
            issue[b.column] = cycle
            next_accept = cycle + T
            tile, g = divmod(b.column, ng)
            xs = x[:, g * layout.GROUP:(g + 1) * layout.GROUP]             # (T, 16)
            dots = xs @ b.q.astype(np.int64).T                              # (T, R)
            acc[:, tile * R:(tile + 1) * R] += (m[b.k] * dots) << sh[b.k]
            if b.bad and err_cycle < 0:
                err_cycle = cycle + 1
            accepted += 1
            if accepted == n_cols:
                last_result = cycle + T - 1 + S
                break
    if accepted < n_cols:
        raise TritforgeError(f"variable-depth stream: {accepted} of {n_cols} columns issued in "
                             f"{max_cycles} cycles (a stream shorter than its columns)")
    return StreamRun(acc=acc[:, :out_features], issue=issue, last_result=last_result,
                     err=err_cycle >= 0, err_cycle=err_cycle)
