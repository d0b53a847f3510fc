"""cocotb test module: the GEMV engine bench (hw/ENGINE.md) played by ``tritforge run
--rtl-sample`` and the test suite, composed of :mod:`tritforge.hw.verif`.

Run it with ``sim.cosim.run(build, "tritforge.hw.verif.bench_engine", ...)`` on a build of
the Verilog ``tritforge generate`` writes. Parameters arrive as JSON in the environment
variable ``TRITFORGE_COSIM_PARAMS``:

``sidecar``    path of the build's sidecar JSON (the bench reads HwConfig and payload
               fields from it);
``vectors``    path of a vector set (``codec.vectors``); ``cases``: the case names to play;
``seed``       seeds the stall generators and the reset / error tests;
``model``      compare ``sim.stepmodel.StepModel`` with the RTL every cycle (default true);
``report``     optional path: a JSON of per-case cycles and wall time is written there.

Tests:

* ``vector_cases`` — every case under its stall pattern: result beats against the golden
  accumulators (vector and last fields too); without stalls, the exact cycle count
  against the cycle model's; with ``model``, every output of every cycle against the
  stepping model;
* ``reset_mid_transfer`` — a synchronous reset at random cycles of LOAD and RUN under
  stalls: back to idle, then the command runs clean (after a reset in RUN without
  reloading: the activation buffer is kept);
* ``invalid_byte`` — a weight byte >= 243 sets the sticky ``err`` (its trits count as 0)
  until the next command;
* ``back_to_back`` — every case's commands in one stream, each case's codebook in the
  other bank (hw/ENGINE.md "Back to back"), no stalls: result beats against the golden
  accumulators, the stream's cycles against ``sim.fastmodel.timeline``, no gap between
  the beats of consecutive commands where the timeline has none; with ``model``, every
  output of every cycle against the stepping model.
"""
from __future__ import annotations

import json
import os
import random
import time

import cocotb
import numpy as np

from ...codec import golden, layout, vectors
from ...hwconfig import HwConfig
from ...sim import fastmodel
from .engine import EngineBfm
from .scoreboard import Scoreboard

PARAMS_ENV = "TRITFORGE_COSIM_PARAMS"


def params() -> dict:
    return json.loads(os.environ[PARAMS_ENV])


def _bfm(dut, p: dict) -> EngineBfm:
    return EngineBfm(dut, p["sidecar"], model=bool(p.get("model", True)))


def _cases(p: dict) -> list:
    return list(vectors.read_set(p["vectors"], p.get("cases")))


def _busy_case(p: dict):
    """The case the reset and error tests replay: a dense one (every lane matters), small."""
    cases = _cases(p)
    dense = [c for c in cases if c.name.startswith("dense")]
    return min(dense or cases, key=lambda c: c.tiles * c.groups)


def _padded(case, xq) -> np.ndarray:
    T = case.vectors
    x = np.zeros((T, case.tensor.in_padded), dtype=np.int8)
    x[:xq.shape[0]] = xq
    return x


IDLE = {"busy": 0, "err": 0, "cmd_ready": 1, "act_ready": 0, "w_ready": 0, "res_valid": 0}


@cocotb.test()
async def vector_cases(dut):
    """Every listed case of the vector set, with its stall pattern."""
    p = params()
    seed = int(p.get("seed", 0))
    bfm = _bfm(dut, p)
    sb = Scoreboard(bfm.cfg)
    await bfm.reset()
    report = []
    for i, case in enumerate(_cases(p)):
        if case.hwconfig and HwConfig.from_dict(case.hwconfig) != bfm.cfg:
            raise AssertionError(f"case {case.name} was written for another config")
        bfm.set_stalls(case.stalls, seed + 1000 * i)
        c0, t0 = bfm.bench.cycle, time.perf_counter()
        run = await bfm.run_case(case)
        sb.check_case(case, run, cycles=bfm.quiet)
        report.append({"case": case.name, "cycles": run.cycles, "sim_cycles": bfm.bench.cycle - c0,
                       "seconds": time.perf_counter() - t0, "stalls": case.stalls})
    if p.get("report"):
        with open(p["report"], "w") as f:
            json.dump({"model": bfm.checker is not None, "cases": report}, f, indent=1)


@cocotb.test()
async def reset_mid_transfer(dut):
    """Reset during LOAD and during RUN (random cycles, random stalls): back to idle, then clean runs."""
    p = params()
    seed = int(p.get("seed", 0))
    rng = random.Random(seed)
    case = _busy_case(p)
    T = case.vectors
    x, e = _padded(case, case.xq[:T]), case.expected[:T]
    bfm = _bfm(dut, p)
    sb = Scoreboard(bfm.cfg)
    await bfm.reset()
    for attempt in range(3):
        bfm.set_stalls({"idle": 0.2, "bp": 0.3, "burst": 2}, seed + attempt)
        for phase in ("load", "run"):
            await bfm.load_codebook(case.codebook_words())
            bfm.cmd.send([bfm.cmd_word(case.groups, case.tiles, True)])
            bfm.act.send(case.act_words(x))
            bfm.w.send(case.beat_words())
            if phase == "load":
                await bfm.bench.run_until(lambda: int(dut.act__ready.value) == 1, 5000, "reach LOAD")
                await bfm.bench.cycles(rng.randrange(0, max(1, T * case.groups)))
            else:
                await bfm.bench.run_until(lambda: len(bfm.w.accepted) > 0, 20000, "reach RUN")
                await bfm.bench.cycles(rng.randrange(0, max(1, case.tiles * case.groups * T + 8)))
            await bfm.reset_now(rng.randint(1, 2))
            await bfm.bench.step()
            state = bfm.flags()
            assert state == IDLE, f"reset in {phase} (attempt {attempt}): not idle after reset: {state}"
            bfm.res.items.clear()
            if phase == "run":       # the buffer is kept: rerun without loading
                run = await bfm.command(case.groups, case.tiles, load_act=False, beats=case.beat_words())
            else:
                await bfm.load_codebook(case.codebook_words())
                run = await bfm.command(case.groups, case.tiles, act_words=case.act_words(x),
                                        beats=case.beat_words())
            sb.check_command(f"after a reset in {phase} (attempt {attempt})", run.beats, e, case.tiles)


@cocotb.test()
async def invalid_byte(dut):
    """A weight byte >= 243 sets the sticky err flag (its trits count as 0) until the next command."""
    p = params()
    rng = random.Random(int(p.get("seed", 0)) + 5)
    case = _busy_case(p)
    T, R = case.vectors, case.rows
    x = _padded(case, case.xq[:T])
    bfm = _bfm(dut, p)
    sb = Scoreboard(bfm.cfg)
    await bfm.reset()
    beats = case.beats.copy()
    ti, gi, bi = rng.randrange(case.tiles), rng.randrange(case.groups), rng.randrange(beats.shape[2])
    beats[ti, gi, bi] = rng.randrange(layout.BYTE_LIMIT, 256)
    clean = np.where(beats >= layout.BYTE_LIMIT, 121, beats)       # 121: five zero trits
    q, k = layout.decode_stream(clean, case.tensor.depth, R)
    q = q.transpose(0, 2, 1, 3).reshape(case.tiles * R, -1)[:case.out_features]
    k = k.transpose(0, 2, 1).reshape(case.tiles * R, -1)[:case.out_features]
    want = golden.accumulate(golden.group_dots(q, x), k, case.tensor.codebook.mantissa,
                             case.tensor.codebook.left_shift)
    words = [int.from_bytes(b.tobytes(), "little") for b in beats.reshape(-1, beats.shape[2])]
    assert int(dut.err.value) == 0
    await bfm.load_codebook(case.codebook_words())
    run = await bfm.command(case.groups, case.tiles, act_words=case.act_words(x), beats=words)
    sb.check_command("command with an invalid byte", run.beats, want, case.tiles)
    assert int(dut.err.value) == 1, "err not set (or not sticky) after a byte >= 243"
    run = await bfm.command(case.groups, case.tiles, act_words=case.act_words(x), beats=case.beat_words())
    sb.check_command("command after the invalid byte", run.beats, case.expected[:T], case.tiles)
    assert int(dut.err.value) == 0, "err not cleared by the next command"


@cocotb.test()
async def back_to_back(dut):
    """Every case's commands in one stream (module docstring)."""
    p = params()
    bfm = _bfm(dut, p)
    sb = Scoreboard(bfm.cfg)
    await bfm.reset()
    cases = _cases(p)
    jobs, cmds, owners = [], [], []
    for case in cases:
        for j, job in enumerate(bfm.case_jobs(case)):
            jobs.append(job)
            cmds.append(fastmodel.Command(case.out_features, case.tensor.in_padded, True,
                                          codebook=j == 0))
            owners.append((case, j))
    first_beat = len(bfm.w.accepted)
    runs, cycles = await bfm.stream(jobs)
    T = bfm.cfg.vectors
    for (case, j), run in zip(owners, runs):
        sb.check_command(f"case {case.name}, command {j} (back to back)", run.beats,
                         case.expected[j * T:(j + 1) * T], case.tiles)
    tl = fastmodel.timeline(bfm.cfg, cmds)
    sb.check_cycles("the stream of every case", cycles, tl.cycles)
    taken = bfm.w.accepted[first_beat:]
    starts = np.cumsum([0] + [len(job.beats) for job in jobs])
    for j in range(1, len(jobs)):
        want = tl.first_beat[j] - tl.last_beat[j - 1]
        got = taken[starts[j]] - taken[starts[j] - 1]
        if got != want:
            raise AssertionError(f"command {j}: its first beat {got} cycles after the last "
                                 f"beat before it, the timeline says {want}")
    gapless = sum(tl.first_beat[j] - tl.last_beat[j - 1] == T for j in range(1, len(jobs)))
    dut._log.info(f"back to back: {len(jobs)} commands in {cycles} cycles (timeline "
                  f"{tl.cycles}), {gapless} of them without a gap")
