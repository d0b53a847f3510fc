"""The quantizer: published rule, bounds, modes, edge cases."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tritforge.codec import layout
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import (CANDIDATE_STATS, MODES, group_scales, quantize_matrix,
                                      weight_error)


def _reference_v2_scales(w, d):
    """Straight loop of the published per-group rule, to check the vectorized one."""
    L = layout.max_level(d)
    out = np.zeros((w.shape[0], w.shape[1] // 16), np.float32)
    for r in range(w.shape[0]):
        for g in range(w.shape[1] // 16):
            grp = w[r, 16 * g:16 * g + 16]
            srt = np.sort(np.abs(grp))
            best = None
            for j in CANDIDATE_STATS:
                s = np.float32(srt[j] / np.float32(L))
                q = np.clip(np.rint(grp / s), -L, L) if s > 0 else np.zeros(16)
                e = float(np.square(grp - s * q).sum())
                if best is None or e < best[0]:
                    best = (e, s)
            out[r, g] = best[1]
    return out


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_group_scales_follow_the_published_rule(d):
    w = np.random.default_rng(d).standard_normal((6, 64)).astype(np.float32)
    got = group_scales(w.reshape(6, 4, 16), d)
    assert np.allclose(got, _reference_v2_scales(w, d), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 50)),
                  elements=st.floats(-4, 4, width=32)),
       st.sampled_from(layout.DEPTHS), st.sampled_from(MODES))
def test_levels_bounded_and_dequantization_close(w, d, mode):
    t = quantize_matrix(w, d, mode)
    L = layout.max_level(d)
    assert np.abs(t.q).max() <= L
    assert t.q.shape[1] % 16 == 0 and t.shape == w.shape
    assert not t.q[:, w.shape[1]:].any()                     # padding stays zero
    deq = t.dequantize()
    assert deq.shape == w.shape
    # every weight within half a step of its group's scale, or clipped at the level bound
    s = np.repeat(t.group_scales(), 16, axis=1)[:, : w.shape[1]]
    inside = np.abs(w) <= s * (L + 0.5) * (1 + 1e-5)
    assert np.all(np.abs(w - deq)[inside] <= s[inside] * 0.5 * (1 + 1e-4) + 1e-7)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", layout.DEPTHS)
def test_subnormal_matrix(d, mode):
    """A matrix of the smallest float32 subnormal (its top level 1e-45 / L is 0 in float32,
    found by hypothesis): quantized at the top level, dequantized within half a step."""
    w = np.array([[1e-45, -1e-45]], np.float32)
    t = quantize_matrix(w, d, mode)
    assert np.abs(t.q[0, :2]).tolist() == [layout.max_level(d)] * 2
    assert np.all(np.abs(t.dequantize() - w) <= 1e-45)


def test_zero_matrix_and_zero_groups():
    t = quantize_matrix(np.zeros((3, 32), np.float32), 2)
    assert not t.q.any() and not t.k.any()
    w = np.zeros((2, 32), np.float32)
    w[0, 20] = 1.0
    t = quantize_matrix(w, 2)
    assert t.k[0, 0] == 0 and not t.q[0, :16].any() and not t.q[1].any()
    assert np.allclose(t.dequantize(), w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_inputs_of_every_float_dtype(dtype):
    w = torch.randn(8, 48, generator=torch.Generator().manual_seed(0)).to(dtype)
    t = quantize_matrix(w, 2)
    assert weight_error(w, t)["rel_mse"] < 0.05


@pytest.mark.parametrize("bad,match", [
    (np.array([[np.nan] * 16], np.float32), "NaN/Inf"),
    (np.array([[np.inf] * 16], np.float32), "NaN/Inf"),
    (np.zeros(16, np.float32), "2-D"),
    (np.zeros((2, 16), np.int32), "floating-point"),
    (np.zeros((0, 16), np.float32), "empty"),
])
def test_bad_matrices_are_refused(bad, match):
    with pytest.raises(TritforgeError, match=match):
        quantize_matrix(bad, 2, name="layer.x")


def test_bad_depth_and_mode():
    w = np.ones((1, 16), np.float32)
    with pytest.raises(TritforgeError, match="depth"):
        quantize_matrix(w, 5)
    with pytest.raises(TritforgeError, match="mode"):
        quantize_matrix(w, 2, mode="fancy")


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_improved_mode_lowers_error_on_heavy_tailed_weights(d):
    rng = np.random.default_rng(7)
    w = (rng.standard_t(4, size=(256, 576)) * 0.02).astype(np.float32)
    v2 = weight_error(w, quantize_matrix(w, d, "tritllm-v2"))["rel_mse"]
    ours = weight_error(w, quantize_matrix(w, d, "tritforge"))["rel_mse"]
    assert ours < v2


def test_more_depth_means_less_error():
    w = np.random.default_rng(3).standard_normal((64, 256)).astype(np.float32)
    errs = [weight_error(w, quantize_matrix(w, d))["rel_mse"] for d in layout.DEPTHS]
    assert errs == sorted(errs, reverse=True)


@pytest.mark.parametrize("mode", MODES)
def test_weights_whose_squared_errors_underflow(mode):
    """|w| at the float32 normal minimum: every group's candidate errors underflow to 0
    (found by hypothesis; no group had a positive scale and the codebook had no lower
    end). The top level then serves every group, and the weight comes back."""
    w = np.array([[1.1754944e-38, 0.0, -1.1754944e-38]], np.float32)
    for d in layout.DEPTHS:
        t = quantize_matrix(w, d, mode)
        assert np.allclose(t.dequantize(), w, rtol=1e-5, atol=0)
