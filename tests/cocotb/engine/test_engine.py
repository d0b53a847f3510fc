"""cocotb bench of the GEMV engine (hw/engine.py, contract hw/ENGINE.md) on Verilator.

The design is the Verilog ``tritforge generate`` writes (hw/verilog.py); its JSON sidecar
gives the bench the HwConfig and every payload's bit fields (no hw import here).
Parameters arrive as JSON in ``TRITFORGE_COSIM_PARAMS``:

``sidecar``    path of the build's sidecar JSON;
``vectors``    path of a vector set (``codec.vectors``) and ``cases``: the case names to play;
``seed``       for the reset / error tests;
``model``      compare ``sim.stepmodel.StepModel`` with the RTL every cycle (default true);
``report``     optional path: a JSON of per-case cycles and wall time is written there.

Scoreboard, per case (one or more commands of T vectors):

* every result beat against ``codec.golden`` (the vector file's expected accumulators;
  padded rows and padded vectors must be 0), in the order tile-major then vector, with
  ``vector`` and ``last`` fields checked;
* with no stalls (the case's stall pattern is all zero): the exact cycle count, command
  accept to last result accepted plus the end cycle before the engine is idle again
  (``fastmodel.END_CYCLES``), against the cycle model's count stored in the file;
* with stalls: the outputs, and, when ``model`` is on, every ready / valid / payload /
  err / busy of every cycle against the stepping model fed the same inputs.
"""
from __future__ import annotations

import json
import os
import random
import time

import cocotb
import numpy as np

from tb import TB, Pattern, sidecar_payloads
from tritforge.codec import layout, vectors
from tritforge.hwconfig import HwConfig
from tritforge.sim.fastmodel import END_CYCLES
from tritforge.sim.stepmodel import Inputs, StepModel

PARAMS = json.loads(os.environ["TRITFORGE_COSIM_PARAMS"])
with open(PARAMS["sidecar"]) as _f:
    SIDECAR = json.load(_f)
CFG = HwConfig.from_dict(SIDECAR["hwconfig"])
PAY = sidecar_payloads(SIDECAR)
SEED = int(PARAMS.get("seed", 0))
MODEL = bool(PARAMS.get("model", True))
T, R = CFG.vectors, CFG.rows


class EngineTB(TB):
    """The engine's streams bound by name, plus the per-cycle stepping-model check."""

    def __init__(self, dut, model: bool = MODEL):
        super().__init__(dut)
        self.cmd = self.source("cmd")
        self.cb = self.source("cb")
        self.act = self.source("act")
        self.w = self.source("w")
        self.res = self.sink("res")
        self.model = StepModel(CFG) if model else None
        self.mismatch: str | None = None
        self.cmd_accepts: list[int] = []
        self.last_beats: list[int] = []
        if self.model is not None:
            self.observers.append(self._compare)

    def patterns(self, stalls: dict, seed: int) -> None:
        pi, pb, burst = stalls.get("idle", 0.0), stalls.get("bp", 0.0), stalls.get("burst", 1)
        for n, s in enumerate((self.cmd, self.cb, self.act, self.w)):
            s.idle = Pattern(seed + n, pi, burst) if pi else None
        self.res.backpressure = Pattern(seed + 7, pb, burst) if pb else None

    # --- the stepping model, every cycle ----------------------------------------------
    def _inputs(self) -> Inputs:
        inp = Inputs(rst=self.rst_now, res_ready=bool(self.res._take))
        if self.cmd.offered is not None:
            c = PAY["cmd"].unpack(self.cmd.offered)
            inp.cmd_valid, inp.last_group, inp.last_tile = True, int(c["last_group"]), int(c["last_tile"])
            inp.load_act = bool(c["load_act"])
        if self.cb.offered is not None:
            c = PAY["cb"].unpack(self.cb.offered)
            inp.cb_valid, inp.cb_index = True, int(c["index"])
            inp.cb_mantissa, inp.cb_shift = int(c["mantissa"]), int(c["shift"])
        if self.act.offered is not None:
            inp.act_valid, inp.act_word = True, self.act.offered
        if self.w.offered is not None:
            inp.w_valid, inp.w_beat = True, self.w.offered
        return inp

    def _compare(self, cycle: int) -> None:
        dut = self.dut
        want = self.model.step(self._inputs())
        got = {"cmd_ready": int(dut.cmd__ready.value), "cb_ready": int(dut.cb__ready.value),
               "act_ready": int(dut.act__ready.value), "w_ready": int(dut.w__ready.value),
               "res_valid": int(dut.res__valid.value), "err": int(dut.err.value),
               "busy": int(dut.busy.value)}
        exp = {k: int(getattr(want, k)) for k in got}
        if got["res_valid"] and exp["res_valid"]:
            r = result(int(dut.res__payload.value))
            got["res"] = r
            exp["res"] = (tuple(int(a) for a in want.res_acc), int(want.res_vector), int(want.res_last))
        if got != exp and self.mismatch is None:
            diff = {k: (got.get(k), exp.get(k)) for k in set(got) | set(exp) if got.get(k) != exp.get(k)}
            self.mismatch = f"cycle {cycle}: RTL != stepping model (rtl, model): {diff}"

    def sample_extra(self):
        pass


def result(bits: int) -> tuple:
    c = PAY["res"].unpack(bits)
    return c["acc"], c["vector"], c["last"]


def cmd_word(ng: int, tiles: int, load_act: bool) -> int:
    return PAY["cmd"].pack({"last_group": ng - 1, "last_tile": tiles - 1, "load_act": int(load_act)})


def cb_words(case: vectors.VectorCase) -> list[int]:
    return [PAY["cb"].pack({"index": i, "mantissa": m, "shift": s}) for i, m, s in case.codebook_words()]


def expected_beats(expected: np.ndarray, tiles: int) -> list[tuple]:
    """Result beats of one command: (acc tuple, vector, last), tile-major then vector."""
    n, out = expected.shape
    full = np.zeros((T, tiles * R), dtype=np.int64)
    full[:n, :out] = expected
    beats = []
    for t in range(tiles):
        for v in range(T):
            beats.append((tuple(int(a) for a in full[v, t * R:(t + 1) * R]), v,
                          int(t == tiles - 1 and v == T - 1)))
    return beats


async def run_command(tb: EngineTB, case: vectors.VectorCase, xq: np.ndarray, expected: np.ndarray,
                      load_act: bool = True, beats: list[int] | None = None,
                      codebook: bool = True) -> int:
    """One command (up to T vectors); returns its cycles (accept to last result accepted,
    and the end cycle)."""
    ng, tiles = case.groups, case.tiles
    if codebook:
        tb.cb.send(cb_words(case))
        await tb.run_until(lambda: not tb.cb.queue, 100 + 100 * len(cb_words(case)), "codebook load")
    x = np.zeros((T, case.tensor.in_padded), dtype=np.int8)
    x[:xq.shape[0]] = xq
    first_res = len(tb.res.items)
    n_acc = len(tb.cmd.accepted)
    tb.cmd.send([cmd_word(ng, tiles, load_act)])
    if load_act:
        tb.act.send(case.act_words(x))
    tb.w.send(case.beat_words() if beats is None else beats)
    want = expected_beats(expected, tiles)
    limit = 50 * (len(want) + tiles * ng * T + T * ng) + 1000
    await tb.run_until(lambda: len(tb.res.items) > first_res and result(tb.res.items[-1][1])[2],
                       limit, f"case {case.name}")
    if tb.mismatch:
        raise AssertionError(f"case {case.name}: {tb.mismatch}")
    got = [result(p) for _, p in list(tb.res.items)[first_res:]]
    assert len(got) == len(want), f"case {case.name}: {len(got)} result beats, expected {len(want)}"
    for i, (g, e) in enumerate(zip(got, want)):
        if g != e:
            tile, v = divmod(i, T)
            raise AssertionError(f"case {case.name}: result beat {i} (tile {tile}, vector {v}): "
                                 f"got acc={g[0]} vector={g[1]} last={g[2]}, expected "
                                 f"acc={e[0]} vector={e[1]} last={e[2]}")
    assert not tb.w.queue and not tb.act.queue, f"case {case.name}: engine finished with input left"
    accept = tb.cmd.accepted[n_acc]
    return tb.res.items[-1][0] - accept + 1 + END_CYCLES


async def run_case(tb: EngineTB, case: vectors.VectorCase, seed: int) -> int:
    """All commands of a case under its stall pattern; checks outputs (and cycles without stalls)."""
    stalls = case.stalls or {}
    tb.patterns(stalls, seed)
    total = 0
    n = case.xq.shape[0]
    for c0 in range(0, n, T):
        total += await run_command(tb, case, case.xq[c0:c0 + T], case.expected[c0:c0 + T],
                                   codebook=(c0 == 0))
    quiet = not any(stalls.get(k, 0) for k in ("idle", "bp"))
    if quiet and case.cycles is not None and total != case.cycles:
        raise AssertionError(f"case {case.name}: {total} cycles on the RTL, the cycle model "
                             f"says {case.cycles} (no stalls)")
    return total


def load_cases() -> list[vectors.VectorCase]:
    return list(vectors.read_set(PARAMS["vectors"], PARAMS.get("cases")))


def busy_case() -> vectors.VectorCase:
    """The case the reset and error tests replay: a dense one (every lane matters), small."""
    cases = load_cases()
    dense = [c for c in cases if c.name.startswith("dense")]
    return min(dense or cases, key=lambda c: c.tiles * c.groups)


@cocotb.test()
async def vector_cases(dut):
    """Every listed case of the shared vector set, with its stall pattern."""
    tb = EngineTB(dut)
    await tb.reset()
    report = []
    for i, case in enumerate(load_cases()):
        if case.hwconfig and HwConfig(**case.hwconfig) != CFG:
            raise AssertionError(f"case {case.name} was written for another config")
        c0, t0 = tb.cycle, time.perf_counter()
        cycles = await run_case(tb, case, SEED + 1000 * i)
        report.append({"case": case.name, "cycles": cycles, "sim_cycles": tb.cycle - c0,
                       "seconds": time.perf_counter() - t0, "stalls": case.stalls})
    if PARAMS.get("report"):
        with open(PARAMS["report"], "w") as f:
            json.dump({"model": MODEL, "cases": report}, f, indent=1)


def _idle_checks(dut, what: str) -> None:
    state = {"busy": int(dut.busy.value), "res_valid": int(dut.res__valid.value),
             "cmd_ready": int(dut.cmd__ready.value), "err": int(dut.err.value),
             "w_ready": int(dut.w__ready.value), "act_ready": int(dut.act__ready.value)}
    assert state == {"busy": 0, "res_valid": 0, "cmd_ready": 1, "err": 0, "w_ready": 0,
                     "act_ready": 0}, f"{what}: not idle after reset: {state}"


@cocotb.test()
async def reset_mid_transfer(dut):
    """Reset during LOAD and during RUN (random cycles, random stalls): back to idle, then clean runs.

    After a reset in RUN the activation buffer is kept, so the command is repeated with
    ``load_act = 0``; after a reset in LOAD the whole job is repeated.
    """
    rng = random.Random(SEED)
    case = busy_case()
    x, e = case.xq[:T], case.expected[:T]
    tb = EngineTB(dut)
    await tb.reset()
    for attempt in range(3):
        tb.patterns({"idle": 0.2, "bp": 0.3, "burst": 2}, SEED + attempt)
        for phase in ("load", "run"):
            tb.cb.send(cb_words(case))
            await tb.run_until(lambda: not tb.cb.queue, 2000, "codebook")
            tb.cmd.send([cmd_word(case.groups, case.tiles, True)])
            tb.act.send(case.act_words(np.pad(x, ((0, T - x.shape[0]), (0, 0)))))
            tb.w.send(case.beat_words())
            if phase == "load":
                await tb.run_until(lambda: int(dut.act__ready.value) == 1, 5000, "reach LOAD")
                for _ in range(rng.randrange(0, max(1, T * case.groups))):
                    await tb.step()
            else:
                await tb.run_until(lambda: len(tb.w.accepted) > 0, 20000, "reach RUN")
                for _ in range(rng.randrange(0, max(1, case.tiles * case.groups * T + 8))):
                    await tb.step()
            for s in (tb.cmd, tb.act, tb.w):
                s.flush()
            tb.rst_pending = rng.randint(1, 2)
            while tb.rst_pending:
                await tb.step()
            await tb.step()
            _idle_checks(dut, f"reset in {phase} (attempt {attempt})")
            if tb.mismatch:
                raise AssertionError(f"reset in {phase}: {tb.mismatch}")
            tb.res.items.clear()
            if phase == "run":   # buffer kept: rerun without loading
                await run_command(tb, case, x, e, load_act=False, codebook=False)
            else:
                await run_command(tb, case, x, e, load_act=True, codebook=True)


@cocotb.test()
async def invalid_byte(dut):
    """A weight byte >= 243 sets the sticky err flag (its trits count as 0) until the next command."""
    rng = random.Random(SEED + 5)
    case = busy_case()
    x = case.xq[:T]
    tb = EngineTB(dut)
    await tb.reset()
    beats = case.beats.copy()
    ti, gi, bi = rng.randrange(case.tiles), rng.randrange(case.groups), rng.randrange(beats.shape[2])
    beats[ti, gi, bi] = rng.randrange(layout.BYTE_LIMIT, 256)
    clean = np.where(beats >= layout.BYTE_LIMIT, 121, beats)       # 121: five zero trits
    q, k = layout.decode_stream(clean, case.tensor.depth, R)
    q = q.transpose(0, 2, 1, 3).reshape(case.tiles * R, -1)[:case.out_features]
    k = k.transpose(0, 2, 1).reshape(case.tiles * R, -1)[:case.out_features]
    from tritforge.codec import golden
    want = golden.accumulate(golden.group_dots(q, x), k, case.tensor.codebook.mantissa,
                             case.tensor.codebook.left_shift)
    words = [int.from_bytes(b.tobytes(), "little") for b in beats.reshape(-1, beats.shape[2])]
    assert int(dut.err.value) == 0
    await run_command(tb, case, x, want, beats=words)
    await tb.step()
    assert int(dut.err.value) == 1, "err not set (or not sticky) after a byte >= 243"
    await run_command(tb, case, x, case.expected[:T], codebook=False)
    assert int(dut.err.value) == 0, "err not cleared by the next command"
