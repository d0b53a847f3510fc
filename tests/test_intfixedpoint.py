"""codec.fixedpoint: rounding shifts, normalization, int8 quantization, requantization."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tritforge.codec import fixedpoint as fp


def test_rshift_round_is_round_half_up():
    x = np.array([-6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6])
    assert fp.rshift_round(x, 1).tolist() == [-3, -2, -1, -1, 0, 0, 1, 1, 2, 3, 3]
    assert fp.rshift_round(x, 0).tolist() == x.tolist()
    assert fp.rshift_round(np.array([3]), -2).tolist() == [12]
    assert fp.rshift_round(np.array([7, 7]), np.array([1, -1])).tolist() == [4, 14]


@given(st.integers(0, 2 ** 62))
def test_bitlen_matches_python(v):
    assert int(fp.bitlen(np.array([v]))[0]) == v.bit_length()


@given(st.integers(1, 2 ** 62), st.integers(8, 20))
def test_normalize_range_and_value(v, bits):
    m, k = fp.normalize(np.array([v]), bits)
    m, k = int(m[0]), int(k[0])
    assert 2 ** (bits - 1) <= m < 2 ** bits
    assert m == (v >> k if k >= 0 else v << -k)


@given(st.floats(1e-12, 1e12), st.integers(8, 20))
def test_to_multiplier(real, bits):
    M, e = fp.to_multiplier(real, bits)
    assert 2 ** (bits - 1) <= M < 2 ** bits
    assert abs(M * 2.0 ** -e / real - 1) <= 2.0 ** -bits


@settings(max_examples=60)
@given(st.lists(st.integers(-(2 ** 39) + 1, 2 ** 39 - 1), min_size=1, max_size=40))
def test_quantize_int8_within_half_a_step(vals):
    v = np.array([vals])
    xq, m, e = fp.quantize_int8(v, 16)
    mu = max(abs(x) for x in vals)
    assert np.abs(xq).max() <= 127
    if mu == 0:
        assert (xq == 0).all()
        return
    step = float(m[0]) * 2.0 ** -float(e[0])
    assert abs(step / (mu / 127) - 1) < 2 ** -14           # 1/127 as 16-bit multiplier, truncation
    # x_q is v · 127 / mu rounded (the reciprocal's truncation adds < 2^-15 relative)
    err = np.abs(xq[0] - v[0] * 127 / mu)
    assert err.max() <= 0.5 + 127 * 2.0 ** -15
    assert int(np.abs(xq).max()) == 127


def test_quantize_int8_extreme_widths():
    v = np.array([[2 ** 39 - 1, -(2 ** 39 - 1), 1]])
    xq, m, e = fp.quantize_int8(v, 16)
    assert xq[0].tolist() == [127, -127, 0]
    with pytest.raises(AssertionError, match="bound"):
        fp.quantize_int8(np.array([[2 ** 39]]), 16)
    zero = fp.quantize_int8(np.zeros((2, 4), np.int64), 16)
    assert (zero[0] == 0).all() and (zero[1] == 2 ** 15).all() and (zero[2] == 15).all()


def test_requantize_value_and_preshift():
    # the largest engine accumulator of the default HwConfig (50 bits) fits after the preshift
    from tritforge.hwconfig import HwConfig
    bound = HwConfig().widths.bound
    a = fp.acc_preshift(bound, 16)
    assert (bound >> a).bit_length() + 16 <= 62
    A = np.array([[bound, -bound, 12345]])
    M, e = fp.to_multiplier(3.7e-9, 16)
    y = fp.requantize(A, a, np.array([[M]]), np.array([[e]]), 14, 40)
    ref = A * 3.7e-9 * 2 ** 14
    assert np.all(np.abs(y - ref) <= np.abs(ref) * 2.0 ** -15 + 1)
    # saturation at the output width
    assert fp.requantize(A, a, np.array([[M]]), np.array([[e - 20]]), 14, 32)[0, 0] == 2 ** 31 - 1


def test_exact_matmul_all_paths_agree():
    rng = np.random.default_rng(0)
    a = rng.integers(-127, 128, (5, 33))
    b = rng.integers(-127, 128, (33, 7))
    ref = np.array([[sum(int(a[i, k]) * int(b[k, j]) for k in range(33)) for j in range(7)] for i in range(5)])
    for bound in (33 * 127 * 127, 2 ** 40, 2 ** 60):
        assert np.array_equal(fp.exact_matmul(a, b, bound), ref)
