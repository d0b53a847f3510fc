"""The calibrated mode (codec.calibrate, codec.calibration): valid trit tensors the golden
reference and the cycle model take unchanged, lower output error than plain rounding on
correlated inputs, degenerate Hessians, and the calibration text checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tinymodels import make_tiny_model, make_tokenizer
from tritforge.codec import golden, layout, packfile
from tritforge.codec.calibrate import hessian_factor, quantize_calibrated
from tritforge.codec.calibration import (CalibOptions, calibration_ids, collect_hessians,
                                         float_model, make_options, read_text, shared_name)
from tritforge.codec.checkpoint import load_checkpoint
from tritforge.codec.modelquant import quantize_checkpoint
from tritforge.codec.quantize import prepare, quantize_groups
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim import fastmodel


def _check_valid(t, d):
    L = layout.max_level(d)
    assert t.q.dtype == np.int8 and t.k.dtype == np.uint8
    assert np.abs(t.q).max() <= L and t.k.max() <= 26
    assert t.q.shape == (t.shape[0], t.groups * layout.GROUP)
    assert not t.q[:, t.shape[1]:].any()                       # padding stays zero
    assert np.isfinite(t.dequantize()).all()


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny_calibrated(request, tmp_path_factory):
    src = make_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param, seed=31)
    ck = load_checkpoint(src)
    opts = make_options(seqs=3, length=64)
    return ck, quantize_checkpoint(ck, [1, 2, 3, 4], "calibrated", progress=False, calib=opts)


def test_tiny_models_give_valid_tensors(tiny_calibrated):
    ck, res = tiny_calibrated
    for d, mq in res.items():
        assert mq.mode == "calibrated" and list(mq.tensors) == ck.linear_names
        cal = mq.calibration
        assert cal["tokens"] == 3 * 64 and cal["peak_rss_mib"] > 0 and cal["forward_seconds"] > 0
        for name, t in mq.tensors.items():
            assert t.shape == tuple(ck.tensors[name].shape) and t.depth == d
            _check_valid(t, d)
            # the codebook is the tritforge mode's: only indices and levels differ
            assert t.codebook == quantize_groups(*prepare(ck.tensors[name]), d, "tritforge").codebook


def test_golden_and_cycle_model_take_it_unchanged(tiny_calibrated, tmp_path):
    _, res = tiny_calibrated
    rng = np.random.default_rng(5)
    for d, mq in res.items():
        cfg = HwConfig(depth=d, rows=4, vectors=1)
        for name, t in mq.tensors.items():
            x = rng.integers(-127, 128, size=(2, t.in_padded)).astype(np.int8)
            np.testing.assert_array_equal(fastmodel.run_matrix(cfg, t, x).acc,
                                          golden.accumulators(t, x), err_msg=name)
        path = str(tmp_path / f"d{d}.safetensors")
        packfile.write_packed(path, mq.tensors, {"source": "test"})
        back, _ = packfile.read_packed(path)
        for name, t in mq.tensors.items():
            assert np.array_equal(back[name].q, t.q) and np.array_equal(back[name].k, t.k)


def test_shared_inputs_share_one_hessian(tiny_calibrated):
    ck, _ = tiny_calibrated
    names = ck.linear_names
    ids = calibration_ids(ck.tokenizer(), make_options(seqs=2, length=32))
    H = collect_hessians(float_model(ck), ids, names, progress=False)
    q, k = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"
    assert H[q] is H[k] and shared_name(k) == q
    assert H["model.layers.0.mlp.up_proj.weight"] is H["model.layers.0.mlp.gate_proj.weight"]
    down = H["model.layers.1.mlp.down_proj.weight"]
    assert down.shape == (88, 88) and torch.allclose(down, down.T, atol=1e-5)
    assert bool(torch.isfinite(down).all()) and float(torch.diagonal(down).min()) >= 0


# --- the point of the mode: output error on correlated inputs ----------------------------

def _correlated(seed, out=96, n_in=120, n=1500):
    rng = np.random.default_rng(seed)
    mix = np.eye(n_in) + 0.4 * rng.standard_normal((n_in, n_in))
    X = (rng.standard_normal((n, n_in)) @ mix).astype(np.float32)
    W = rng.standard_normal((out, n_in)).astype(np.float32)
    return X, W


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("order", ["natural", "act-groups"])
def test_lower_output_error_than_plain_rounding(d, order):
    X, W = _correlated(d)
    wg, shape = prepare(W)
    H = torch.from_numpy(X.T @ X / len(X))
    ref = X @ W.T
    t = quantize_calibrated(wg, shape, d, hessian_factor(H, wg.shape[1] * 16, 0.01, order))
    _check_valid(t, d)
    cal = np.linalg.norm(ref - X @ t.dequantize().T)
    for mode in ("tritllm-v2", "tritforge"):
        plain = np.linalg.norm(ref - X @ quantize_groups(wg, shape, d, mode).dequantize().T)
        assert cal < 0.9 * plain, (mode, cal, plain)


def test_hessian_choice_beats_plain_choice_on_average():
    X, W = _correlated(7, out=160)
    wg, shape = prepare(W)
    f = hessian_factor(torch.from_numpy(X.T @ X / len(X)), wg.shape[1] * 16)
    errs = {c: np.linalg.norm(X @ (W - quantize_calibrated(wg, shape, 2, f, choice=c).dequantize()).T)
            for c in ("hessian", "plain")}
    assert errs["hessian"] <= errs["plain"]


def test_identity_hessian_is_plain_rounding_with_group_search():
    """With H = I no error moves: every level is the nearest one for its group's entry."""
    rng = np.random.default_rng(3)
    wg, shape = prepare(rng.standard_normal((40, 64)).astype(np.float32))
    t = quantize_calibrated(wg, shape, 2, hessian_factor(None, 64))
    c = t.group_scales()[..., None]
    w = wg.reshape(40, 4, 16)
    np.testing.assert_array_equal(t.q.reshape(40, 4, 16), np.clip(np.rint(w / c), -4, 4))


def test_act_groups_order_is_undone():
    """A diagonal H moves no error, so the column order must not change the result."""
    rng = np.random.default_rng(4)
    wg, shape = prepare(rng.standard_normal((30, 70)).astype(np.float32))
    H = torch.diag(torch.from_numpy(rng.uniform(0.1, 5.0, 70).astype(np.float32)))
    a = quantize_calibrated(wg, shape, 3, hessian_factor(H, 80, 0.01, "natural"))
    f = hessian_factor(H, 80, 0.01, "act-groups")
    assert f.perm is not None and not torch.equal(f.perm, torch.arange(80))
    b = quantize_calibrated(wg, shape, 3, f)
    assert np.array_equal(a.q, b.q) and np.array_equal(a.k, b.k)


# --- degenerate inputs ---------------------------------------------------------------------

def test_dead_channel_and_nan_hessian_give_finite_valid_output():
    X, W = _correlated(11, out=48, n_in=64)
    X[:, 3] = 0.0                                               # a dead input channel
    H = torch.from_numpy(X.T @ X / len(X))
    H[10, :] = float("nan")                                     # NaN activations
    H[:, 10] = float("nan")
    H[20, 20] = float("inf")
    wg, shape = prepare(W)
    f = hessian_factor(H, 64)
    assert f.note["dead_channels"] == 1 and f.note["nonfinite_channels"] == 2
    assert bool(torch.isfinite(f.U).all())
    for d in (1, 2, 3, 4):
        t = quantize_calibrated(wg, shape, d, f)
        _check_valid(t, d)
    # the dead channel neither gives nor takes error: its column is plain rounding
    t = quantize_calibrated(wg, shape, 2, f)
    c = t.group_scales()[:, 0]
    np.testing.assert_array_equal(t.q[:, 3], np.clip(np.rint(W[:, 3] / c), -4, 4))


def test_all_dead_and_unfactorable_hessians_fall_back():
    rng = np.random.default_rng(12)
    wg, shape = prepare(rng.standard_normal((8, 32)).astype(np.float32))
    f = hessian_factor(torch.zeros((32, 32)), 32)
    assert f.note["dead_channels"] == 32 and not f.note["identity"]
    _check_valid(quantize_calibrated(wg, shape, 2, f), 2)
    bad = torch.eye(32)
    bad[0, 1] = bad[1, 0] = 1e4                                 # indefinite beyond any damping tried
    f = hessian_factor(bad, 32)
    assert f.note["identity"] and torch.equal(f.U, torch.eye(32))
    _check_valid(quantize_calibrated(wg, shape, 2, f), 2)
    g = torch.eye(32)
    g[0, 1] = g[1, 0] = 1.5                                     # indefinite, fixed by more damping
    f = hessian_factor(g, 32)
    assert not f.note["identity"] and f.note["damp"] > 0.01


def test_all_zero_matrix():
    wg, shape = prepare(np.zeros((4, 20), np.float32))
    t = quantize_calibrated(wg, shape, 2, hessian_factor(torch.eye(20), 32))
    assert not t.q.any() and not t.k.any() and t.codebook.lo == t.codebook.hi == 1.0


def test_bad_factor_and_options():
    wg, shape = prepare(np.ones((4, 32), np.float32))
    with pytest.raises(TritforgeError, match="Hessian factor"):
        quantize_calibrated(wg, shape, 2, hessian_factor(None, 48))
    with pytest.raises(TritforgeError, match="order"):
        hessian_factor(None, 32, order="random")
    with pytest.raises(TritforgeError, match="damp"):
        hessian_factor(None, 32, damp=float("nan"))
    with pytest.raises(TritforgeError, match="choice"):
        quantize_calibrated(wg, shape, 2, hessian_factor(None, 32), choice="best")


# --- calibration text ----------------------------------------------------------------------

def test_read_text_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n\t ")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "nul.txt").write_bytes(b"abc\x00def")
    with pytest.raises(TritforgeError, match="empty"):
        read_text(str(tmp_path / "empty.txt"))
    with pytest.raises(TritforgeError, match=r"not UTF-8 text \(invalid byte 0xe9 at offset 3\)"):
        read_text(str(tmp_path / "latin1.txt"))
    with pytest.raises(TritforgeError, match="NUL byte"):
        read_text(str(tmp_path / "nul.txt"))
    with pytest.raises(TritforgeError, match="cannot read"):
        read_text(str(tmp_path / "missing.txt"))


def test_calibration_ids_spread_and_errors():
    tok = make_tokenizer()
    text = " ".join(["the old man went to the house"] * 40)
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    opts = CalibOptions(text, "f.txt", seqs=3, length=50)
    ids = calibration_ids(tok, opts)
    assert ids.shape == (3, 50) and ids.dtype == torch.long
    with pytest.raises(TritforgeError, match=f"{n} tokens, shorter than one sequence"):
        calibration_ids(tok, CalibOptions(text, "f.txt", seqs=1, length=n + 1))
    with pytest.raises(TritforgeError, match=f"at most {n // 50} sequences"):
        calibration_ids(tok, CalibOptions(text, "f.txt", seqs=n // 50 + 1, length=50))
    with pytest.raises(TritforgeError, match="--calib-seqs 0"):
        make_options(seqs=0)
    with pytest.raises(TritforgeError, match="--calib-len 1"):
        make_options(length=1)


def test_sequential_inputs(tmp_path):
    """Layer 0 sees the same inputs either way; later layers see the quantized model's."""
    ck = load_checkpoint(make_tiny_model(tmp_path / "src", seed=32))
    kw = dict(seqs=2, length=48)
    flt = quantize_checkpoint(ck, [2], "calibrated", False, make_options(**kw))[2]
    seq = quantize_checkpoint(ck, [2, 3], "calibrated", False, make_options(inputs="sequential", **kw))
    assert set(seq) == {2, 3} and list(seq[2].tensors) == ck.linear_names
    assert seq[2].calibration["inputs"] == "sequential" and seq[2].calibration["tokens"] == 96
    for name, t in seq[2].tensors.items():
        _check_valid(t, 2)
        if name.startswith("model.layers.0.self_attn.") and not name.endswith("o_proj.weight"):
            assert np.array_equal(t.q, flt.tensors[name].q) and np.array_equal(t.k, flt.tensors[name].k)
    last = "model.layers.1.mlp.down_proj.weight"
    assert not np.array_equal(seq[2].tensors[last].q, flt.tensors[last].q)
    for t in seq[3].tensors.values():
        _check_valid(t, 3)
