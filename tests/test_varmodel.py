"""The variable-depth engine's cycle models: the closed form (sim.varmodel) against the
stepping model (sim.varstep) cycle for cycle, and both against codec.golden."""
import numpy as np
import pytest

from tritforge.codec import golden, layout
from tritforge.codec.quantize import TritTensor, quantize_matrix
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim import fastmodel, varmodel, varstep


def var_tensor(rng, out, inf, base, mix=True):
    """A random matrix at depth ``base`` with a random depth per group (its levels rounded
    to multiples of 3**(D - k))."""
    t = quantize_matrix(rng.standard_normal((out, inf)).astype(np.float32), base)
    depths = layout.var_depths(base)
    gd = rng.choice(depths, size=t.k.shape).astype(np.uint8) if mix else np.full(t.k.shape, base, np.uint8)
    step = 3 ** (base - gd.astype(np.int64))
    q = t.q.reshape(out, -1, 16).astype(np.int64)
    q = (np.rint(q / step[..., None]) * step[..., None]).astype(np.int8).reshape(out, -1)
    k = np.where(gd == 0, 0, t.k).astype(np.uint8)
    return TritTensor(q, k, t.codebook, base, t.shape, t.mode, gd)


CASES = [(2, 4, 1, 3), (3, 16, 1, 88), (2, 5, 3, 20), (3, 4, 2, 150), (1, 4, 1, 10), (4, 3, 2, 40)]


@pytest.mark.parametrize("base,rows,T,w", CASES)
def test_closed_form_equals_stepping_and_golden(base, rows, T, w):
    rng = np.random.default_rng(base * 7 + rows + T)
    cfg = HwConfig(depth=base, rows=rows, vectors=T, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 13, 72, base)
    data, starts = layout.var_stream_columns(t.q, t.k, t.group_depth, base, rows)
    xq = rng.integers(-128, 128, (T, t.in_padded)).astype(np.int8)
    cb = t.codebook
    ref = golden.accumulators(t, xq)
    fast = varmodel.run_stream(cfg, data, cb.mantissa, cb.left_shift, xq, 13, 72, w)
    step = varstep.step_stream(cfg, data, cb.mantissa, cb.left_shift, xq, 13, 72, w)
    assert np.array_equal(fast.acc, ref) and np.array_equal(step.acc, ref)
    assert np.array_equal(fast.issue, step.issue)
    assert fast.last_result == step.last_result and not fast.err and not step.err
    # the bytes-bound columns wait for the stream, the others issue every T cycles
    gaps = np.diff(fast.issue)
    assert (gaps >= T).all()
    if w * T < np.diff(starts).min():
        assert (gaps > T).any()
    # the timeline of one command issues the same columns, from its take
    tl = varmodel.timeline(cfg, [varmodel.VarCommand(13, 72, np.diff(starts))], w)
    assert np.array_equal(tl.issue[0] - tl.taken[0], fast.issue)
    assert tl.last_result[0] - tl.taken[0] == fast.last_result
    # the run from the TritTensor: the same accumulators, the timeline's cycles
    run = varmodel.run_matrix(cfg, t, xq, w)
    assert np.array_equal(run.acc, ref) and run.cycles == tl.cycles
    assert run.actions.weight_bytes == data.size


@pytest.mark.parametrize("seed", range(4))
def test_results_under_random_stalls(seed):
    rng = np.random.default_rng(seed)
    base, rows, T = (2, 3)[seed % 2], 4, 1 + seed % 3
    cfg = HwConfig(depth=base, rows=rows, vectors=T, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 9, 64, base)
    data, _ = layout.var_stream_columns(t.q, t.k, t.group_depth, base, rows)
    xq = rng.integers(-128, 128, (T, t.in_padded)).astype(np.int8)
    pattern = rng.random(100000) < 0.4
    stalled = varstep.step_stream(cfg, data, t.codebook.mantissa, t.codebook.left_shift, xq, 9, 64, 7,
                                  valid=lambda c: pattern[c])
    free = varstep.step_stream(cfg, data, t.codebook.mantissa, t.codebook.left_shift, xq, 9, 64, 7)
    assert np.array_equal(stalled.acc, golden.accumulators(t, xq))
    assert stalled.last_result > free.last_result


def test_uniform_matrix_at_full_rate_streams_like_the_uniform_engine():
    """Every group at depth D and the memory fast enough: one column per T cycles, the
    uniform engine's beats shifted by the gearbox."""
    rng = np.random.default_rng(3)
    cfg = HwConfig(depth=2, rows=4, vectors=2, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 8, 64, 2, mix=False)
    cols = varmodel.column_bytes(cfg, t.group_depth)
    tl = varmodel.timeline(cfg, [varmodel.VarCommand(8, 64, cols)], 10 ** 6)
    uni = fastmodel.timeline(cfg, [fastmodel.Command(8, 64)])
    assert tl.first_beat[0] == uni.first_beat[0] + varmodel.built_config(cfg, 10 ** 6).gearbox_cycles - 1
    assert tl.last_beat[0] - tl.first_beat[0] == uni.last_beat[0] - uni.first_beat[0]


def test_bad_header_sets_err_in_both_models():
    rng = np.random.default_rng(9)
    cfg = HwConfig(depth=2, rows=4, vectors=1, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 8, 48, 2)
    data, starts = layout.var_stream_columns(t.q, t.k, t.group_depth, 2, 4)
    # the last column, row 0: depth 0 with index 2
    tr = layout.unpack_trits(data, data.size * 5).copy()
    p = int(starts[-2]) * 5
    tr[p] = -1
    tr[p + 1:p + 4] = (1, -1, -1)
    bad = layout.pack_trits(tr)
    s = layout.scan_var_columns(bad, 6, 2, 4)
    if s["truncated"] >= 0 or s["starts"][-1] != bad.size:
        bad = np.concatenate([bad, np.full(int(s["starts"][-1]) - bad.size, 121, np.uint8)]) \
            if s["starts"][-1] > bad.size else bad[:int(s["starts"][-1])]
    cb = t.codebook
    xq = rng.integers(-128, 128, (1, 48)).astype(np.int8)
    fast = varmodel.run_stream(cfg, bad, cb.mantissa, cb.left_shift, xq, 8, 48, 9)
    step = varstep.step_stream(cfg, bad, cb.mantissa, cb.left_shift, xq, 8, 48, 9)
    assert fast.err and step.err and fast.err_cycle == step.err_cycle == fast.issue[-1] + 1
    with pytest.raises(TritforgeError, match="depth 0 and codebook index 2"):
        layout.unpack_var_stream(bad, 8, 48, 2, 4)


def test_truncated_stream_is_refused_by_both_models():
    rng = np.random.default_rng(2)
    cfg = HwConfig(depth=3, rows=4, vectors=1, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 8, 48, 3)
    data, _ = layout.var_stream_columns(t.q, t.k, t.group_depth, 3, 4)
    xq = np.zeros((1, 48), np.int8)
    for model in (varmodel.run_stream, varstep.step_stream):
        with pytest.raises(TritforgeError, match="runs past the end"):
            model(cfg, data[:-3], t.codebook.mantissa, t.codebook.left_shift, xq, 8, 48, 5)


def test_back_to_back_commands_and_rate_refusal():
    rng = np.random.default_rng(4)
    cfg = HwConfig(depth=3, rows=4, vectors=2, max_in_features=256, max_out_features=64)
    t = var_tensor(rng, 8, 64, 3)
    xq = rng.integers(-128, 128, (5, 64)).astype(np.int8)
    run = varmodel.run_matrix(cfg, t, xq, 20)
    assert np.array_equal(run.acc, golden.accumulators(t, xq)) and run.commands == 3
    one = varmodel.run_matrix(cfg, t, xq[:2], 20)
    assert one.cycles < run.cycles < 3 * one.cycles
    with pytest.raises(TritforgeError, match="expected bytes per cycle > 0"):
        varmodel.stream_rate(0)
