"""codec.intsoftmax: the integer 2^x and the online softmax, against float."""
import dataclasses

import numpy as np
import pytest

from tritforge.accelconfig import AttentionConfig
from tritforge.codec import intsoftmax

A = AttentionConfig()


@pytest.mark.parametrize("method,tol", [("lut", 1.5e-3), ("poly2", 4e-3)])
def test_exp2neg_accuracy(method, tol):
    cfg = dataclasses.replace(A, exp_method=method)
    SF, PF = cfg.score_frac_bits, cfg.prob_frac_bits
    x = -np.arange(0, 24 << SF)
    got = intsoftmax.exp2neg(x, cfg) / 2 ** PF
    ref = 2.0 ** (x / 2 ** SF)
    err = np.abs(got - ref)
    assert (err <= tol * ref + 2.0 ** -PF).all()
    assert err.max() > tol / 20                      # a real approximation
    assert intsoftmax.exp2neg(np.array([0]), cfg)[0] == 2 ** PF      # exactly one at 0
    assert intsoftmax.exp2neg(np.array([-(PF + 2) << SF]), cfg)[0] == 0
    assert (np.diff(got) <= 0).all()                 # monotone
    with pytest.raises(AssertionError):
        intsoftmax.exp2neg(np.array([1]), cfg)


def test_lut_size_matters():
    x = -np.arange(0, 1 << A.score_frac_bits)
    ref = 2.0 ** (x / 2 ** A.score_frac_bits)
    errs = [np.abs(intsoftmax.exp2neg(x, dataclasses.replace(A, exp_lut_bits=b)) / 2 ** A.prob_frac_bits
                   - ref).max() for b in (4, 8)]
    assert errs[0] > 8 * errs[1]


@pytest.mark.parametrize("block", [1, 3, 64])
def test_online_softmax_matches_float(block):
    cfg = dataclasses.replace(A, block=block)
    rng = np.random.default_rng(0)
    n = 50
    z = np.rint(rng.normal(size=(3, n)) * 4 * 2 ** cfg.score_frac_bits).astype(np.int64)
    vals = rng.integers(-100, 100, size=(n, 2))
    sm = intsoftmax.OnlineSoftmax((3,), 2, cfg)
    for j in range(0, n, block):
        zz = z[:, j:j + block]
        sm.update(zz, np.ones_like(zz, bool), lambda p, j=j: p @ vals[j:j + p.shape[1]])
    zf = z / 2 ** cfg.score_frac_bits
    p = 2.0 ** (zf - zf.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ vals
    got = sm.o / sm.l[:, None]
    assert np.abs(got - ref).max() < 0.5
    assert sm.m.tolist() == z.max(-1).tolist()


def test_running_sum_reaches_its_bound():
    cfg = A
    ctx = 300
    sm = intsoftmax.OnlineSoftmax((1,), 1, cfg)
    for j in range(0, ctx, cfg.block):
        k = min(cfg.block, ctx - j)
        sm.update(np.zeros((1, k), np.int64), np.ones((1, k), bool), lambda p: p.sum(-1, keepdims=True))
    assert sm.l[0] == ctx * 2 ** cfg.prob_frac_bits          # l <= ctx · 2^PF, reached
    assert int(sm.l[0]).bit_length() <= cfg.prob_frac_bits + ctx.bit_length() + 1


def test_masked_block_changes_nothing():
    sm = intsoftmax.OnlineSoftmax((1,), 1, A)
    sm.update(np.array([[5000, -300]]), np.array([[True, True]]), lambda p: p.sum(-1, keepdims=True))
    before = (sm.m.copy(), sm.l.copy(), sm.o.copy())
    sm.update(np.array([[9999, 9999]]), np.array([[False, False]]), lambda p: p.sum(-1, keepdims=True))
    assert all(np.array_equal(a, b) for a, b in zip(before, (sm.m, sm.l, sm.o)))
