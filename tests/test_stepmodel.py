"""The per-cycle stepping model (sim/stepmodel.py) equals the RTL in every cycle, and the
golden reference in its results.

* RTL (Amaranth simulator) vs model: every output compared every cycle, under random
  valid/ready patterns on every stream, garbage payloads on idle cycles, resets at random
  cycles, several jobs back to back (cycle-exact).
* Model alone: larger matrices against codec.golden, the timing of hw/ENGINE.md, and the
  vectorized model's cycle count (sim.fastmodel) for the same jobs.
* The model imports neither hw/ nor Amaranth.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tritforge.errors import TritforgeError
from tritforge.hw.engine import GemvEngine
from tritforge.hw.simdriver import OUTPUT_FIELDS, EngineSim
from tritforge.hwconfig import FIFO_DEPTH, HwConfig
from tritforge.sim.stepmodel import Inputs, JobDriver, StepModel, make_job, run


def random_jobs(cfg: HwConfig, rng, n: int, out: int, in_pad: int):
    jobs, exps = [], []
    last_xq = None                 # the buffer's contents: the first job always loads it
    for j in range(n):
        q = rng.integers(-cfg.level, cfg.level + 1, size=(out, in_pad)).astype(np.int8)
        q[rng.random(q.shape) < 0.3] = 0
        k = rng.integers(0, 27, size=(out, in_pad // 16)).astype(np.uint8)
        xq = rng.integers(-127, 128, size=(cfg.vectors, in_pad)).astype(np.int8)
        mant = rng.integers(0, 2 ** cfg.mant_bits, size=27)
        shift = rng.integers(0, cfg.shift_limit + 1, size=27)
        job, exp = make_job(cfg, q, k, xq, mant, shift, load_act=(j == 0 or bool(rng.random() < 0.5)))
        if not job.load_act:       # reuse: expected results use the buffer of the last load
            job, exp = make_job(cfg, q, k, last_xq, mant, shift, load_act=False)
        else:
            last_xq = xq
        jobs.append(job)
        exps.append(exp)
    return jobs, exps


def assert_model_replays(cfg, rtl):
    """Replays the very same inputs into the model and compares every output of every
    cycle with the RTL's."""
    model = StepModel(cfg)
    for n, (inp, out) in enumerate(rtl):
        got = model.step(inp)
        for name in OUTPUT_FIELDS:
            assert getattr(got, name) == out[name], f"cycle {n}: {name} model {getattr(got, name)} rtl {out[name]}"


CYCLE_CASES = [(1, 1, 1, 0.5, 0.5), (2, 4, 1, 0.8, 0.3), (2, 4, 2, 0.6, 0.7),
               (3, 1, 2, 0.9, 0.9), (4, 4, 2, 0.4, 0.6)]


@pytest.mark.parametrize("depth,rows,vectors,p_valid,p_ready", CYCLE_CASES,
                         ids=[f"d{c[0]}-R{c[1]}-T{c[2]}" for c in CYCLE_CASES])
def test_model_equals_rtl_every_cycle(depth, rows, vectors, p_valid, p_ready):
    cfg = HwConfig(depth=depth, rows=rows, vectors=vectors, max_in_features=64, max_out_features=16)
    rng = np.random.default_rng(depth * 7 + rows * 3 + vectors)
    jobs, exps = random_jobs(cfg, rng, 3, out=2 * rows + 1, in_pad=48)
    resets = tuple(int(c) for c in rng.integers(20, 200, size=2))
    seed = int(rng.integers(1 << 30))
    drv = JobDriver(cfg, jobs, seed=seed, p_valid=p_valid, p_ready=p_ready, reset_cycles=resets)
    rtl = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=6000)
    assert drv.done and drv.results == exps
    assert_model_replays(cfg, rtl)


@pytest.mark.parametrize("depth,rows,vectors", [(1, 4, 1), (2, 16, 4), (4, 8, 2)])
def test_model_matches_golden_larger(depth, rows, vectors):
    cfg = HwConfig(depth=depth, rows=rows, vectors=vectors, max_in_features=576)
    rng = np.random.default_rng(depth + rows)
    jobs, exps = random_jobs(cfg, rng, 2, out=3 * rows - 1, in_pad=576)
    drv = JobDriver(cfg, jobs, seed=2, p_valid=0.9, p_ready=0.7)
    run(StepModel(cfg), drv)
    assert drv.results == exps


@pytest.mark.parametrize("vectors,load_act", [(1, True), (2, False), (4, True)])
def test_cycles_match_engine_md_and_fast_model(vectors, load_act):
    """Always-valid streams, always-ready results: cmd accept (cycle 0) to last result accepted,
    inclusive, equals the vectorized model's count."""
    from tritforge.sim import fastmodel

    cfg = HwConfig(depth=2, rows=4, vectors=vectors, max_in_features=256)
    rng = np.random.default_rng(vectors)
    out, in_pad = 10, 80
    q = rng.integers(-4, 5, size=(out, in_pad)).astype(np.int8)
    k = rng.integers(0, 27, size=(out, 5)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(vectors, in_pad)).astype(np.int8)
    job, exp = make_job(cfg, q, k, xq, np.full(27, 4095), np.zeros(27, int), load_act=load_act)
    model = StepModel(cfg)
    if not load_act:                     # the buffer must hold xq: load it with a first job
        first, _ = make_job(cfg, q, k, xq, np.full(27, 4095), np.zeros(27, int))
        run(model, JobDriver(cfg, [first]))
    drv = JobDriver(cfg, [job])
    trace = run(model, drv)
    assert drv.results == [exp]
    cmd = next(n for n, (i, o) in enumerate(trace) if i.cmd_valid and o.cmd_ready)
    last = next(n for n, (i, o) in enumerate(trace) if o.res_valid and o.res_last and i.res_ready)
    # busy falls two cycles after the last result is accepted; cmd.ready is high again
    # as soon as the command runs (the front end takes the next one while it streams)
    after = [o for _, o in trace[last + 1:]] + [model.step(Inputs()) for _ in range(2)]
    assert after[0].busy and not after[1].busy and after[0].cmd_ready
    run_from = next(n for n, (i, o) in enumerate(trace) if i.w_valid and o.w_ready)
    assert trace[run_from][1].cmd_ready and not trace[cmd + 1][1].cmd_ready
    assert last - cmd + 2 == fastmodel.command_cycles(cfg, out, in_pad, load_act)
    beats = len(job.beats)
    loads = vectors * 5 if load_act else 0
    assert last - cmd + 1 == 2 + (loads + 1 if load_act else 0) + beats * vectors + cfg.pipeline_stages


def test_outputs_do_not_change_state():
    cfg = HwConfig(depth=1, rows=1)
    m = StepModel(cfg)
    a = m.outputs(Inputs(cmd_valid=True, res_ready=True))
    b = m.outputs(Inputs(cmd_valid=True, res_ready=True))
    assert a == b and a.cmd_ready and not a.busy
    m.step(Inputs(cmd_valid=True, last_group=0, last_tile=0, load_act=False))
    assert m.outputs(Inputs()).busy


def test_model_imports_neither_hw_nor_amaranth():
    code = ("import sys, tritforge.sim.stepmodel; "
            "bad = [m for m in sys.modules if m == 'tritforge.hw' "
            "or m.startswith(('amaranth', 'tritforge.hw.'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_config_and_runaway():
    with pytest.raises(TritforgeError):
        StepModel({"depth": 2})
    cfg = HwConfig(depth=1, rows=1, max_in_features=16)
    job, _ = make_job(cfg, np.zeros((1, 16), np.int8), np.zeros((1, 1), np.uint8),
                      np.zeros((1, 16), np.int8), np.ones(27, int), np.zeros(27, int))
    with pytest.raises(TritforgeError, match="not done"):
        run(StepModel(cfg), JobDriver(cfg, [job], p_ready=0.0), max_cycles=200)


def test_result_fifo_fills_and_res_ready_reaches_no_other_output():
    """hw/ENGINE.md: the advance is "a push fits in the result FIFO next cycle even if
    nothing is popped"; res.ready only pops it. With res.ready low the FIFO fills with
    FIFO_DEPTH beats and everything holds; no output of a cycle depends on that cycle's
    res.ready; released, every result arrives intact."""
    cfg = HwConfig(depth=1, rows=1, max_in_features=32, max_out_features=8)
    rng = np.random.default_rng(11)
    q = rng.integers(-1, 2, size=(5, 32)).astype(np.int8)
    k = rng.integers(0, 27, size=(5, 2)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(1, 32)).astype(np.int8)
    job, exp = make_job(cfg, q, k, xq, rng.integers(0, 4096, size=27), rng.integers(0, 16, size=27))
    model = StepModel(cfg)
    drv = JobDriver(cfg, [job], p_ready=0.0)
    for _ in range(120):
        inp = drv.inputs()
        flipped = Inputs(**{**vars(inp), "res_ready": not inp.res_ready})
        assert model.outputs(flipped) == model.outputs(inp)
        drv.observe(inp, model.step(inp))
    held = model.outputs(Inputs())
    assert model.count == FIFO_DEPTH and held.res_valid and not held.w_ready
    assert not drv.results[0]
    drv.p_ready = 1.0
    run(model, drv)
    assert drv.results == [exp]


@pytest.mark.parametrize("rows,vectors,seed", [(4, 2, 4), (8, 2, 5), (3, 1, 6)])
def test_short_commands_back_to_back_under_stalls(rows, vectors, seed):
    """Many short commands back to back, some sharing the codebook of the one before, under
    stalls and back-pressure: several commands in the pipeline and the result FIFO at once.
    The RTL equals the model every cycle (busy counts every command out) and the results
    equal the golden reference."""
    cfg = HwConfig(depth=2, rows=rows, vectors=vectors, max_in_features=128, max_out_features=32)
    rng = np.random.default_rng(seed)
    jobs, exps = [], []
    for j in range(10):
        o, i = int(rng.integers(1, 20)), 16 * int(rng.integers(1, 5))
        q = rng.integers(-4, 5, size=(o, i)).astype(np.int8)
        k = rng.integers(0, 27, size=(o, i // 16)).astype(np.uint8)
        x = rng.integers(-127, 128, size=(vectors, i)).astype(np.int8)
        share = j % 3 != 0
        mant = jobs[-1].mantissa if share else rng.integers(0, 4096, 27)
        shift = jobs[-1].shift if share else rng.integers(0, 16, 27)
        job, exp = make_job(cfg, q, k, x, mant, shift)
        job.codebook = not share
        jobs.append(job)
        exps.append(exp)
    drv = JobDriver(cfg, jobs, seed=seed, p_valid=0.6, p_ready=0.5)
    rtl = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=20000)
    assert drv.done and drv.results == exps
    assert_model_replays(cfg, rtl)


@pytest.mark.parametrize("vectors", [1, 2])
def test_reset_in_run_then_a_command_without_load(vectors):
    """A reset in the RUN of a command that reuses the buffer: played again after the reset
    (taken in its start cycle, the issue side being idle) it reads the bank the last
    completed LOAD wrote, which the reset keeps; RTL and model agree every cycle."""
    cfg = HwConfig(depth=2, rows=4, vectors=vectors, max_in_features=64, max_out_features=16)
    rng = np.random.default_rng(vectors)
    q = rng.integers(-4, 5, size=(9, 48)).astype(np.int8)
    k = rng.integers(0, 27, size=(9, 3)).astype(np.uint8)
    x = rng.integers(-127, 128, size=(vectors, 48)).astype(np.int8)
    mant, shift = rng.integers(0, 4096, 27), rng.integers(0, 16, 27)
    jobs, exps = zip(make_job(cfg, q, k, x, mant, shift),
                     make_job(cfg, q, k, x, mant, shift, load_act=False))
    trace = run(StepModel(cfg), JobDriver(cfg, list(jobs), overlap=False))
    beats = [n for n, (i, o) in enumerate(trace) if i.w_valid and o.w_ready]
    reset_at = beats[len(jobs[0].beats) + 2]          # in the second command's RUN
    drv = JobDriver(cfg, list(jobs), overlap=False, reset_cycles=(reset_at,))
    rtl = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=5000)
    assert drv.done and drv.results == list(exps)
    assert_model_replays(cfg, rtl)
