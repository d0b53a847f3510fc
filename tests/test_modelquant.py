"""Model-level quantization: shared preparation across depths, figures and totals, configs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tritforge.codec import layout, packfile
from tritforge.errors import TritforgeError
from tritforge.codec.modelquant import parse_configs, quantize_model
from tritforge.codec.quantize import quantize_matrix, weight_error


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(48, 64, generator=g) * 0.05,
        "b.weight": (torch.randn(32, 88, generator=g) * 0.02).to(torch.bfloat16),   # padded to 96
        "c.weight": (torch.randn(16, 32, generator=g)).to(torch.float16),
    }


@pytest.mark.parametrize("mode", ["tritllm-v2", "tritforge"])
def test_each_depth_equals_quantize_matrix(mode):
    ts = tensors()
    res = quantize_model(ts, list(ts), [1, 2, 3, 4], mode, progress=False)
    assert sorted(res) == [1, 2, 3, 4]
    for d, mq in res.items():
        assert mq.depth == d and mq.mode == mode
        for name, w in ts.items():
            ref = quantize_matrix(w, d, mode, name)
            t = mq.tensors[name]
            assert np.array_equal(t.q, ref.q) and np.array_equal(t.k, ref.k), (d, name)
            assert t.codebook == ref.codebook and t.shape == ref.shape


def test_figures_and_totals():
    ts = tensors(1)
    mq = quantize_model(ts, list(ts), [2], progress=False)[2]
    for name, w in ts.items():
        s, err = mq.stats[name], weight_error(w, mq.tensors[name])
        assert s.shape == tuple(w.shape)
        assert s.rel_mse == pytest.approx(err["rel_mse"], rel=1e-12)
        assert s.sqnr_db == pytest.approx(err["sqnr_db"], rel=1e-12)
        assert s.bytes == packfile.info(name, mq.tensors[name]).bytes
    assert mq.stats["b.weight"].pad == 8 and mq.stats["a.weight"].pad == 0
    # the padded matrix pays for its padding in physical bpw
    assert mq.stats["b.weight"].physical_bpw > mq.stats["a.weight"].physical_bpw
    assert mq.weights == 48 * 64 + 32 * 88 + 16 * 32
    assert mq.info_bpw == layout.info_bpw(2)
    assert mq.physical_bpw == pytest.approx(mq.bytes * 8 / mq.weights)
    total_err = sum(s.sq_err for s in mq.stats.values())
    total_ref = sum(s.sq_ref for s in mq.stats.values())
    assert mq.rel_mse == pytest.approx(total_err / total_ref)
    assert mq.sqnr_db == pytest.approx(-10 * math.log10(mq.rel_mse))
    summ = mq.summary()
    assert summ["weights"] == mq.weights and summ["physical_bpw"] == mq.physical_bpw
    assert [m["name"] for m in [s.to_dict() for s in mq.stats.values()]] == list(ts)


def test_error_falls_with_depth():
    ts = tensors(2)
    res = quantize_model(ts, list(ts), [1, 2, 3, 4], progress=False)
    errs = [res[d].rel_mse for d in (1, 2, 3, 4)]
    assert errs == sorted(errs, reverse=True) and errs[0] > 10 * errs[2]


def test_only_named_matrices_are_quantized():
    ts = tensors()
    mq = quantize_model(ts, ["c.weight"], [1], progress=False)[1]
    assert list(mq.tensors) == ["c.weight"]


def test_duplicate_depths_are_done_once():
    ts = tensors()
    res = quantize_model(ts, list(ts), [2, 2, 1], progress=False)
    assert list(res) == [2, 1]


@pytest.mark.parametrize("kwargs, pattern", [
    ({"depths": [5]}, "depth d=5"),
    ({"depths": []}, "at least one"),
    ({"mode": "v3"}, "mode 'v3'"),
    ({"names": []}, "no linear matrices"),
])
def test_bad_requests(kwargs, pattern):
    ts = tensors()
    args = {"tensors": ts, "names": list(ts), "depths": [2], "mode": "tritllm-v2", **kwargs}
    with pytest.raises(TritforgeError, match=pattern):
        quantize_model(progress=False, **args)


def test_nan_matrix_is_named():
    ts = tensors()
    ts["b.weight"] = ts["b.weight"].clone()
    ts["b.weight"][0, 0] = float("nan")
    with pytest.raises(TritforgeError, match=r"b\.weight: 1 NaN/Inf"):
        quantize_model(ts, list(ts), [2], progress=False)


def test_parse_configs():
    assert [c[:2] for c in parse_configs("uniform-d1,uniform-d2,uniform-d3,uniform-d4")] == [
        ("uniform-d1", 1), ("uniform-d2", 2), ("uniform-d3", 3), ("uniform-d4", 4)]
    assert parse_configs(" uniform-d3 , uniform-d3,") == [("uniform-d3", 3, None)]
    mixed = parse_configs("mixed-d3-bpw4.2,d2scale-sens002")
    assert [(c.name, c.depth, c.mixed.rule, c.mixed.value) for c in mixed] == [
        ("mixed-d3-bpw4.2", 3, "bpw", 4.2), ("d2scale-sens002", 2, "sens", 0.002)]
    for bad in ("uniform-d5", "d2", "uniform-d", "", ",", "mixed-d5-bpw3", "mixed-d3-bpw0.1",
                "mixed-d3-bpw", "d3scale-sens", "d3scale-sens0.2"):
        with pytest.raises(TritforgeError):
            parse_configs(bad)
