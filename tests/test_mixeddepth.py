"""Variable depth per group (issue 21, codec half): the depth choice, the variable-depth
stream and its reader, the golden reference, the FP16 export, inspect and the quantize CLI
with a mixed config (tiny random models; no downloads)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.numpy import load_file, save_file

from tinymodels import make_tiny_model
from tritforge.cli import main
from tritforge.codec import golden, layout, mixeddepth, packfile
from tritforge.codec.modelquant import parse_config, quantize_mixed
from tritforge.errors import TritforgeError


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, (r, c) in enumerate(((24, 64), (16, 40), (32, 48))):
        w = rng.standard_normal((r, c)).astype(np.float32)
        w[:, : c // 4] *= 6.0                                  # some groups matter more
        out[f"layers.{i}.w.weight"] = w
    return out


def _energy(tensors, seed=1):
    rng = np.random.default_rng(seed)
    return {n: rng.gamma(0.5, 2.0, t.shape[1]).astype(np.float32) for n, t in tensors.items()}


def _mixed(names_bpw, tensors=None, energy=None, mode="tritforge"):
    tensors = tensors or _tensors()
    cfgs = [parse_config(n).mixed for n in names_bpw]
    return quantize_mixed(tensors, list(tensors), cfgs, mode, energy, progress=False)


# --- the depth choice -------------------------------------------------------------------

def test_depth_choice_is_monotone_in_the_bpw_target():
    ts = _tensors()
    names = [f"mixed-d3-bpw{b}" for b in ("2.2", "3.0", "3.6", "4.2", "4.8")]
    res = _mixed(names, ts, _energy(ts))
    prev = None
    for n in names:
        r = res[n]
        assert r.physical_bpw <= float(n.split("bpw")[1]) + 1e-9
        gd = np.concatenate([t.group_depth.reshape(-1) for t in r.tensors.values()])
        if prev is not None:                     # a higher target never makes a group shallower
            assert (gd >= prev).all()
            assert (gd > prev).any()
        prev = gd
    # the error falls as bytes rise
    mses = [res[n].rel_mse for n in names]
    assert mses == sorted(mses, reverse=True)


def test_depth_choice_is_monotone_in_lambda():
    rng = np.random.default_rng(3)
    errs = np.sort(rng.gamma(1.0, 1.0, (500, 3)), axis=1)[:, ::-1].copy()    # deeper: less error
    prev = None
    for lam in (0.0, 1e-3, 1e-2, 0.05, 0.2, 1.0, 10.0):
        col = mixeddepth.choose(errs, 3, lam)
        if prev is not None:
            assert (col <= prev).all()
        prev = col
    assert (mixeddepth.choose(errs, 3, 0.0) == 2).all() and (mixeddepth.choose(errs, 3, 1e6) == 0).all()


def test_sensitivity_steers_the_depths():
    ts = _tensors()
    name = "layers.0.w.weight"
    hot = {n: np.ones(t.shape[1], np.float32) for n, t in ts.items()}
    hot[name] = hot[name].copy()
    hot[name][32:48] = 1e4                     # input channels 32..47: group column 2
    r = _mixed(["mixed-d3-bpw3.4"], ts, hot)["mixed-d3-bpw3.4"]
    gd = r.tensors[name].group_depth
    assert (gd[:, 2] == 3).all() and gd[:, 2].mean() > gd[:, [0, 1, 3]].mean()


def test_per_weight_sensitivity_steers_the_depths():
    ts = _tensors()
    name = "layers.2.w.weight"
    fisher = {n: np.ones(t.shape, np.float32) for n, t in ts.items()}
    fisher[name] = fisher[name].copy()
    fisher[name][5] = 1e4                        # one row matters much more
    r = _mixed(["mixed-d3-bpw3.4"], ts, fisher)["mixed-d3-bpw3.4"]
    assert r.mixed["sensitivity"] == "fisher"
    gd = r.tensors[name].group_depth
    assert (gd[5] == 3).all() and gd[5].mean() > np.delete(gd, 5, axis=0).mean()
    with pytest.raises(TritforgeError, match="sensitivities of shape"):
        _mixed(["mixed-d3-bpw3.4"], ts, {name: np.ones((3, 3), np.float32)})


def test_threshold_rule_and_depth_zero():
    ts = _tensors()
    ts["layers.1.w.weight"][:, :16] = 0.0          # a group column of zeros
    res = _mixed(["d2scale-sens0", "d2scale-sens05", "d3scale-sens1"], ts)
    r0, r5 = res["d2scale-sens0"], res["d2scale-sens05"]
    t0 = r0.tensors["layers.1.w.weight"]
    assert (t0.group_depth[:, 0] == 0).all() and (t0.q[:, :16] == 0).all()    # zero groups: depth 0
    assert r0.depth_histogram()[2] > r5.depth_histogram()[2]
    # the rule as documented: the shallowest depth whose added error is within tau of the energy
    t = res["d3scale-sens1"].tensors["layers.0.w.weight"]
    assert set(np.unique(t.group_depth)) <= {1, 2, 3}


def test_levels_are_the_top_planes_of_depth_d():
    r = _mixed(["mixed-d3-bpw3.2"], None, None, "tritllm-v2")["mixed-d3-bpw3.2"]
    for t in r.tensors.values():
        step = 3 ** (3 - t.group_depth.astype(np.int64))
        qg = t.q.reshape(t.k.shape + (16,)).astype(np.int64)
        assert (qg % step[..., None] == 0).all()
        assert (np.abs(qg) <= step[..., None] * ((3 ** t.group_depth.astype(np.int64)[..., None] - 1) // 2)).all()


def test_golden_agrees_with_the_dequantized_float():
    r = _mixed(["mixed-d3-bpw3.6"], None, None)["mixed-d3-bpw3.6"]
    rng = np.random.default_rng(5)
    for t in r.tensors.values():
        x = rng.standard_normal((3, t.shape[1]))
        xq, s = golden.quantize_activations(x, t.in_padded)
        acc = golden.accumulators(t, xq)
        planes = golden.accumulate(golden.group_dots_by_planes(t.q, xq, t.depth), t.k,
                                   t.codebook.mantissa, t.codebook.left_shift)
        assert np.array_equal(acc, planes)
        y = golden.rescale(acc, s, t)
        w = t.dequantize().astype(np.float64)
        ref = (xq[:, : t.shape[1]].astype(np.float64) * s[:, None]) @ w.T
        assert np.allclose(y, ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())


# --- the stream and its reader ----------------------------------------------------------

@pytest.mark.parametrize("base", [1, 2, 3, 4])
def test_var_stream_round_trip(base):
    rng = np.random.default_rng(base)
    rows, cols = 9, 80
    gd = rng.choice(layout.var_depths(base), size=(rows, cols // 16)).astype(np.uint8)
    k = rng.integers(0, 27, size=gd.shape).astype(np.uint8)
    k[gd == 0] = 0
    lim = (3 ** gd.astype(np.int64) - 1) // 2
    lv = rng.integers(-40, 41, size=(rows, cols // 16, 16)) % (2 * lim[..., None] + 1) - lim[..., None]
    q = (lv * 3 ** (base - gd.astype(np.int64))[..., None]).reshape(rows, cols).astype(np.int8)
    data = layout.pack_var_matrix(q, k, gd, base)
    n = layout.var_stream_trits(gd)
    assert n == int((4 + 16 * gd.astype(np.int64)).sum()) and data.size == -(-n // 5)
    q2, k2, gd2 = layout.unpack_var_matrix(data, n, rows, cols, base)
    assert np.array_equal(q2, q) and np.array_equal(k2, k) and np.array_equal(gd2, gd)
    # the group is a prefix of the full-depth group: header, then planes most significant first
    t = layout.encode_var_matrix(q, k, gd, base)
    g0 = int(gd[0, 0])
    assert t[0] == g0 - base + 1
    planes = layout.to_trits(q[0, :16], base)
    for j in range(g0):
        assert np.array_equal(t[4 + 16 * j: 4 + 16 * (j + 1)], planes[:, base - 1 - j])


def test_reader_refuses_a_bad_depth_field():
    q = np.zeros((1, 32), np.int8)
    k = np.zeros((1, 2), np.uint8)
    gd = np.array([[1, 0]], np.uint8)
    t = layout.encode_var_matrix(q, k, gd, 1)
    t[16 + 4] = -1                                    # group 1's depth trit: depth 1 - 1 - 1 = -1
    with pytest.raises(TritforgeError, match=r"m: group 1 \(row 0, group 1\) has depth field -1, depth -1 out of range"):
        layout.unpack_var_matrix(layout.pack_trits(t), t.size, 1, 32, 1, what="m")


def test_reader_refuses_a_group_past_the_end_and_leftover_trits():
    rng = np.random.default_rng(0)
    q = (rng.integers(-4, 5, (2, 32)) * 3).astype(np.int8)      # multiples of 3: depth 2 of base 3
    k = np.full((2, 2), 5, np.uint8)
    gd = np.full((2, 2), 2, np.uint8)
    t = layout.encode_var_matrix(q, k, gd, 3)
    t[3 * 36] = 1                                     # last group claims depth 3: 16 trits more
    with pytest.raises(TritforgeError, match=r"m: group 3 \(row 1, group 1\) runs past the stream end"):
        layout.unpack_var_matrix(layout.pack_trits(t), t.size, 2, 32, 3, what="m")
    t[3 * 36] = -1                                    # last group claims depth 1: it ends early
    with pytest.raises(TritforgeError, match="m: 16 trits left after the last group"):
        layout.unpack_var_matrix(layout.pack_trits(t), t.size, 2, 32, 3, what="m")
    with pytest.raises(TritforgeError, match=r"m: \d+ bytes, expected"):
        layout.unpack_var_matrix(layout.pack_trits(t)[:-2], t.size, 2, 32, 3, what="m")


def test_packed_file_round_trip_and_version(tmp_path):
    res = _mixed(["mixed-d3-bpw3.6", "mixed-d2-bpw2.4"])
    for name, r in res.items():
        path = str(tmp_path / f"{name}.safetensors")
        infos = packfile.write_packed(path, r.tensors, {"source": "t"})
        assert sum(i.bytes for i in infos) == r.bytes
        back, _ = packfile.read_packed(path)
        for n, t in r.tensors.items():
            b = back[n]
            assert np.array_equal(b.q, t.q) and np.array_equal(b.k, t.k)
            assert np.array_equal(b.group_depth, t.group_depth) and b.depth == t.depth
            assert np.array_equal(b.dequantize(), t.dequantize())
        from safetensors import safe_open

        with safe_open(path, "np") as f:
            assert f.metadata()["format_version"] == "3"
        infos2, _ = packfile.read_info(path)
        assert [(i.bytes, i.trits, i.groups_by_depth) for i in infos2] == \
            [(i.bytes, i.trits, i.groups_by_depth) for i in infos]


def _rewrite(path, tmp_path, edit):
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        meta = dict(f.metadata())
    arrays = load_file(path)
    arrays, meta = edit(arrays, meta)
    bad = str(tmp_path / "bad.safetensors")
    save_file(arrays, bad, metadata=meta)
    return bad


def test_packed_file_refuses_a_truncated_stream_and_a_version_2_label(tmp_path):
    r = _mixed(["mixed-d3-bpw3.6"])["mixed-d3-bpw3.6"]
    path = str(tmp_path / "m.safetensors")
    packfile.write_packed(path, r.tensors, {"source": "t"})
    name = "layers.1.w.weight"

    def shorten(arrays, meta):
        ents = json.loads(meta["tensors"])
        v = ents[name]["variable_depth"]
        hist = v["groups_by_depth"]
        # claim one group of depth 3 as depth 2 in the metadata: 16 trits fewer than the stream holds
        hist[3] -= 1
        hist[2] += 1
        v["stream_trits"] -= 16
        trits = layout.unpack_trits(arrays[f"{name}.trits"], v["stream_trits"] + 16)[: v["stream_trits"]]
        arrays[f"{name}.trits"] = layout.pack_trits(trits)
        ents[name]["sha256"]["trits"] = packfile.sha256(arrays[f"{name}.trits"])
        meta["tensors"] = json.dumps(ents)
        return arrays, meta

    bad = _rewrite(path, tmp_path, shorten)
    with pytest.raises(TritforgeError) as exc:
        packfile.read_packed(bad)
    msg = str(exc.value)
    assert "\n" not in msg and bad in msg and name in msg and ("runs past the stream end" in msg
                                                                or "ends at trit" in msg)

    def relabel(arrays, meta):
        meta["format_version"] = "2"
        return arrays, meta

    with pytest.raises(TritforgeError, match="layers.0.w.weight is a variable-depth matrix in a version-2 file"):
        packfile.read_packed(_rewrite(path, tmp_path, relabel))


# --- the CLI ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_mixed(tmp_path_factory):
    base = tmp_path_factory.mktemp("mixed")
    src = make_tiny_model(base / "src", seed=7)
    out = base / "out"
    rc = main(["quantize", "--model", src, "--configs", "uniform-d3,mixed-d3-bpw4.2", "--mode", "tritforge",
               "--calib-seqs", "2", "--calib-len", "64", "--out", str(out), "--quiet", "--ppl-tokens", "200"])
    assert rc == 0
    return src, out


def test_quantize_cli_writes_a_mixed_config(run_mixed, capsys):
    src, out = run_mixed
    folder = out / "mixed-d3-bpw4.2"
    assert sorted(os.listdir(folder)) == ["model", "model.trit.safetensors", "packed", "report.json"]
    rep = json.loads((folder / "report.json").read_text())
    q = rep["quant"]
    assert rep["packed_roundtrip_exact"] is True and q["depth"] == 3
    assert q["physical_bpw"] <= 4.2 and sum(q["depth_histogram"]) > 0
    assert q["mixed"]["rule"] == "bpw" and q["mixed"]["sensitivity"] == "fisher"
    assert q["mixed"]["sensitivity_text"]["tokens"] == 128
    uni = json.loads((out / "uniform-d3" / "report.json").read_text())
    assert q["bytes"] < 0.85 * uni["quant"]["bytes"]
    assert rep["perplexity"]["quantized"] > 1
    # the FP16 export holds exactly the dequantized weights
    tensors, _ = packfile.read_packed(str(folder / "model.trit.safetensors"))
    from safetensors.torch import load_file as load_torch

    exported = load_torch(str(folder / "model" / "model.safetensors"))
    for n, t in tensors.items():
        assert t.variable
        assert torch.equal(exported[n], torch.from_numpy(t.dequantize()).half())


def test_packed_model_folder_loads_with_transformers(run_mixed):
    import tritforge  # noqa: F401  (registers the quantizer)
    from transformers import AutoModelForCausalLM

    _, out = run_mixed
    folder = out / "mixed-d3-bpw4.2"
    packed = AutoModelForCausalLM.from_pretrained(str(folder / "packed"))
    fp16 = AutoModelForCausalLM.from_pretrained(str(folder / "model"), dtype=torch.float32)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.inference_mode():
        a, b = packed(ids).logits.float(), fp16(ids).logits
    assert float((a - b).abs().max()) < 2e-2


def test_inspect_shows_the_depth_histogram(run_mixed, capsys):
    _, out = run_mixed
    folder = out / "mixed-d3-bpw4.2"
    capsys.readouterr()
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "tritforge-packed v3" in text and "groups by depth 0/1/2/3" in text and " 3v " in text
    assert "variable depth per group, groups by depth" in text and "mean depth" in text
    assert main(["inspect", str(folder), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    tot = res["total"]
    rep = json.loads((folder / "report.json").read_text())
    assert tot["groups_by_depth"] == rep["quant"]["depth_histogram"] and tot["variable_depth"]
    assert tot["physical_bpw"] == pytest.approx(rep["quant"]["physical_bpw"])
    assert all(sum(r["groups_by_depth"]) == r["shape"][0] * (-(-r["shape"][1] // 16)) for r in res["matrices"])
    assert main(["inspect", str(folder / "packed")]) == 0
    assert "groups by depth" in capsys.readouterr().out


def test_mixed_config_errors(tmp_path, capsys):
    def err(argv):
        capsys.readouterr()
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        return lines[-1]

    src = make_tiny_model(tmp_path / "src", seed=3)
    assert "mixed-d3-bpw0.2" in err(["quantize", "--model", src, "--configs", "mixed-d3-bpw0.2",
                                     "--out", str(tmp_path / "o")])
    assert "not calibrated" in err(["quantize", "--model", src, "--configs", "mixed-d3-bpw4",
                                    "--mode", "calibrated", "--out", str(tmp_path / "o")])
    assert "mixed-d3-bpw0.2" in err(["run", "--config", "mixed-d3-bpw0.2", "--model", src])
    assert not os.path.exists(tmp_path / "o")


@settings(max_examples=200, deadline=None)
@given(base=st.integers(1, 4), rows=st.integers(1, 4), ng=st.integers(1, 3), data=st.data())
def test_any_trit_stream_decodes_exactly_or_is_refused(base, rows, ng, data):
    """Random trits: the reader either refuses them with a one-line error or decodes groups
    that encode back to exactly those trits (never a silently shifted stream)."""
    n = data.draw(st.integers(0, rows * ng * (4 + 16 * base) + 20))
    trits = np.array(data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n)), np.int8)
    try:
        q, k, gd = layout.unpack_var_matrix(layout.pack_trits(trits), n, rows, ng * 16, base, what="s")
    except TritforgeError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("s: ")
        return
    assert np.array_equal(layout.encode_var_matrix(q, k, gd, base), trits)


def test_quantize_cli_sensitivity_choices(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src", seed=9)
    for sens in ("diag-h", "weight"):
        out = tmp_path / sens
        assert main(["quantize", "--model", src, "--configs", "d3scale-sens02", "--sensitivity", sens,
                     "--no-export", "--no-packed-model", "--no-ppl", "--out", str(out), "--quiet"]) == 0
        rep = json.loads((out / "d3scale-sens02" / "report.json").read_text())
        mixed = rep["quant"]["mixed"]
        assert mixed["sensitivity"] == sens and mixed["rule"] == "sens" and mixed["tau"] == 0.02
        assert (mixed["sensitivity_text"] is None) == (sens == "weight")
    capsys.readouterr()
    assert main(["quantize", "--model", src, "--configs", "mixed-d3-bpw4", "--sensitivity", "weight",
                 "--calib-seqs", "3", "--out", str(tmp_path / "o")]) == 2
    assert "--calib-seqs: only with --mode calibrated or mixed configs with --sensitivity fisher or diag-h" \
        in capsys.readouterr().err
