"""The variable-depth engine's RTL (hw/varengine.py, hw/gearbox.py, hw/columnfinder.py) in the
Amaranth simulator: bit-exact with codec.golden and cycle-exact with the cycle models
(sim.varmodel's timeline: every column's issue cycle, every command's last result; the
err cycle of sim.varmodel.run_stream), commands back to back."""
import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from tritforge.codec import golden, layout
from tritforge.errors import TritforgeError
from tritforge.hw.columnfinder import ColumnFinder
from tritforge.hw.gearbox import Gearbox
from tritforge.hw.verif.varjob import mem_beats
from tritforge.hw.varengine import VarDepthEngine
from tritforge.hwconfig import HwConfig
from tritforge.sim import varmodel
from tritforge.sim.varstep import step_stream

from test_varmodel import var_tensor

IN_FEATURES, OUT_FEATURES = 48, 9


def var_config(depth, rows, T, mem_bytes=8):
    return HwConfig(depth=depth, rows=rows, vectors=T, max_in_features=64, max_out_features=16,
                    weight_stream="variable", mem_bytes=mem_bytes)


def run_rtl(cfg, jobs, rate, mem_start, max_cycles=4000, aligned=False, pad=0xFF):
    """Play ``jobs`` (each: tensor, xq, data) as commands back to back on the RTL with the
    model's host: the first job's codebook into bank 0 from cycle 0, each command offered
    from the cycle after the previous accept (the jobs share the codebook), the
    activations offered while words remain, the memory streaming every job's columns from
    cycle ``mem_start`` at ``rate`` bytes a cycle, ``res`` always ready. Returns the issue
    cycles (engine ``w`` handshakes), the result beats (cycle, vector, acc, last), the
    cycles ``err`` was high and the cycles ``mem`` was not ready while it offered bytes.
    The memory offers ``hw.verif.varjob.mem_beats``' items, one a cycle. ``aligned``: each job's stream starts a beat of its own (the job before
    ends in a partial beat, its bytes after ``count`` all ``pad``)."""
    dut = VarDepthEngine(cfg)
    t0 = jobs[0][0]
    cb = t0.codebook
    words = [layout.codebook_word(int(m), int(s), cfg.mant_bits)
             for m, s in zip(cb.mantissa, cb.left_shift)]
    streams = [d for _, _, d in jobs] if aligned else [np.concatenate([d for _, _, d in jobs])]
    offers = mem_beats(cfg, streams, rate)
    acts = [layout.pack_activation_group(x[v, 16 * g:16 * g + 16])
            for _, x, _ in jobs for v in range(cfg.vectors) for g in range(x.shape[1] // 16)]
    ng = -(-IN_FEATURES // 16)
    cmd = {"last_group": ng - 1, "last_tile": cfg.tiles(OUT_FEATURES) - 1, "load_act": 1, "cb_bank": 0}
    out = {"issue": [], "res": [], "err": [], "stall": []}
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        sent, acc_at, act_i, m = 0, None, 0, 0
        for cycle in range(max_cycles):
            ctx.set(dut.cb.valid, cycle < len(words))
            if cycle < len(words):
                ctx.set(dut.cb.payload, {"index": cycle, "mantissa": words[cycle] & ((1 << cfg.mant_bits) - 1),
                                         "shift": words[cycle] >> cfg.mant_bits})
            offer = sent < len(jobs) and cycle >= (len(words) if acc_at is None else acc_at + 1)
            ctx.set(dut.cmd.valid, offer)
            ctx.set(dut.cmd.payload, cmd)
            ctx.set(dut.act.valid, act_i < len(acts))
            ctx.set(dut.act.payload, acts[act_i] if act_i < len(acts) else 0)
            mem_on = cycle >= mem_start and m < len(offers)
            if mem_on:
                chunk = np.full(cfg.mem_bytes, pad, np.uint8)
                chunk[:offers[m].size] = offers[m]
                ctx.set(dut.mem.payload, {"data": int.from_bytes(chunk.tobytes(), "little"),
                                          "count": offers[m].size})
            ctx.set(dut.mem.valid, mem_on)
            ctx.set(dut.res.ready, 1)
            if offer and ctx.get(dut.cmd.ready):
                sent, acc_at = sent + 1, cycle
            if ctx.get(dut.act.valid) and ctx.get(dut.act.ready):
                act_i += 1
            if mem_on:
                if ctx.get(dut.mem.ready):
                    m += 1
                else:
                    out["stall"].append(cycle)
            if ctx.get(dut.engine.w.valid) and ctx.get(dut.engine.w.ready):
                out["issue"].append(cycle)
            if ctx.get(dut.err):
                out["err"].append(cycle)
            if ctx.get(dut.res.valid):
                p = ctx.get(dut.res.payload)
                out["res"].append((cycle, int(p.vector), [int(a) for a in p.acc], bool(p.last)))
                if bool(p.last) and sum(r[3] for r in out["res"]) == len(jobs):
                    break
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return out


def make_jobs(cfg, rng, n=1):
    jobs, t = [], None
    for j in range(n):
        t = var_tensor(rng, OUT_FEATURES, IN_FEATURES, cfg.depth) if t is None else t
        data, _ = layout.var_stream_columns(t.q, t.k, t.group_depth, cfg.depth, cfg.rows)
        xq = rng.integers(-128, 128, (cfg.vectors, t.in_padded)).astype(np.int8)
        jobs.append((t, xq, data))
    return jobs


def expected(cfg, jobs, rate):
    cmds = [varmodel.VarCommand(OUT_FEATURES, IN_FEATURES,
                                np.diff(layout.var_stream_columns(t.q, t.k, t.group_depth, cfg.depth,
                                                                  cfg.rows)[1]),
                                codebook=j == 0) for j, (t, _, _) in enumerate(jobs)]
    return varmodel.timeline(cfg, cmds, rate)


def check_results(cfg, jobs, res):
    """Result beats in command order, tile-major then vector, equal to codec.golden."""
    R, T = cfg.rows, cfg.vectors
    i = 0
    for t, xq, _ in jobs:
        ref = golden.accumulators(t, xq)                                 # (T, out)
        ref = np.pad(ref, ((0, 0), (0, cfg.tiles(OUT_FEATURES) * R - OUT_FEATURES)))
        for tile in range(cfg.tiles(OUT_FEATURES)):
            for v in range(T):
                _, vec, acc, last = res[i]
                assert vec == v and acc == ref[v, tile * R:(tile + 1) * R].tolist()
                assert last == (tile == cfg.tiles(OUT_FEATURES) - 1 and v == T - 1)
                i += 1
    assert i == len(res)


CASES = [(2, 4, 1, Fraction(3)), (2, 4, 2, Fraction(8)), (3, 3, 1, Fraction(5, 2)),
         (1, 4, 1, Fraction(7, 3)), (4, 2, 3, Fraction(6)), (2, 1, 1, Fraction(1, 2)),
         (1, 2, 1, Fraction(8)), (2, 1, 1, Fraction(16))]


@pytest.mark.parametrize("depth,rows,T,rate", CASES,
                         ids=[f"d{d}R{r}T{t}W{w}".replace("/", "_") for d, r, t, w in CASES])
def test_back_to_back_equals_the_models(depth, rows, T, rate):
    cfg = var_config(depth, rows, T, mem_bytes=max(8, math.ceil(rate)))
    rng = np.random.default_rng(depth * 31 + rows * 7 + T)
    jobs = make_jobs(cfg, rng, 2)
    tl = expected(cfg, jobs, rate)
    out = run_rtl(cfg, jobs, rate, tl.taken[0])
    # the FIFO back-pressures the memory only beyond what the models' schedule holds in it;
    # a memory faster than the engine is back-pressured (the models take the FIFO as never
    # full), and the columns still issue in the models' cycles
    if tl.fifo_peak <= cfg.window_words:
        assert out["stall"] == []
    assert out["err"] == []
    assert out["issue"] == np.concatenate(tl.issue).tolist()
    check_results(cfg, jobs, out["res"])
    lasts = [c for c, _, _, last in out["res"] if last]
    assert lasts == list(tl.last_result)


def test_one_command_equals_the_stepping_model():
    cfg = var_config(3, 4, 2)
    rng = np.random.default_rng(5)
    (t, xq, data), = make_jobs(cfg, rng)
    rate = Fraction(9, 4)
    tl = expected(cfg, [(t, xq, data)], rate)
    out = run_rtl(cfg, [(t, xq, data)], rate, tl.taken[0])
    step = step_stream(cfg, data, t.codebook.mantissa, t.codebook.left_shift, xq, OUT_FEATURES,
                       IN_FEATURES, rate)
    assert out["issue"] == (step.issue + tl.taken[0]).tolist()
    assert [c for c, _, _, last in out["res"] if last] == [step.last_result + tl.taken[0]]


@pytest.mark.parametrize("fault", ["byte", "depth0_index", "depth"])
def test_bad_column_raises_err_in_the_models_cycle(fault):
    depth = 1 if fault == "depth" else 2
    cfg = var_config(depth, 4, 1)
    rng = np.random.default_rng(11)
    (t, xq, data), = make_jobs(cfg, rng)
    data = data.copy()
    scan = layout.scan_var_columns(data, cfg.tiles(OUT_FEATURES) * -(-IN_FEATURES // 16), cfg.depth, cfg.rows)
    if fault == "byte":             # a plane byte of column 3
        data[scan["starts"][3] + layout.var_header_bytes(cfg.rows) + 1] = 250
    else:
        # a depth-0 group (the column keeps its length): its depth trit f to -1 (depth -1
        # at D = 1) or its index to 1
        col, row = np.argwhere(scan["depth"] == 0)[0]
        trits = layout.unpack_trits(data, data.size * 5).copy()
        head = scan["starts"][col] * 5 + layout.VAR_HEADER_TRITS * row
        if fault == "depth":
            trits[head] = -1
        else:
            trits[head + 1:head + 4] = [-1, -1, -1]
            trits[head + 1] = 0                          # index 1
        data = layout.pack_trits(trits)
    rate = Fraction(4)
    run = varmodel.run_stream(cfg, data, t.codebook.mantissa, t.codebook.left_shift, xq,
                              OUT_FEATURES, IN_FEATURES, rate)
    assert run.err
    tl = expected(cfg, [(t, xq, data)], rate)
    out = run_rtl(cfg, [(t, xq, data)], rate, tl.taken[0])
    assert out["err"][0] == run.err_cycle + tl.taken[0]
    assert out["issue"] == (run.issue + tl.taken[0]).tolist()
    got = np.array([acc for _, _, acc, _ in out["res"]]).reshape(-1)[:OUT_FEATURES]
    assert got.tolist() == run.acc[0].tolist()


def test_partial_beat_ends_a_stream():
    """Each job's stream starts a beat of its own: the bytes after a partial beat's count
    (0xFF, invalid trit bytes) are never read, the next job's columns are found from its
    first beat's byte 0."""
    cfg = var_config(2, 4, 1, mem_bytes=7)
    rng = np.random.default_rng(8)
    jobs = make_jobs(cfg, rng, 3)
    assert any(d.size % cfg.mem_bytes for _, _, d in jobs)
    tl = expected(cfg, jobs, Fraction(6))
    out = run_rtl(cfg, jobs, Fraction(6), tl.taken[0], aligned=True)
    assert out["err"] == []
    check_results(cfg, jobs, out["res"])


@pytest.mark.parametrize("pad", [0x00, 0xFF])
def test_column_past_a_partial_beat_raises_err(pad):
    """A stream cut inside its last column (a partial beat ends before the column does):
    the column is flagged, ``err`` rises, whether the bytes it reads past the beat's
    ``count`` are trit bytes (0) or not (0xFF); never a silently shifted stream."""
    rng = np.random.default_rng(8)
    jobs = make_jobs(var_config(2, 4, 1), rng, 2)
    t, xq, data = jobs[0]
    jobs[0] = (t, xq, data[:-1])
    # a beat width at which the cut stream ends in a partial beat (a cut on a beat's end
    # looks like a stream that goes on into the next job's)
    cfg = var_config(2, 4, 1, mem_bytes=next(p for p in range(5, 16) if (data.size - 1) % p))
    tl = expected(cfg, jobs[1:], Fraction(6))
    out = run_rtl(cfg, jobs, Fraction(6), tl.taken[0], aligned=True, max_cycles=600, pad=pad)
    assert out["err"], "a column cut by a partial beat was not flagged"
    # by that column itself: from the cycle after the issue stage accepts it
    n_cols = cfg.tiles(OUT_FEATURES) * -(-IN_FEATURES // 16)
    assert out["err"][0] == out["issue"][n_cols - 1] + 1


def test_window_back_pressure_keeps_every_byte():
    """A memory faster than the engine fills the word FIFO: ``mem.ready`` falls, no byte
    is lost or repeated, the results stay exact (the timing is then the FIFO's, later than
    the models', which take it as never full)."""
    cfg = var_config(2, 2, 3, mem_bytes=8)
    rng = np.random.default_rng(3)
    jobs = make_jobs(cfg, rng, 4)         # a stream longer than the window
    tl = expected(cfg, jobs, Fraction(8))
    out = run_rtl(cfg, jobs, Fraction(8), tl.taken[0])
    assert out["stall"], "the memory was never back-pressured"
    check_results(cfg, jobs, out["res"])


FINDER_CASES = [(2, 4, 16), (2, 4, 7), (1, 1, 8), (3, 2, 12), (4, 4, 9)]


@pytest.mark.parametrize("depth,rows,P", FINDER_CASES, ids=[f"d{d}R{r}P{p}" for d, r, p in FINDER_CASES])
def test_finder_gives_every_column_in_order(depth, rows, P):
    """The column finder alone, its beats offered with random gaps and ``room`` toggling at
    random, each job's stream in beats of its own (a partial beat at its end): every column
    of every job is taken once, in order, with its offset and length
    (``layout.scan_var_columns``), and never before its last beat is
    ``gearbox_take_cycles`` old."""
    cfg = var_config(depth, rows, 1, mem_bytes=P)
    rng = np.random.default_rng(depth * 100 + rows * 10 + P)
    jobs = make_jobs(cfg, rng, 3)
    n = cfg.tiles(OUT_FEATURES) * -(-IN_FEATURES // 16)
    beats, want = [], []                 # beats (bytes); per column (offset, length, its last beat)
    for _, _, data in jobs:
        starts = layout.scan_var_columns(data, n, cfg.depth, cfg.rows)["starts"][:n + 1]
        first = len(beats)
        want += [(int(a) % P, int(b - a), first + (int(b) - 1) // P) for a, b in zip(starts, starts[1:])]
        beats += [data[i:i + P] for i in range(0, data.size, P)]
    dut = ColumnFinder(cfg)
    got, accepted = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        b = 0
        for cycle in range(40 * len(beats) + 400):
            offer = b < len(beats) and rng.random() < 0.7
            if offer:
                word = int.from_bytes(bytes(beats[b].tolist()) + bytes(P - beats[b].size), "little")
                ctx.set(dut.i.payload.data, word)
                ctx.set(dut.i.payload.count, beats[b].size)
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.room, int(rng.random() < 0.6))
            await ctx.delay(1e-9)
            if ctx.get(dut.take):
                got.append([cycle])
            if ctx.get(dut.col_valid):
                got[-1 if not ctx.get(dut.take) else -2] += [ctx.get(dut.offset), ctx.get(dut.length)]
            if offer and ctx.get(dut.i.ready):
                accepted.append(cycle)
                b += 1
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert [(o, l) for _, o, l in got] == [(o, l) for o, l, _ in want]
    assert all(c >= accepted[last] + cfg.gearbox_take_cycles for (c, _, _), (_, _, last) in zip(got, want))


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="weight_stream"):
        VarDepthEngine(HwConfig(depth=2, rows=4))
    with pytest.raises(ValueError, match="weight_stream"):
        ColumnFinder(HwConfig(depth=2, rows=4))
    with pytest.raises(TritforgeError, match="mem_bytes=3"):
        HwConfig(depth=2, rows=4, weight_stream="variable", mem_bytes=3)
    with pytest.raises(TypeError):
        Gearbox("cfg")
