"""Vectorized cycle model: bit-exact with codec.golden, cycle-exact with sim.stepmodel, action counts."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.codec import golden, layout, vectors
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import quantize_matrix
from tritforge.hwconfig import HwConfig
from tritforge.sim import fastmodel
from tritforge.sim.actions import Actions

from tritforge.sim import stepmodel, steprun


def _matrix(rng, d, out, n_in):
    return quantize_matrix(rng.standard_normal((out, n_in)).astype(np.float32), d)


def _xq(rng, n, in_pad):
    return rng.integers(-127, 128, size=(n, in_pad)).astype(np.int8)


# --- results -----------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("T", [1, 3])
def test_bit_exact_with_golden(d, T):
    rng = np.random.default_rng(10 * d + T)
    cfg = HwConfig(depth=d, rows=4, vectors=T)
    for out, n_in, n in [(1, 1, 1), (5, 33, 2), (37, 100, 7), (64, 576, 1)]:
        t = _matrix(rng, d, out, n_in)
        x = _xq(rng, n, t.in_padded)
        run = fastmodel.run_matrix(cfg, t, x)
        assert run.acc.dtype == np.int64 and run.acc.shape == (n, out)
        np.testing.assert_array_equal(run.acc, golden.accumulators(t, x))
        assert run.commands == -(-n // T)


@pytest.mark.parametrize("d", [1, 4])
def test_directed_extremes_and_int8_min(d):
    """The accumulator-bound cases (largest shift and mantissa product) and x = -128 lanes."""
    cfg = HwConfig(depth=d, rows=3, vectors=1, max_in_features=512)
    for name, t, x in vectors.directed_cases(d, 7, 500, 2, seed=d):
        np.testing.assert_array_equal(fastmodel.run_matrix(cfg, t, x).acc,
                                      golden.accumulators(t, x), err_msg=name)
    t = vectors.directed_cases(d, 7, 500, 1)[3][1]                # max_pos
    x = np.full((1, t.in_padded), -128, dtype=np.int8)
    np.testing.assert_array_equal(fastmodel.run_matrix(cfg, t, x).acc, golden.accumulators(t, x))


def test_exact_fallback_path(monkeypatch):
    """Past the float64 exactness bound the model switches to int64 and stays exact."""
    rng = np.random.default_rng(3)
    cfg = HwConfig(depth=3, rows=2, vectors=2)
    t = _matrix(rng, 3, 11, 70)
    x = _xq(rng, 3, t.in_padded)
    fast = fastmodel.run_matrix(cfg, t, x)
    monkeypatch.setattr(fastmodel, "_EXACT_LIMIT", 1.0)
    p = fastmodel.prepare_levels(t.q, t.k, t.codebook.mantissa, t.codebook.left_shift, 3)
    assert p.wt is None
    slow = fastmodel.run_prepared(cfg, p, x)
    np.testing.assert_array_equal(slow.acc, fast.acc)
    np.testing.assert_array_equal(slow.acc, golden.accumulators(t, x))
    assert slow.cycles == fast.cycles and slow.actions == fast.actions


def test_stream_path_equals_tensor_path():
    rng = np.random.default_rng(4)
    cfg = HwConfig(depth=2, rows=5, vectors=2)
    t = _matrix(rng, 2, 13, 48)
    x = _xq(rng, 3, t.in_padded)
    beats = layout.stream_beats(t.q, t.k, 2, 5)
    a = fastmodel.run_stream(cfg, beats, t.codebook.mantissa, t.codebook.left_shift, x, 13)
    b = fastmodel.run_matrix(cfg, t, x)
    np.testing.assert_array_equal(a.acc, b.acc)
    assert a.cycles == b.cycles and a.actions == b.actions


def test_one_dimensional_input():
    rng = np.random.default_rng(5)
    cfg = HwConfig()
    t = _matrix(rng, 2, 9, 32)
    x = _xq(rng, 1, t.in_padded)
    run = fastmodel.run_matrix(cfg, t, x[0])
    np.testing.assert_array_equal(run.acc, golden.accumulators(t, x[0]))


# --- cycles against the stepping model ---------------------------------------------------

def _step_cycles(cfg, t, x, load_first=True):
    """The stepping model on the same commands: their cycles back to back and the
    accumulators."""
    run = steprun.run_matrix(cfg, t, x, load_act=load_first)
    return run.cycles, run.acc


CYCLE_CASES = [  # d, R, T, out, in, n, load_act
    (2, 4, 1, 9, 40, 1, True), (1, 3, 2, 7, 33, 3, True), (3, 1, 3, 5, 20, 3, False),
    (2, 4, 1, 9, 40, 1, False), (4, 2, 2, 4, 16, 5, True), (2, 5, 1, 1, 1, 2, True),
    (1, 16, 4, 40, 64, 4, True),
]


@pytest.mark.parametrize("d,R,T,out,n_in,n,load", CYCLE_CASES)
def test_cycle_exact_with_stepmodel(d, R, T, out, n_in, n, load):
    rng = np.random.default_rng(out * n_in + d)
    cfg = HwConfig(depth=d, rows=R, vectors=T, max_in_features=256, max_out_features=64)
    t = _matrix(rng, d, out, n_in)
    x = _xq(rng, n, t.in_padded)
    step, acc = _step_cycles(cfg, t, x, load)
    run = fastmodel.run_matrix(cfg, t, x, load_act=load)
    assert run.cycles == step
    if n <= T:
        assert fastmodel.command_cycles(cfg, out, n_in, load) == step
    np.testing.assert_array_equal(run.acc, acc)
    np.testing.assert_array_equal(run.acc, golden.accumulators(t, x))


def test_random_configs_cycle_exact():
    """Seeded random (d, R, T, shape) configurations: same cycles as the stepping model."""
    rng = np.random.default_rng(77)
    for _ in range(12):
        d, R, T = int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
        out, n_in = int(rng.integers(1, 30)), int(rng.integers(1, 120))
        n = int(rng.integers(1, 2 * T + 1))
        cfg = HwConfig(depth=d, rows=R, vectors=T, max_in_features=128, max_out_features=32)
        t = _matrix(rng, d, out, n_in)
        x = _xq(rng, n, t.in_padded)
        step, acc = _step_cycles(cfg, t, x, True)
        run = fastmodel.run_matrix(cfg, t, x)
        assert run.cycles == step, (d, R, T, out, n_in, n)
        np.testing.assert_array_equal(run.acc, acc)


def test_ideal_cycles_and_utilisation():
    cfg = HwConfig(depth=2, rows=4, vectors=1)
    assert fastmodel.ideal_cycles(cfg, 576, 1536, 1) == 144 * 96
    assert fastmodel.ideal_cycles(HwConfig(vectors=4), 8, 32, 5) == 2 * 2 * 2 * 4
    for out, n_in in [(576, 576), (192, 576), (1536, 576), (576, 1536)]:
        u = fastmodel.utilisation(cfg, out, n_in)
        ideal, ng = (out // 4) * (n_in // 16), n_in // 16
        assert u == ideal / (4 + ng + ideal + cfg.pipeline_stages)   # accept+start+open+end, load, run, fill
        assert 0.96 <= u < 1.0, (out, n_in, u)
    run = fastmodel.run_matrix(cfg, quantize_matrix(np.ones((8, 32), np.float32), 2),
                               np.ones((1, 32), np.int8))
    assert run.utilisation == run.ideal_cycles / run.cycles == 4 / (4 + 2 + 4 + cfg.pipeline_stages)


# --- actions -----------------------------------------------------------------------------

def test_action_counts_by_hand():
    """A 5x20 matrix at d=2, R=4, T=2 with known trits, 3 vectors (2 commands)."""
    cfg = HwConfig(depth=2, rows=4, vectors=2)
    q = np.zeros((5, 32), dtype=np.int8)
    q[0, 0] = 4        # digits (1, 1): 2 non-zero trits
    q[1, 5] = -3       # digits (0, -1): 1
    q[4, 31] = 2       # digits (-1, 1): 2
    from tritforge.codec.quantize import TritTensor
    t = TritTensor(q, np.zeros((5, 2), np.uint8), vectors.extreme_codebook(), 2, (5, 20))
    run = fastmodel.run_matrix(cfg, t, np.ones((3, 32), np.int8))
    a = run.actions
    tiles, ng, R, T, cmds = 2, 2, 4, 2, 2
    row_groups = tiles * R * ng
    assert fastmodel.nonzero_trits(q, 2) == 5
    assert a.trit_addsub == 5 * T * cmds
    assert a.trit_addsub + a.trit_skip == row_groups * 16 * 2 * T * cmds
    assert a.tree_add == row_groups * (16 * 2 - 1) * T * cmds
    assert a.plane_add == tiles * ng * T * 16 * 3 * cmds        # -x, 3x, -3x per lane
    assert a.group_mul == a.acc_add == row_groups * T * cmds
    assert a.codebook_read == row_groups * cmds
    assert a.act_read_bits == tiles * ng * T * 128 * cmds
    assert a.act_write_bits == T * ng * 128 * cmds
    assert a.weight_bytes == tiles * ng * cfg.beat_bytes * cmds == 2 * 2 * 28 * 2
    assert a.result_bits == tiles * T * R * cfg.widths.acc * cmds
    # the two commands overlap: fewer cycles than one after the other
    one = 4 + T * ng + tiles * ng * T + cfg.pipeline_stages
    assert a.cycles == run.cycles == fastmodel.timeline(cfg, [fastmodel.Command(5, 32), fastmodel.Command(5, 32, codebook=False)]).cycles
    assert one < a.cycles < 2 * one
    reuse = fastmodel.run_matrix(cfg, t, np.ones((2, 32), np.int8), load_act=False).actions
    assert reuse.act_write_bits == 0 and reuse.cycles == 3 + tiles * ng * T + cfg.pipeline_stages
    # R = 8: two engine slices (HwConfig.slices), each forming the multiples and reading
    # and writing its own buffer
    wide = HwConfig(depth=2, rows=8, vectors=2)
    w = fastmodel.command_actions(wide, 5, 20, 5)
    assert wide.slices == ((0, 4), (4, 4))
    assert w.plane_add == 1 * ng * T * 16 * 3 * 2
    assert w.act_read_bits == 1 * ng * T * 128 * 2 and w.act_write_bits == T * ng * 128 * 2


def test_nonzero_trits_matches_layout():
    rng = np.random.default_rng(8)
    for d in (1, 2, 3, 4):
        L = layout.max_level(d)
        q = rng.integers(-L, L + 1, size=(7, 48))
        assert fastmodel.nonzero_trits(q, d) == int((layout.to_trits(q, d) != 0).sum())


def test_actions_add_and_dict():
    a = Actions(cycles=3, trit_addsub=5, weight_bytes=7)
    b = Actions(cycles=1, trit_skip=2, weight_bytes=1)
    c = a + b
    assert c.cycles == 4 and c.trit_addsub == 5 and c.trit_skip == 2 and c.weight_bytes == 8
    assert sum([a, b]) == c
    d = c.to_dict()
    assert list(d) == list(Actions.names()) and all(isinstance(v, int) for v in d.values())
    assert Actions.from_dict(d) == c
    assert a.scaled(3).trit_addsub == 15
    with pytest.raises(TritforgeError, match="unknown counters"):
        Actions.from_dict({"cycles": 1, "flops": 2})


# --- bad input ---------------------------------------------------------------------------

def test_bad_inputs():
    rng = np.random.default_rng(9)
    cfg = HwConfig(depth=2, rows=4, vectors=2, max_in_features=64, max_out_features=16)
    t = _matrix(rng, 2, 8, 40)
    with pytest.raises(TritforgeError, match="activations: shape"):
        fastmodel.run_matrix(cfg, t, np.zeros((2, 40), np.int8))
    with pytest.raises(TritforgeError, match="int8"):
        fastmodel.run_matrix(cfg, t, np.full((1, 48), 300))
    with pytest.raises(TritforgeError, match="int8"):
        fastmodel.run_matrix(cfg, t, np.zeros((1, 48), np.float32))
    with pytest.raises(TritforgeError, match="load_act=False"):
        fastmodel.run_matrix(cfg, t, np.zeros((3, 48), np.int8), load_act=False)
    with pytest.raises(TritforgeError, match="depth"):
        fastmodel.run_matrix(HwConfig(depth=3), t, np.zeros((1, 48), np.int8))
    with pytest.raises(TritforgeError, match="out_features"):
        fastmodel.run_matrix(cfg, _matrix(rng, 2, 17, 16), np.zeros((1, 16), np.int8))
    with pytest.raises(TritforgeError, match="n_vectors"):
        fastmodel.ideal_cycles(cfg, 8, 16, 0)
    with pytest.raises(TritforgeError, match="weight stream"):
        fastmodel.run_stream(cfg, np.zeros((2, 3, 5), np.uint8), t.codebook.mantissa,
                             t.codebook.left_shift, np.zeros((1, 48), np.int8), 8)


def test_cache_follows_tensor_lifetime():
    rng = np.random.default_rng(11)
    fastmodel.clear_cache()
    t = _matrix(rng, 2, 8, 32)
    fastmodel.run_matrix(HwConfig(), t, np.zeros((1, 32), np.int8))
    assert len(fastmodel._CACHE) == 1
    del t
    import gc
    gc.collect()
    assert len(fastmodel._CACHE) == 0


# --- commands back to back ---------------------------------------------------------------

def _stream(cfg, shapes, overlap, rng):
    """Jobs for ``shapes`` [(out, in, load[, codebook])], the stepping model's trace of them
    played by the ideal host, and the event cycles it shows."""
    jobs, cmds = [], []
    for j, (o, i, load, *own) in enumerate(shapes):
        book = own[0] if own else True
        ip = -(-i // 16) * 16
        q = rng.integers(-cfg.level, cfg.level + 1, size=(o, ip)).astype(np.int8)
        k = rng.integers(0, 27, size=(o, ip // 16)).astype(np.uint8)
        xq = rng.integers(-127, 128, size=(cfg.vectors, ip)).astype(np.int8)
        job, _ = stepmodel.make_job(cfg, q, k, xq, np.full(27, 4095), np.zeros(27, int),
                                    load_act=load or j == 0)
        job.codebook = book
        jobs.append(job)
        cmds.append(fastmodel.Command(o, ip, load or j == 0, book))
    model = stepmodel.StepModel(cfg)
    trace = stepmodel.run(model, stepmodel.JobDriver(cfg, jobs, overlap=overlap))
    trace += [(stepmodel.Inputs(), model.step(stepmodel.Inputs())) for _ in range(3)]
    at = lambda f: [n for n, (i, o) in enumerate(trace) if f(i, o)]   # noqa: E731
    beats = at(lambda i, o: i.w_valid and o.w_ready)
    lasts = at(lambda i, o: o.res_valid and o.res_last and i.res_ready)
    nb = np.cumsum([0] + [len(j.beats) for j in jobs])
    seen = {"accept": tuple(at(lambda i, o: i.cmd_valid and o.cmd_ready)),
            "first_beat": tuple(beats[b] for b in nb[:-1]),
            "last_beat": tuple(beats[b - 1] for b in nb[1:]), "last_result": tuple(lasts),
            "end": next(n for n in range(lasts[-1] + 1, len(trace)) if not trace[n][1].busy)}
    return cmds, seen


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("overlap", [True, False])
def test_timeline_equals_stepmodel(T, overlap):
    """Every command's accept, first and last beat, last result and the end of a mixed
    stream (loads and reuses, tiny and large commands) equal the stepping model's."""
    cfg = HwConfig(depth=2, rows=4, vectors=T, max_in_features=256, max_out_features=64)
    rng = np.random.default_rng(T)
    for shapes in ([(64, 256, True)] * 3,
                   [(10, 80, True), (8, 32, False), (64, 256, True), (4, 16, True), (64, 256, False)],
                   [(8, 32, True), (8, 32, True, False), (12, 48, False), (12, 48, True, False),
                    (4, 16, True), (4, 16, False, False), (20, 64, True)]):
        cmds, seen = _stream(cfg, shapes, overlap, rng)
        tl = fastmodel.timeline(cfg, cmds, overlap)
        assert seen == {"accept": tl.accept, "first_beat": tl.first_beat, "last_beat": tl.last_beat,
                        "last_result": tl.last_result, "end": tl.end}, (T, overlap, shapes)


@pytest.mark.parametrize("T", [1, 2])
def test_back_to_back_without_a_gap(T):
    """Long enough commands follow each other with no cycle between the last beat of one
    and the first beat of the next (one beat per T cycles throughout), LOAD or not; one at
    a time (no overlap) they do not."""
    cfg = HwConfig(depth=2, rows=4, vectors=T, max_in_features=256, max_out_features=64)
    shapes = [(64, 256, True), (64, 256, False), (64, 256, True), (32, 256, True)]
    cmds, seen = _stream(cfg, shapes, True, np.random.default_rng(5))
    for j in range(1, len(shapes)):
        assert seen["first_beat"][j] == seen["last_beat"][j - 1] + T
    _, alone = _stream(cfg, shapes, False, np.random.default_rng(5))
    assert all(alone["first_beat"][j] > alone["last_beat"][j - 1] + T + cfg.pipeline_stages
               for j in range(1, len(shapes)))
