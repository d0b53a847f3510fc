"""GEMV engine (hw/engine.py) in Amaranth's simulator against codec.golden: small
matrices at d = 1..4, R in {1, 4}, T in {1, 2}, random valid/ready on every stream,
activation reuse, the error flag, synchronous reset mid-transfer, and the timing contract
of hw/ENGINE.md."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.codec import golden, layout
from tritforge.hw.engine import GemvEngine
from tritforge.hw.simdriver import EngineSim
from tritforge.hwconfig import HwConfig
from tritforge.sim.stepmodel import JobDriver, StepModel, make_job, run


def directed_matrix(out: int, in_pad: int, L: int, rng) -> np.ndarray:
    """Rows cycling through all 0, all +1, all -1, alternating, +L, -L, sparse, dense, random."""
    pats = [np.zeros(in_pad), np.ones(in_pad), -np.ones(in_pad), np.resize([L, -L], in_pad),
            np.full(in_pad, L), np.full(in_pad, -L), np.where(np.arange(in_pad) % 7 == 3, L, 0),
            np.arange(in_pad) % (2 * L + 1) - L, rng.integers(-L, L + 1, in_pad)]
    return np.array([pats[r % len(pats)] for r in range(out)], dtype=np.int8)


def codebook(rng, cfg: HwConfig):
    mant = rng.integers(2 ** (cfg.mant_bits - 1), 2 ** cfg.mant_bits, size=27)
    shift = rng.integers(0, cfg.shift_limit + 1, size=27)
    return mant, shift


def small_cfg(depth, rows, vectors):
    return HwConfig(depth=depth, rows=rows, vectors=vectors, max_in_features=64, max_out_features=16)


#: R = 1, 4: one engine; R = 6: two lockstep slices whose windows share a byte (d = 1)
CONFIGS = [(d, r, t) for d in (1, 2, 3, 4) for r in (1, 4) for t in (1, 2)] + [(1, 6, 2)]


@pytest.mark.parametrize("depth,rows,vectors", CONFIGS,
                         ids=[f"d{d}-R{r}-T{t}" for d, r, t in CONFIGS])
def test_engine_matches_golden(depth, rows, vectors):
    cfg = small_cfg(depth, rows, vectors)
    rng = np.random.default_rng(1000 * depth + 10 * rows + vectors)
    out, in_pad = {4: (6, 48), 6: (8, 48)}.get(rows, (3, 32))
    xq = rng.integers(-128, 128, size=(vectors, in_pad)).astype(np.int8)
    xq[0, :16] = -128                                 # one extreme group: the int8 minimum
    q1 = directed_matrix(out, in_pad, cfg.level, rng)
    k1 = rng.integers(0, 27, size=(out, in_pad // 16)).astype(np.uint8)
    q2 = rng.integers(-cfg.level, cfg.level + 1, size=(out, in_pad)).astype(np.int8)
    k2 = rng.integers(0, 27, size=(out, in_pad // 16)).astype(np.uint8)
    job1, exp1 = make_job(cfg, q1, k1, xq, *codebook(rng, cfg))
    job2, exp2 = make_job(cfg, q2, k2, xq, *codebook(rng, cfg), load_act=False)   # buffer reuse
    drv = JobDriver(cfg, [job1, job2], seed=depth + rows + vectors, p_valid=0.7, p_ready=0.6)
    EngineSim(GemvEngine(cfg)).run(drv, max_cycles=3000)
    assert drv.done
    assert drv.results == [exp1, exp2]


@pytest.mark.parametrize("depth", layout.DEPTHS)
def test_int8_minimum_is_exact(depth):
    """x = -128 against a weight whose lowest digit is -1: the product is +128 (a datapath
    sized for |x| <= 127 gives -128). Rows hold -1, +1, -L, +L; the RTL and the stepping
    model both return the golden accumulators."""
    cfg = small_cfg(depth, 4, 1)
    L = cfg.level
    q = np.zeros((4, 16), np.int8)
    q[:, 0] = [-1, 1, -L, L]
    k = np.full((4, 1), 13, np.uint8)
    mant, shift = np.zeros(27, np.int64), np.zeros(27, np.int64)
    mant[13] = 1
    xq = np.zeros((1, 16), np.int8)
    xq[0, 0] = -128
    job, expected = make_job(cfg, q, k, xq, mant, shift)
    assert expected == [(0, (128, -128, 128 * L, -128 * L), True)]
    drv = JobDriver(cfg, [job])
    EngineSim(GemvEngine(cfg)).run(drv, max_cycles=200)
    assert drv.results == [expected]
    drv = JobDriver(cfg, [job])
    run(StepModel(cfg), drv)
    assert drv.results == [expected]


@pytest.mark.parametrize("depth,rows,byte,lat", [
    (2, 4, 5, 6),     # 28 bytes: 14 pairs, two 4-input OR levels
    (4, 5, 60, 6),    # slices of 54 and 14 bytes: the second's check (5) delayed to the first's
    (4, 5, 53, 6),    # the byte both slices hold
])
def test_err_flag_and_invalid_bytes_decode_as_zero(depth, rows, byte, lat):
    cfg = small_cfg(depth, rows, 1)
    rng = np.random.default_rng(3)
    q = rng.integers(-cfg.level, cfg.level + 1, size=(rows, 32)).astype(np.int8)
    k = rng.integers(0, 27, size=(rows, 2)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(1, 32)).astype(np.int8)
    mant, shift = codebook(rng, cfg)
    job, _ = make_job(cfg, q, k, xq, mant, shift)
    bad = bytearray(job.beats[1].to_bytes(cfg.beat_bytes, "little"))
    bad[byte] = 250
    job.beats[1] = int.from_bytes(bad, "little")
    # expected: the engine computes with the bad byte's trits at zero
    clean = np.frombuffer(bytes(b if b < 243 else 121 for b in bad), dtype=np.uint8)
    qb, kb = layout.decode_beat(clean, cfg.depth, cfg.rows)
    q2, k2 = q.copy(), k.copy()
    q2[:, 16:32], k2[:, 1] = qb, kb
    exp = golden.accumulate(golden.group_dots(q2, xq), k2, mant, shift)[0]
    again, exp_again = make_job(cfg, q, k, xq, mant, shift)           # a clean job clears err
    drv = JobDriver(cfg, [job, again], seed=1)
    trace = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=500)
    assert drv.results[0] == [(0, tuple(int(a) for a in exp), True)]
    assert drv.results[1] == exp_again
    errs = [o["err"] for _, o in trace]
    taken = [n for n, (i, o) in enumerate(trace) if i.w_valid and o["w_ready"]]
    bad_at = taken[1]
    assert cfg.err_latency == lat
    assert not any(errs[:bad_at + lat]) and errs[bad_at + lat]       # lat cycles after acceptance
    cmd2 = [n for n, (i, o) in enumerate(trace) if i.cmd_valid and o["cmd_ready"]][1]
    assert all(errs[bad_at + lat:cmd2 + 1]) and not any(errs[cmd2 + 1:])  # sticky until next cmd


def _pick_resets(cfg, job, seed):
    """Reset cycles chosen with the stepping model: one in LOAD, one in RUN right after a
    beat was taken, one while a result waits for res.ready (each after the previous reset).
    Returns (seed, resets) for the first seed from ``seed`` on whose random valid/ready
    pattern has all three (a pattern may happen to accept every result at once)."""
    wants = [lambda i, o: o.act_ready and i.act_valid,
             lambda i, o: o.w_ready and i.w_valid and o.busy,
             lambda i, o: o.res_valid and not i.res_ready]
    for s in range(seed, seed + 20):
        resets = []
        for want in wants:
            drv = JobDriver(cfg, [job], seed=s, p_valid=0.8, p_ready=0.5, reset_cycles=tuple(resets))
            trace = run(StepModel(cfg), drv)
            after = resets[-1] + 3 if resets else 0
            hit = next((n for n, (i, o) in enumerate(trace) if n > after and want(i, o)), None)
            if hit is None:
                break
            resets.append(hit)
        else:
            return s, tuple(resets)
    raise AssertionError(f"no seed in {seed}..{seed + 19} gives all three resets")


@pytest.mark.parametrize("vectors", [1, 2])
def test_reset_mid_transfer_recovers(vectors):
    """Resets in LOAD, in RUN with beats in flight and with a result waiting; after each the
    job restarts and the final results are exact."""
    cfg = small_cfg(3, 4, vectors)
    rng = np.random.default_rng(11 + vectors)
    q = rng.integers(-13, 14, size=(8, 64)).astype(np.int8)
    k = rng.integers(0, 27, size=(8, 4)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(vectors, 64)).astype(np.int8)
    job, exp = make_job(cfg, q, k, xq, *codebook(rng, cfg))
    seed, resets = _pick_resets(cfg, job, seed=4)
    drv = JobDriver(cfg, [job], seed=seed, p_valid=0.8, p_ready=0.5, reset_cycles=resets)
    trace = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=2000)
    assert drv.results == [exp]
    load, run_, wait = (trace[n][1] for n in resets)
    assert load["act_ready"] and run_["busy"] and wait["res_valid"]
    for n in resets:                             # every state back to idle, flags cleared
        o = trace[n + 1][1]
        assert o["cmd_ready"] and not o["busy"] and not o["res_valid"] and not o["w_ready"]


@pytest.mark.parametrize("vectors", [1, 3])
def test_timing_contract(vectors):
    """No stalls: last result valid at c0 + N*T + pipeline_stages - 1 (c0 = first beat accepted);
    beats accepted exactly every T cycles."""
    cfg = small_cfg(2, 4, vectors)
    rng = np.random.default_rng(5)
    q = rng.integers(-4, 5, size=(8, 48)).astype(np.int8)
    k = rng.integers(0, 27, size=(8, 3)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(vectors, 48)).astype(np.int8)
    job, exp = make_job(cfg, q, k, xq, *codebook(rng, cfg))
    drv = JobDriver(cfg, [job], seed=0)
    trace = EngineSim(GemvEngine(cfg)).run(drv, max_cycles=500)
    assert drv.results == [exp]
    taken = [n for n, (i, o) in enumerate(trace) if i.w_valid and o["w_ready"]]
    n_beats = len(job.beats)
    assert len(taken) == n_beats and np.all(np.diff(taken) == vectors)
    last = max(n for n, (_, o) in enumerate(trace) if o["res_valid"])
    assert last == taken[0] + n_beats * vectors + cfg.pipeline_stages - 1
    cmd = next(n for n, (i, o) in enumerate(trace) if i.cmd_valid and o["cmd_ready"])
    acts = [n for n, (i, o) in enumerate(trace) if i.act_valid and o["act_ready"]]
    # LOAD from the cycle after the accept and start cycles, RUN opens LOAD_OPEN_CYCLES
    # after the cycle after its last word (hw/ENGINE.md; the constants' owner is hwconfig)
    from tritforge.hwconfig import CMD_ACCEPT_CYCLES, LOAD_OPEN_CYCLES
    first = cmd + CMD_ACCEPT_CYCLES
    assert acts == list(range(first, first + vectors * 3))
    assert taken[0] == acts[-1] + 1 + LOAD_OPEN_CYCLES


def test_structure_asserts_pipeline_stages(monkeypatch, recwarn):
    from tritforge import hwconfig
    GemvEngine.check_structure(small_cfg(1, 1, 1))
    assert small_cfg(1, 1, 1).pipeline_stages == hwconfig.pipeline_stages(1)
    monkeypatch.setattr(hwconfig, "MAC_STAGES", hwconfig.MAC_STAGES - 1)
    with pytest.raises(AssertionError, match="pipeline"):
        GemvEngine(small_cfg(1, 1, 1))
    assert not [w for w in recwarn if "never used" in str(w.message)]   # refused before construction


def test_refused_before_construction(recwarn):
    """Parameters the engine cannot be built with are refused in ``__new__``: nothing is
    constructed (no unused-elaboratable warning), whichever block would have failed."""
    from tritforge.errors import TritforgeError

    with pytest.raises(TypeError, match="HwConfig"):
        GemvEngine({"depth": 2})
    with pytest.raises(TritforgeError, match="style"):
        GemvEngine(HwConfig(), decoder_style="lut")
    # the ECP5 block RAM holds at most 16,384 words: T = 64 vectors of 512 words do not fit
    with pytest.raises(TritforgeError, match="activation buffer"):
        GemvEngine(HwConfig(vectors=64), primitives="ecp5")
    assert not [w for w in recwarn if "never used" in str(w.message)]
