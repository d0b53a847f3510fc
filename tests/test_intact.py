"""codec.intact: integer SiLU·mul against float, extreme inputs."""
import dataclasses

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec import intact

V = VectorConfig()
FR = V.resid_frac_bits


def test_sigmoid_accuracy_and_symmetry():
    x = np.arange(-(20 << FR), 20 << FR, 97)
    s = intact.sigmoid_int(x, V) / 2 ** V.sigmoid_frac_bits
    ref = 1 / (1 + np.exp(-x / 2 ** FR))
    assert np.abs(s - ref).max() < 1e-4
    assert np.array_equal(intact.sigmoid_int(x, V) + intact.sigmoid_int(-x, V)[...],
                          np.where(x == 0, 2 * intact.sigmoid_int(x, V), 2 ** V.sigmoid_frac_bits))


def test_silu_mul_close_to_float():
    rng = np.random.default_rng(0)
    g = rng.normal(size=5000) * 6
    u = rng.normal(size=5000) * 3
    y = intact.silu_mul(np.rint(g * 2 ** FR), np.rint(u * 2 ** FR), V) / 2 ** FR
    ref = g / (1 + np.exp(-g)) * u
    assert np.abs(y - ref).max() < 2e-3 * (1 + np.abs(ref)).max()


def test_coarse_lut_is_worse():
    g = np.linspace(-8, 8, 4001)
    ref = 1 / (1 + np.exp(-g))
    errs = [np.abs(intact.sigmoid_int(np.rint(g * 2 ** FR), dataclasses.replace(V, silu_lut_bits=b))
                   / 2 ** V.sigmoid_frac_bits - ref).max() for b in (3, 8)]
    assert errs[0] > 20 * errs[1]


def test_extreme_inputs_saturate_within_bounds():
    top = 2 ** (V.resid_bits - 1) - 1
    g = np.array([top, -top, top, 0])
    u = np.array([top, top, -top, top])
    y = intact.silu_mul(g, u, V)
    assert y.tolist() == [top, 0, -top - 1, 0]
    with pytest.raises(AssertionError, match="SiLU gate input"):
        intact.silu_mul(np.array([top + 1]), np.array([1]), V)
