"""A whole matrix through the per-cycle stepping model, as a host would send it.

The counterpart of ``fastmodel.run_matrix`` for the reference model: the activations are
cut into commands of T vectors (the last one padded with zero vectors), the commands are
played back to back by ``stepmodel.JobDriver`` with the chosen valid/ready probabilities,
and the result beats are gathered back into accumulators. With ``p_valid = p_ready = 1``
the cycle count equals ``fastmodel.timeline``'s (``tests/test_simulate.py``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..codec import layout
from ..errors import TritforgeError
from ..codec.quantize import TritTensor
from ..hwconfig import HwConfig
from . import fastmodel, stepmodel


@dataclass
class StepRun:
    acc: np.ndarray            #: (n, out_features) int64, real rows and vectors only
    cycles: int                #: the first command's accept .. the cycle busy falls, exclusive
    total_cycles: int          #: every simulated cycle, codebook loads and idle included
    seconds: float             #: wall time of the simulation


def run_matrix(cfg: HwConfig, t: TritTensor, xq: np.ndarray, *, load_act: bool = True,
               p_valid: float = 1.0, p_ready: float = 1.0, seed: int = 0,
               max_cycles: int = 50_000_000) -> StepRun:
    """Run ``xq`` (n, in_pad) int8 through the stepping model of the engine for ``t``.

    ``load_act=False`` first plays one command that fills the activation buffer and then
    measures commands that reuse it (only meaningful for n <= T).
    """
    if t.depth != cfg.depth:
        raise TritforgeError(f"matrix depth d={t.depth}, hardware depth d={cfg.depth}")
    if not (0 < p_valid <= 1 and 0 < p_ready <= 1):
        raise TritforgeError(f"p_valid={p_valid}, p_ready={p_ready}: expected probabilities in (0, 1]")
    out, in_pad = t.q.shape
    cfg.check_shape(out, in_pad)
    xq = np.asarray(xq, dtype=np.int8).reshape(-1, in_pad)
    n, T, ng, tiles = xq.shape[0], cfg.vectors, t.groups, cfg.tiles(out)
    xp = np.zeros((-(-n // T) * T, in_pad), dtype=np.int8)
    xp[:n] = xq
    beats = [int.from_bytes(b.tobytes(), "little")
             for b in layout.stream_beats(t.q, t.k, cfg.depth, cfg.rows).reshape(-1, cfg.beat_bytes)]
    mant, shift = [int(m) for m in t.codebook.mantissa], [int(s) for s in t.codebook.left_shift]

    def words(c0):
        return [layout.pack_activation_group(xp[c0 + v, 16 * g:16 * g + 16])
                for v in range(T) for g in range(ng)]

    model = stepmodel.StepModel(cfg)
    if not load_act:               # fill the buffer first, with a command of its own
        fill = stepmodel.JobDriver(cfg, [stepmodel.Job(mant, shift, words(0), beats, ng - 1,
                                                       tiles - 1, True)])
        stepmodel.run(model, fill, max_cycles)
        while model.busy:
            model.step(stepmodel.Inputs())
    jobs = []
    for c0 in range(0, xp.shape[0], T):
        load = load_act or c0 > 0
        jobs.append(stepmodel.Job(mant, shift, words(c0) if load else [], beats, ng - 1,
                                  tiles - 1, load, codebook=c0 == 0))
    driver = stepmodel.JobDriver(cfg, jobs, seed=seed, p_valid=p_valid, p_ready=p_ready)
    accepts, lasts = [], []
    t0 = time.perf_counter()
    while not driver.done:
        if driver.cycle >= max_cycles:
            raise TritforgeError(f"stepping model: not done after {max_cycles} cycles")
        inp = driver.inputs()
        o = model.step(inp)
        if inp.cmd_valid and o.cmd_ready:
            accepts.append(driver.cycle)
        if o.res_valid and inp.res_ready and o.res_last:
            lasts.append(driver.cycle)
        driver.observe(inp, o)
    seconds = time.perf_counter() - t0
    # from the first accept to the cycle busy falls after the last result
    cycles = lasts[-1] + 1 + fastmodel.END_CYCLES - accepts[0]
    acc = np.zeros((xp.shape[0], tiles * cfg.rows), dtype=np.int64)
    for c, beats_out in enumerate(driver.results):
        for i, (v, a, _) in enumerate(beats_out):
            tile = i // T
            acc[c * T + v, tile * cfg.rows:(tile + 1) * cfg.rows] = a
    return StepRun(acc[:n, :out], cycles, driver.cycle, seconds)
