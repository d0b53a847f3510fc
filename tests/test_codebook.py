"""The log codebook and its integer (mantissa, shift) form."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tritforge.codec.codebook import MANT_BITS, Codebook
from tritforge.errors import TritforgeError


@given(st.floats(1e-6, 1e3), st.floats(1.0, 1e4))
def test_integer_form_keeps_full_mantissa_and_top_is_exact(lo, span):
    hi = lo * span
    cb = Codebook(lo, hi)
    assert cb.values[-1] == hi
    assert np.all(np.diff(cb.values) >= 0)
    if span < 2 ** 15:
        assert cb.mantissa.min() >= 2 ** (MANT_BITS - 1)
        assert cb.max_rel_error <= 2.0 ** -MANT_BITS
    assert cb.mantissa.max() < 2 ** MANT_BITS
    # values are exactly what the hardware represents
    exact = cb.mantissa.astype(np.float64) * 2.0 ** cb.left_shift
    assert np.allclose(exact * cb.host_scale, cb.values, rtol=0, atol=0)


def test_snap_is_nearest_in_log_space():
    cb = Codebook(0.01, 1.0)
    ideal = cb.ideal()
    assert np.array_equal(cb.snap(ideal), np.arange(27))
    mid = np.sqrt(ideal[3] * ideal[4])
    assert cb.snap(np.array([mid * 0.999, mid * 1.001])).tolist() == [3, 4]
    assert cb.snap(np.array([1e-9, 0.0, 5.0])).tolist() == [0, 0, 26]


@pytest.mark.parametrize("lo,hi", [(0, 1), (2, 1), (float("nan"), 1), (1, float("inf"))])
def test_bad_endpoints_are_refused(lo, hi):
    with pytest.raises(TritforgeError, match="codebook endpoints"):
        Codebook(lo, hi)


def test_metadata_round_trip_is_exact():
    cb = Codebook(0.0123456789, 0.987654321)
    assert Codebook.from_meta(cb.to_meta()) == cb
    with pytest.raises(TritforgeError):
        Codebook.from_meta({"lo": "zz"})
