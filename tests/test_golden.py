"""The integer golden reference: definitions, plane decomposition, the width proof."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tritforge.codec import layout
from tritforge.codec.codebook import Codebook
from tritforge.errors import TritforgeError
from tritforge.codec.golden import (ACT_MIN, accumulate, accumulators, gemv, group_dots,
                                    group_dots_by_planes, quantize_activations, widths)
from tritforge.codec.quantize import TritTensor, quantize_matrix


def test_activation_quantization():
    x = np.array([[0.5, -1.0, 0.25, 0.0], [0, 0, 0, 0]])
    xq, s = quantize_activations(x, in_padded=16)
    assert xq.shape == (2, 16) and xq.dtype == np.int8
    assert xq[0, :4].tolist() == [64, -127, 32, 0] and s[0] == 1.0 / 127
    assert not xq[1].any() and s[1] == 1.0
    with pytest.raises(TritforgeError):
        quantize_activations(np.array([np.nan]))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(layout.DEPTHS), st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_plane_decomposition_equals_direct_dot(d, rows, ng, seed):
    rng = np.random.default_rng(seed)
    L = layout.max_level(d)
    q = rng.integers(-L, L + 1, (rows, 16 * ng)).astype(np.int8)
    xq = rng.integers(-127, 128, (3, 16 * ng)).astype(np.int8)
    direct = np.einsum("rgj,tgj->trg", q.reshape(rows, ng, 16).astype(np.int64),
                       xq.reshape(3, ng, 16).astype(np.int64))
    assert np.array_equal(group_dots(q, xq), direct)
    assert np.array_equal(group_dots_by_planes(q, xq, d), direct)


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_gemv_close_to_float_product(d):
    rng = np.random.default_rng(d)
    w = rng.standard_normal((32, 200)).astype(np.float32)
    x = rng.standard_normal((4, 200))
    t = quantize_matrix(w, d)
    y = gemv(t, x)
    ref = x @ t.dequantize().astype(np.float64).T
    rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert rel < 0.02          # only int8 activation rounding separates them


def test_accumulator_definition_on_a_hand_case():
    cb = Codebook(0.25, 1.0)
    q = np.zeros((1, 32), np.int8)
    q[0, 0], q[0, 16] = 1, -1
    k = np.array([[26, 0]], np.uint8)
    t = TritTensor(q, k, cb, 1, (1, 32))
    xq = np.zeros(32, np.int8)
    xq[0], xq[16] = 100, 50
    A = accumulators(t, xq)
    m, sh = cb.mantissa, cb.left_shift
    assert A.tolist() == [int(m[26]) * 100 * 2 ** int(sh[26]) - int(m[0]) * 50 * 2 ** int(sh[0])]
    y = A * cb.host_scale                                     # s_x = 1
    assert np.isclose(y[0], 100 * cb.values[26] - 50 * cb.values[0], rtol=1e-12)


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_width_bound_is_reached_exactly_and_fits(d):
    in_features, F, S = 8192, 12, 15
    w = widths(d, in_features, F, S)
    L = layout.max_level(d)
    ng = in_features // 16
    q = np.full((2, in_features), L, np.int8)
    q[1] = -L
    xq = np.full(in_features, ACT_MIN, np.int8)         # -128: the int8 minimum
    mant = np.full(27, 2 ** F - 1, np.int64)
    shift = np.full(27, S, np.int64)
    A = accumulate(group_dots(q, xq), np.zeros((2, ng), np.int64), mant, shift)
    assert abs(int(A[0])) == w.bound and abs(int(A[1])) == w.bound
    assert -(2 ** (w.acc - 1)) <= int(A.min()) and int(A.max()) < 2 ** (w.acc - 1)
    assert w.bound >= 2 ** (w.acc - 2)                      # and the width is not wasteful
