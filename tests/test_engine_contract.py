"""hw/ENGINE.md's answers to the questions of the port contract, on the RTL (Amaranth
simulator) and the stepping model, which must agree in every cycle:

* ``busy`` is low in the cycle a command is accepted and high from the next one (it is
  ``~idle``, a register) until the cycle after the last result beat is accepted;
* ``err`` is still high in the cycle the next command is accepted and low from the next;
* a handshake in a synchronous-reset cycle: a command offered while ``cmd.ready`` is high
  is not taken, a result beat taken is gone (the FIFO empties), a codebook write is kept;
* activations are full-range int8: -128 and 127 in every lane.
"""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.codec import golden, layout
from tritforge.hw.engine import GemvEngine
from tritforge.hw.simdriver import OUTPUT_FIELDS, EngineSim
from tritforge.hwconfig import END_CYCLES, HwConfig
from tritforge.sim.stepmodel import Inputs, JobDriver, StepModel, make_job


class Script:
    """A fixed list of per-cycle ``Inputs`` for ``EngineSim.run`` (no reaction)."""

    def __init__(self, records):
        self.records = list(records)
        self.n = 0

    @property
    def done(self) -> bool:
        return self.n >= len(self.records)

    def inputs(self) -> Inputs:
        return self.records[self.n]

    def observe(self, inp, out) -> None:
        self.n += 1


class Tail:
    """A driver followed by ``n`` idle cycles (``res.ready`` high)."""

    def __init__(self, driver, n: int = 4):
        self.driver, self.left = driver, n

    @property
    def done(self) -> bool:
        return self.driver.done and self.left == 0

    def inputs(self) -> Inputs:
        return Inputs(res_ready=True) if self.driver.done else self.driver.inputs()

    def observe(self, inp, out) -> None:
        if self.driver.done:
            self.left -= 1
        else:
            self.driver.observe(inp, out)


def rtl_and_model(cfg: HwConfig, driver, max_cycles: int = 3000) -> list[tuple]:
    """The RTL's trace of ``driver``, checked equal to the stepping model in every cycle."""
    trace = EngineSim(GemvEngine(cfg)).run(driver, max_cycles=max_cycles)
    model = StepModel(cfg)
    for n, (inp, out) in enumerate(trace):
        got = model.step(inp)
        for name in OUTPUT_FIELDS:
            assert getattr(got, name) == out[name], f"cycle {n}: {name}: model {getattr(got, name)}, rtl {out[name]}"
    return trace


def accepted(trace, valid: str, ready: str) -> list[int]:
    return [n for n, (i, o) in enumerate(trace) if getattr(i, valid) and o[ready]]


def small_job(cfg, rng, bad_byte: bool = False, out: int | None = None, **kw):
    out = cfg.rows + 1 if out is None else out
    q = rng.integers(-cfg.level, cfg.level + 1, size=(out, 32)).astype(np.int8)
    k = rng.integers(0, 27, size=(q.shape[0], 2)).astype(np.uint8)
    xq = rng.integers(-128, 128, size=(cfg.vectors, 32)).astype(np.int8)
    mant = rng.integers(0, 2 ** cfg.mant_bits, size=27)
    shift = rng.integers(0, cfg.shift_limit + 1, size=27)
    job, exp = make_job(cfg, q, k, xq, mant, shift, **kw)
    if bad_byte:
        job.beats[0] |= 250       # byte 0 of the first beat >= 243
    return job, exp


@pytest.mark.parametrize("vectors", [1, 2])
@pytest.mark.parametrize("overlap", [False, True])
def test_busy_from_the_cycle_after_accept(vectors, overlap):
    """busy: low in an accept cycle on an idle engine, high from the cycle after until two
    cycles after the last result of the last command in flight; cmd.ready low from the
    cycle after an accept until the command runs."""
    cfg = HwConfig(depth=2, rows=2, vectors=vectors, max_in_features=64, max_out_features=16)
    rng = np.random.default_rng(vectors)
    jobs = [small_job(cfg, rng, out=16)[0] for _ in range(2)]       # 16 beats each
    drv = JobDriver(cfg, jobs, seed=3, p_valid=0.8, p_ready=0.6, overlap=overlap)
    trace = rtl_and_model(cfg, Tail(drv))
    busy = [o["busy"] for _, o in trace]
    ready = [o["cmd_ready"] for _, o in trace]
    lasts = [n for n, (i, o) in enumerate(trace) if o["res_valid"] and o["res_last"] and i.res_ready]
    accepts = accepted(trace, "cmd_valid", "cmd_ready")
    first_beat = accepted(trace, "w_valid", "w_ready")[0]
    assert len(accepts) == len(lasts) == 2
    assert ready[accepts[0]] and not busy[accepts[0]], "busy is low in the accept cycle"
    for c, p in zip(accepts, lasts):
        assert busy[c + 1] and not ready[c + 1]
        if not overlap:          # one at a time: idle between the commands
            idle = p + END_CYCLES + 1          # the pop is registered, then counted out
            assert all(busy[c + 1:idle]) and not busy[idle] and ready[idle]
    assert ready[first_beat], "the front end is free while the first command runs"
    if overlap:
        assert accepts[1] < lasts[0], "the second command is accepted while the first runs"
        end = lasts[-1] + END_CYCLES + 1
        assert all(busy[accepts[0] + 1:end]) and not busy[end]


def test_err_clears_the_cycle_after_the_next_accept():
    cfg = HwConfig(depth=2, rows=2, vectors=1, max_in_features=64, max_out_features=16)
    rng = np.random.default_rng(7)
    bad, _ = small_job(cfg, rng, bad_byte=True)
    good, _ = small_job(cfg, rng)
    trace = rtl_and_model(cfg, JobDriver(cfg, [bad, good], seed=5, p_valid=0.7, p_ready=0.7))
    err = [o["err"] for _, o in trace]
    taken = accepted(trace, "w_valid", "w_ready")[0]          # the bad beat
    c2 = accepted(trace, "cmd_valid", "cmd_ready")[1]
    assert not any(err[:taken + cfg.err_latency]) and all(err[taken + cfg.err_latency:c2 + 1])
    assert err[c2] and not any(err[c2 + 1:]), "err clears in the cycle after the next command's accept"


def test_handshakes_in_a_reset_cycle():
    """Cycle 0 resets while offering a command (cmd.ready is high) and codebook entry 5;
    the command is not taken, the entry is. A result beat taken in a later reset cycle
    is gone."""
    cfg = HwConfig(depth=1, rows=1, vectors=1, max_in_features=16, max_out_features=4)
    x = np.arange(-120, 120, 15).astype(np.int8)         # 16 lanes
    q = np.ones((1, 16), dtype=np.int8)
    beat = int.from_bytes(layout.stream_beats(q, np.full((1, 1), 5, np.uint8), 1, 1).tobytes(), "little")
    word = layout.pack_activation_group(x)
    cmd = dict(cmd_valid=True, last_group=0, last_tile=0, load_act=True)
    idle = Inputs(res_ready=True)
    recs = [Inputs(rst=True, cb_valid=True, cb_index=5, cb_mantissa=77, cb_shift=3, res_ready=True, **cmd)]
    recs += [idle] * 3
    recs += [Inputs(res_ready=True, **cmd)]                 # taken: the engine is idle
    recs += [Inputs(act_valid=True, act_word=word, w_valid=True, w_beat=beat, res_ready=True)] * 40
    # the same command again, its result held by res.ready low, then taken in a reset cycle
    recs += [Inputs(res_ready=False, **cmd)]
    recs += [Inputs(act_valid=True, act_word=word, w_valid=True, w_beat=beat)] * 40
    recs += [Inputs(rst=True, res_ready=True)] + [idle] * 5
    trace = rtl_and_model(cfg, Script(recs))
    outs = [o for _, o in trace]
    assert outs[0]["cmd_ready"] and not any(o["busy"] for o in outs[1:4]), \
        "a command offered in a reset cycle must not be taken"
    assert outs[4]["cmd_ready"] and outs[5]["busy"]
    results = [n for n, (i, o) in enumerate(trace) if o["res_valid"] and i.res_ready and not i.rst]
    assert len(results) == 1
    want = golden.accumulate(golden.group_dots(q, x[None]), np.full((1, 1), 5), np.full(27, 77), np.full(27, 3))
    assert outs[results[0]]["res_acc"] == (int(want[0, 0]),), "the codebook write of the reset cycle is kept"
    reset2 = len(recs) - 6
    assert outs[reset2]["res_valid"] and outs[reset2]["res_last"], "a result waits in the reset cycle"
    assert not any(o["res_valid"] or o["busy"] for o in outs[reset2 + 1:]), "the result is gone after the reset"


def test_activations_are_full_range_int8():
    """-128 and 127 in every lane of every vector: results equal codec.golden."""
    cfg = HwConfig(depth=3, rows=2, vectors=2, max_in_features=64, max_out_features=16)
    rng = np.random.default_rng(1)
    q = rng.integers(-cfg.level, cfg.level + 1, size=(3, 32)).astype(np.int8)
    k = rng.integers(0, 27, size=(3, 2)).astype(np.uint8)
    xq = np.stack([np.full(32, -128), np.where(np.arange(32) % 2, 127, -128)]).astype(np.int8)
    mant, shift = np.full(27, 2 ** cfg.mant_bits - 1), np.full(27, cfg.shift_limit)
    job, exp = make_job(cfg, q, k, xq, mant, shift)
    drv = JobDriver(cfg, [job], seed=2, p_valid=0.9, p_ready=0.8)
    rtl_and_model(cfg, drv)
    assert drv.results == [exp]
    assert exp[0][1][0] == int(golden.accumulate(golden.group_dots(q, xq), k, mant, shift)[0, 0])
