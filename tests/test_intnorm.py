"""codec.intnorm: integer RMSNorm fused with int8 quantization, its rsqrt and width bounds."""
import dataclasses

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec import intnorm
from tritforge.errors import TritforgeError

V = VectorConfig()


@pytest.mark.parametrize("lut,newton,tol", [(6, 1, 5e-4), (6, 0, 2e-2), (4, 2, 2e-4)])
def test_rsqrt_accuracy(lut, newton, tol):
    ss = np.unique(np.concatenate([np.arange(1, 3000), np.geomspace(1, 2 ** 62 - 1, 4000).astype(np.int64)]))
    y, E = intnorm.rsqrt(ss, lut, 15, newton)
    got = y * 2.0 ** -np.asarray(E, dtype=np.float64)
    rel = np.abs(got * np.sqrt(ss.astype(np.float64)) - 1)
    assert rel.max() < tol
    assert rel.max() > tol / 100          # the approximation is real, the tolerance is not slack


def _norm(h, g, eps, v=V):
    w = intnorm.IntNormWeights.from_float(g, eps, v.resid_frac_bits, v.gamma_bits)
    xq, m, e = intnorm.rmsnorm_int8(h, w, v)
    return xq * (m * 2.0 ** -e)[:, None], w


def test_rmsnorm_close_to_float():
    rng = np.random.default_rng(1)
    for scale in (1e-3, 1.0, 40.0, 2e4):
        x = rng.normal(size=(4, 576)) * scale
        x[:, 3] *= 50                                    # an outlier channel, as SmolLM2 has
        x = np.clip(x, -1.3e5, 1.3e5)
        h = np.rint(x * 2 ** V.resid_frac_bits).astype(np.int64)
        xr = h * 2.0 ** -V.resid_frac_bits
        g = rng.normal(size=576) * 0.5
        got, _ = _norm(h, g, 1e-5)
        ref = g * xr / np.sqrt((xr ** 2).mean(-1, keepdims=True) + 1e-5)
        step = np.abs(ref).max(-1, keepdims=True) / 127
        assert (np.abs(got - ref) <= 0.5 * step * 1.02 + np.abs(ref) * 1e-3).all()


def test_rmsnorm_extreme_inputs_reach_the_bounds():
    n = 8192
    v = V
    h = np.full((1, n), 2 ** 31 - 1, np.int64)           # largest residual: hs = 2^NB exactly
    g = np.ones(n)
    w = intnorm.IntNormWeights.from_float(g, 0.0, v.resid_frac_bits, v.gamma_bits)
    assert np.abs(w.g_q).max() < 2 ** (v.gamma_bits - 1)
    assert np.abs(w.g_q).max() >= 2 ** (v.gamma_bits - 2)     # gamma uses its width
    xq, m, e = intnorm.rmsnorm_int8(h, w, v)
    assert (xq == 127).all()
    # the sum of squares reaches n · 2^(2 NB) (the bound of the docstring)
    p = (2 ** 31 - 1).bit_length() - v.norm_in_bits
    hs = (2 ** 31 - 1 + 2 ** (p - 1)) >> p
    assert hs == 2 ** v.norm_in_bits and n * hs * hs < 2 ** 62
    with pytest.raises(AssertionError, match="RMSNorm input"):
        intnorm.rmsnorm_int8(np.full((1, n), 2 ** 31, np.int64), w, v)


def test_rmsnorm_zero_vector_and_eps():
    g = np.ones(8)
    got, w = _norm(np.zeros((1, 8), np.int64), g, 1e-5)
    assert (got == 0).all() and w.eps_q > 0


def test_rmsnorm_shape_refused():
    w = intnorm.IntNormWeights.from_float(np.ones(8), 1e-5, 14, 16)
    with pytest.raises(TritforgeError, match="8"):
        intnorm.rmsnorm_int8(np.zeros((1, 9), np.int64), w, V)


def test_coarser_lut_is_less_accurate():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 64))
    h = np.rint(x * 2 ** 14).astype(np.int64)
    g = np.ones(64)
    xr = h * 2.0 ** -14
    ref = g * xr / np.sqrt((xr ** 2).mean(-1, keepdims=True) + 1e-5)
    errs = []
    for cfg in (V, dataclasses.replace(V, rsqrt_newton=0, rsqrt_lut_bits=3)):
        got, _ = _norm(h, g, 1e-5, cfg)
        errs.append(float(np.abs(got - ref).mean()))
    assert errs[1] > errs[0]
