"""codec.intattention: int8 KV cache, grouped-query attention with online softmax."""
import dataclasses
import math

import numpy as np
import pytest

from tritforge.accelconfig import AttentionConfig, VectorConfig
from tritforge.codec import intattention as ia
from tritforge.codec.fixedpoint import quantize_int8
from tritforge.errors import TritforgeError

A, V = AttentionConfig(), VectorConfig()
FR = V.resid_frac_bits


def _fix(x):
    return np.rint(x * 2 ** FR).astype(np.int64)


def _float_attention(q, k, v, groups):
    T = q.shape[0]
    k, v = np.repeat(k, groups, 1), np.repeat(v, groups, 1)
    sc = np.einsum("thd,jhd->htj", q, k) / math.sqrt(q.shape[-1])
    sc = np.where(np.arange(T)[None, :, None] >= np.arange(T)[None, None, :], sc, -np.inf)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    return np.einsum("htj,jhd->thd", p / p.sum(-1, keepdims=True), v)


def _dequant(x):
    xq, m, e = quantize_int8(_fix(x), 16)
    return xq * (m * 2.0 ** -e)[..., None] * 2.0 ** -FR


@pytest.mark.parametrize("heads,kv", [(4, 2), (3, 3), (6, 1)])
def test_attention_matches_float_on_the_int8_inputs(heads, kv):
    rng = np.random.default_rng(heads)
    T, hd = 70, 16
    q, k, v = rng.normal(size=(T, heads, hd)) * 2, rng.normal(size=(T, kv, hd)) * 2, rng.normal(size=(T, kv, hd))
    cache = ia.IntKVCache(kv, hd, A, V)
    cache.append(_fix(k), _fix(v))
    got = ia.attend(_fix(q), np.arange(T), cache, A, V) / 2 ** FR
    # the float attention of the int8 values the unit holds: what is left is the softmax's own error
    ref = _float_attention(_dequant(q), _dequant(k), _dequant(v), heads // kv)
    assert np.abs(got - ref).max() < 5e-3 * np.abs(v).max()
    # and the int8 quantization itself is a small error against the float inputs
    assert np.abs(got - _float_attention(q, k, v, heads // kv)).max() < 0.05 * np.abs(v).max()


def test_query_heads_read_their_kv_head():
    rng = np.random.default_rng(0)
    T, hd = 5, 8
    q, k, v = rng.normal(size=(T, 4, hd)), rng.normal(size=(T, 2, hd)), rng.normal(size=(T, 2, hd))
    v[:, 1] += 100.0                                  # KV head 1 is far from KV head 0
    cache = ia.IntKVCache(2, hd, A, V)
    cache.append(_fix(k), _fix(v))
    out = ia.attend(_fix(q), np.arange(T), cache, A, V) / 2 ** FR
    assert (out[:, :2] < 50).all() and (out[:, 2:] > 50).all()


def test_prefill_equals_token_by_token_decode():
    rng = np.random.default_rng(3)
    T, hd = 150, 16                                   # more than two blocks
    q, k, v = (_fix(rng.normal(size=(T, h, hd)) * 3) for h in (4, 2, 2))
    c1 = ia.IntKVCache(2, hd, A, V)
    c1.append(k, v)
    full = ia.attend(q, np.arange(T), c1, A, V)
    c2 = ia.IntKVCache(2, hd, A, V)
    steps = []
    for t in range(T):
        c2.append(k[t:t + 1], v[t:t + 1])
        steps.append(ia.attend(q[t:t + 1], np.array([t]), c2, A, V))
    assert np.array_equal(full, np.concatenate(steps))


def test_extreme_scores_reach_their_bound_and_saturate():
    hd = A.max_head_dim
    top = 2 ** 31 - 1
    q = np.full((1, 1, hd), top, np.int64)
    k = np.full((2, 1, hd), top, np.int64)
    v = np.full((2, 1, hd), -top, np.int64)
    cache = ia.IntKVCache(1, hd, A, V)
    cache.append(k, v)
    assert (cache.k_q == 127).all()                   # q·k = hd · 127² is the score bound
    out = ia.attend(np.concatenate([q, q]), np.arange(2), cache, A, V)
    assert np.abs(out / 2 ** FR + 2 ** (31 - FR)).max() < 2 ** (31 - FR) * 1e-3


def test_context_and_shape_errors():
    cfg = dataclasses.replace(A, max_context=4)
    cache = ia.IntKVCache(1, 8, cfg, V)
    cache.append(np.zeros((4, 1, 8), np.int64), np.zeros((4, 1, 8), np.int64))
    with pytest.raises(TritforgeError, match="max_context=4"):
        cache.append(np.zeros((1, 1, 8), np.int64), np.zeros((1, 1, 8), np.int64))
    with pytest.raises(TritforgeError, match="beyond the 4 cached keys"):
        ia.attend(np.zeros((1, 1, 8), np.int64), np.array([4]), cache, cfg, V)
    with pytest.raises(TritforgeError, match="query heads"):
        ia.attend(np.zeros((1, 3, 8), np.int64), np.array([0]), ia.IntKVCache(2, 8, cfg, V), cfg, V)


def test_int8_head():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(30, 64))
    wq, m, e = ia.quantize_rows_int8(w, 16)
    assert np.abs(wq).max() == 127
    assert np.abs(wq * (m * 2.0 ** -e)[:, None] - w).max() <= np.abs(w).max() / 127 / 2 * 1.001
    x = rng.integers(-127, 128, size=(3, 64))
    assert np.array_equal(ia.int8_head(wq, x), x @ wq.T)
    big = ia.int8_head(np.full((1, 8192), -127), np.full((1, 8192), -128))
    assert big[0, 0] == 8192 * 127 * 128 and big[0, 0] < 2 ** 31
