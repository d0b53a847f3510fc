"""The packed model folder: stock transformers loads it after ``import tritforge``, keeps the
trits resident, computes the FP16 export's logits, generates, round-trips through
``save_pretrained``; the CLI reads it alone; every bad folder is one line naming the file."""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch

import tritforge  # noqa: F401  (registers the quantizer with transformers)
from tinymodels import FAMILIES, GGUF_FAMILIES, make_gguf_family, make_tiny_bert, make_tiny_family, make_tiny_model
from tritforge import cli
from tritforge.codec import packedmodel
from tritforge.codec.checkpoint import load_checkpoint
from tritforge.codec.export import export_fp16
from tritforge.codec.modelquant import quantize_checkpoint
from tritforge.codec.tritlinear import TritLinear, cache_levels, packed_bytes, trit_modules
from tritforge.errors import TritforgeError


def build(tmp_path, arch="llama", depth=2, shard=None, seed=5):
    src = (make_tiny_model(tmp_path / "src", arch, seed=seed) if arch in ("llama", "qwen2")
           else make_tiny_family(tmp_path / "src", arch, seed=seed, tied=arch.startswith("gemma")))
    ck = load_checkpoint(src)
    qt = quantize_checkpoint(ck, [depth], progress=False)[depth].tensors
    sizes = packedmodel.write_packed_model(ck, qt, str(tmp_path / "packed"), {"source": ck.name},
                                           max_shard_bytes=shard)
    export_fp16(ck, qt, str(tmp_path / "fp16"))
    return ck, qt, str(tmp_path / "packed"), str(tmp_path / "fp16"), sizes


def load(folder, **kw):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, **kw).eval()


IDS = torch.arange(3, 40).unsqueeze(0)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_stock_transformers_loads_packed_trits_and_matches_the_fp16_export(tmp_path, arch):
    ck, qt, packed, fp16, sizes = build(tmp_path, arch)
    assert sorted(os.listdir(tmp_path)) == ["fp16", "packed", "src"]         # nothing temporary left
    cfg = json.load(open(os.path.join(packed, "config.json")))
    assert cfg["quantization_config"] == {"quant_method": "tritforge", "format": "tritforge-packed",
                                          "format_version": 2, "depth": 2, "mode": "tritllm-v2",
                                          "group_size": 16}
    model = load(packed)
    mods = trit_modules(model)
    assert {f"{n}.weight" for n in mods} == set(qt)
    assert not any(isinstance(m, torch.nn.Linear) and n != "lm_head" for n, m in model.named_modules())
    # resident: the packed bytes (+ 27 float32 scales a matrix), exactly what the file holds
    assert packed_bytes(model) == sizes["quantized_bytes"] + 4 * 27 * len(mods)
    for name, m in mods.items():
        assert torch.equal(m.weight_fp32(), torch.from_numpy(qt[f"{name}.weight"].dequantize()))
    # fp16: the same weights as the FP16 export, so the same logits
    a16, e16 = load(packed, dtype=torch.float16), load(fp16, dtype=torch.float16)
    with torch.no_grad():
        assert torch.equal(a16(IDS).logits, e16(IDS).logits)
    # fp32: the packed model keeps the kept tensors unrounded; within fp16 rounding
    e32 = load(fp16, dtype=torch.float32)
    with torch.no_grad():
        a, b = model(IDS).logits, e32(IDS).logits
    assert torch.allclose(a, b, atol=2e-2, rtol=0)
    g1 = a16.generate(IDS[:, :6], max_new_tokens=8, min_new_tokens=8, do_sample=False)
    g2 = e16.generate(IDS[:, :6], max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert torch.equal(g1, g2)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(packed)
    assert isinstance(tok.decode(g1[0]), str)


def test_level_cache_gives_the_same_outputs(tmp_path):
    _, _, packed, _, _ = build(tmp_path)
    model = load(packed)
    with torch.no_grad():
        a = model(IDS).logits
        held = cache_levels(model)
        b = model(IDS).logits
        cache_levels(model, False)
    assert torch.equal(a, b)
    assert held == sum(m.out_features * m.in_padded * 17 // 16 for m in trit_modules(model).values())


@pytest.mark.parametrize("shard", [None, 60_000])
def test_save_pretrained_round_trips(tmp_path, shard):
    _, _, packed, _, _ = build(tmp_path, "qwen2", shard=shard)
    if shard:
        assert os.path.isfile(os.path.join(packed, packedmodel.INDEX_NAME))
    model = load(packed)
    model.save_pretrained(tmp_path / "again")
    pm = packedmodel.read_packed_model(str(tmp_path / "again"))
    orig = packedmodel.read_packed_model(packed)
    assert set(pm.entries) == set(orig.entries)
    for m in pm.entries:
        assert np.array_equal(pm.raw(f"{m}.trits"), orig.raw(f"{m}.trits"))
        assert pm.entries[m]["sha256"] == orig.entries[m]["sha256"]
    again = load(str(tmp_path / "again"))
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, again(IDS).logits)


@pytest.mark.parametrize("arch", [a for a in FAMILIES if a not in ("llama", "qwen2")])
def test_every_family_quantizes_exports_and_loads(tmp_path, arch):
    ck, qt, packed, fp16, _ = build(tmp_path, arch)
    model = load(packed)
    assert {f"{n}.weight" for n in trit_modules(model)} == set(qt)
    e32 = load(fp16, dtype=torch.float32)
    with torch.no_grad():
        a, b = model(IDS).logits, e32(IDS).logits
    assert torch.allclose(a, b, atol=3e-2, rtol=0), float((a - b).abs().max())
    out = model.generate(IDS[:, :5], max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape[1] == 9


def test_cli_quantize_writes_it_and_inspect_and_run_need_nothing_else(tmp_path, capsys):
    src = make_tiny_model(tmp_path / "src", seed=9)
    assert cli.main(["quantize", "--model", src, "--configs", "uniform-d2", "--out", str(tmp_path / "q"),
                     "--no-ppl", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "packed/" in out and "against the FP16 export" in out
    folder = tmp_path / "q" / "uniform-d2" / "packed"
    rep = json.load(open(tmp_path / "q" / "uniform-d2" / "report.json"))
    assert rep["packed_model"]["folder"] == "packed" and rep["packed_model"]["quantized_bpw"] < 3.7
    shutil.move(src, tmp_path / "gone")                         # the source is not needed any more
    assert cli.main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "tritforge-packed model folder" in text and "errors recorded at quantization" in text
    assert str(tmp_path) not in json.dumps(packedmodel.read_packed_model(str(folder)).note)
    assert cli.main(["run", "--packed", str(folder), "--max-new-tokens", "2", "--eval-tokens", "0",
                     "--quiet", "--json", str(tmp_path / "r.json")]) == 0
    r = json.load(open(tmp_path / "r.json"))
    assert r["tokens"]["generated"] >= 1 and r["packed_source"] == "src"
    assert cli.main(["quantize", "--model", str(tmp_path / "gone"), "--configs", "uniform-d1",
                     "--out", str(tmp_path / "q2"), "--no-ppl", "--quiet", "--no-packed-model"]) == 0
    assert not os.path.exists(tmp_path / "q2" / "uniform-d1" / "packed")


@pytest.mark.parametrize("arch", list(GGUF_FAMILIES))
def test_gguf_of_every_family_quantizes_loads_and_runs(tmp_path, capsys, arch):
    """A GGUF file of each family transformers' GGUF loader reads: tritforge quantize (with
    perplexity, through the tokenizer the file carries) writes a packed folder that stock
    transformers loads with the FP16 export's logits, and tritforge run generates from the
    file (the whole-layer path for Llama and Qwen2, the linear-only path for the others)."""
    _, path, _ = make_gguf_family(tmp_path / "src", arch)
    out = tmp_path / "q"
    assert cli.main(["quantize", "--model", path, "--configs", "uniform-d2", "--out", str(out),
                     "--ppl-tokens", "200", "--quiet"]) == 0
    rep = json.load(open(out / "uniform-d2" / "report.json"))
    ck = load_checkpoint(path)
    assert rep["model"]["format"] == "gguf" and rep["model"]["architecture"] == ck.arch
    assert rep["quant"]["matrices"] == len(ck.linear_names)
    assert rep["perplexity"]["source"] > 1 and rep["perplexity"]["quantized"] > 1
    packed, fp16 = str(out / "uniform-d2" / "packed"), str(out / "uniform-d2" / "model")
    model, e32 = load(packed), load(fp16, dtype=torch.float32)
    assert {f"{n}.weight" for n in trit_modules(model)} == set(ck.linear_names)
    with torch.no_grad():
        a, b = model(IDS).logits, e32(IDS).logits
    assert torch.allclose(a, b, atol=3e-2, rtol=0), float((a - b).abs().max())
    capsys.readouterr()
    layer = ck.arch in ("llama", "qwen2")
    argv = ["run", "--model", path, "--max-new-tokens", "2", "--eval-tokens", "0", "--quiet",
            "--json", str(tmp_path / "r.json")]
    if not layer:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"architecture '{ck.arch}'" in err[0] and "--path linear" in err[0]
        argv += ["--path", "linear"]
    assert cli.main(argv) == 0
    r = json.load(open(tmp_path / "r.json"))
    assert r["model"]["arch"] == ck.arch and r["tokens"]["generated"] >= 1
    assert r["path"] == ("layer" if layer else "linear")


# --- encoders -------------------------------------------------------------------------------

BERT_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")


def test_bert_encoder_quantizes_exports_and_loads_with_automodel(tmp_path, capsys):
    """The one rule on a BERT encoder: every Linear of the encoder layers quantized, the
    embeddings and the pooler kept; the FP16 export and the packed folder load with
    AutoModel and give the same outputs; the report has the hidden-state error, no perplexity;
    inspect reads the packed folder alone and run refuses the encoder in one line."""
    from transformers import AutoModel

    src = make_tiny_bert(tmp_path / "bert", seed=3)
    ck = load_checkpoint(src)
    assert ck.arch == "bert" and ck.model_class.__name__ == "BertModel" and not ck.causal_lm
    assert ck.linear_names == [f"encoder.layer.{i}.{m}.weight" for i in range(2) for m in BERT_LINEARS]
    kept = set(ck.tensors) - set(ck.linear_names)
    assert {"pooler.dense.weight", "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight"} <= kept

    out = tmp_path / "q"
    assert cli.main(["quantize", "--model", src, "--configs", "uniform-d2", "--out", str(out),
                     "--ppl-tokens", "300", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "hidden err" in text and "PPL" not in text
    rep = json.load(open(out / "uniform-d2" / "report.json"))
    assert rep["perplexity"] is None and rep["model"]["model_class"] == "BertModel"
    hid = rep["hidden_state_error"]
    assert hid["tokens"] == 300 and hid["output"] == "last hidden state" and 0 < hid["relative_rms_error"] < 0.5

    packed, fp16 = str(out / "uniform-d2" / "packed"), str(out / "uniform-d2" / "model")
    model = AutoModel.from_pretrained(packed).eval()
    assert type(model).__name__ == "BertModel"
    assert {f"{n}.weight" for n in trit_modules(model)} == set(ck.linear_names)
    assert isinstance(model.pooler.dense, torch.nn.Linear)
    e32 = AutoModel.from_pretrained(fp16, dtype=torch.float32).eval()
    with torch.no_grad():
        a, b = model(IDS), e32(IDS)
    for key in ("last_hidden_state", "pooler_output"):        # the export rounds the kept tensors to fp16
        assert torch.allclose(a[key], b[key], atol=1e-2, rtol=0), key
    a16 = AutoModel.from_pretrained(packed, dtype=torch.float16).eval()
    e16 = AutoModel.from_pretrained(fp16, dtype=torch.float16).eval()
    with torch.no_grad():
        assert torch.equal(a16(IDS).last_hidden_state, e16(IDS).last_hidden_state)
    # the relative error the report gives is the float model's with the dequantized weights
    from tritforge.sim import quality

    ids = quality.eval_ids(ck.tokenizer(), 300)
    ref = quality.last_hidden_states(ck.float_model(), ids)
    got = quality.last_hidden_states(AutoModel.from_pretrained(packed).eval(), ids)
    assert abs(quality.relative_rms_error(ref, got) - hid["relative_rms_error"]) < 1e-4

    assert cli.main(["inspect", packed]) == 0
    assert "model: bert (bert)" in capsys.readouterr().out
    for argv in (["run", "--model", src], ["run", "--packed", packed]):
        assert cli.main(argv + ["--eval-tokens", "0", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "architecture 'bert' is not a decoder-only causal LM (BertModel)" in err[0]


def test_bert_with_a_head_loads_as_base_model_and_with_its_head(tmp_path):
    """A BertForMaskedLM folder (weights under ``bert.``): its packed folder loads with
    AutoModel (transformers drops the prefix, and so does the quantizer) and with
    AutoModelForMaskedLM, each giving the FP16 export's outputs."""
    from transformers import AutoModel, AutoModelForMaskedLM

    src = make_tiny_bert(tmp_path / "mlm", seed=4, head=True)
    ck = load_checkpoint(src)
    assert ck.model_class.__name__ == "BertForMaskedLM" and not ck.causal_lm
    assert ck.linear_names[0] == "bert.encoder.layer.0.attention.self.query.weight" and len(ck.linear_names) == 12
    assert "cls.predictions.transform.dense.weight" not in ck.linear_names     # outside the layer list
    qt = quantize_checkpoint(ck, [2], progress=False)[2].tensors
    packedmodel.write_packed_model(ck, qt, str(tmp_path / "packed"))
    export_fp16(ck, qt, str(tmp_path / "fp16"))
    for cls in (AutoModel, AutoModelForMaskedLM):
        a = cls.from_pretrained(str(tmp_path / "packed")).eval()
        b = cls.from_pretrained(str(tmp_path / "fp16"), dtype=torch.float32).eval()
        assert len(trit_modules(a)) == 12
        with torch.no_grad():
            ha = a(IDS, output_hidden_states=True).hidden_states[-1]
            hb = b(IDS, output_hidden_states=True).hidden_states[-1]
        assert torch.allclose(ha, hb, atol=1e-2, rtol=0), cls.__name__


# --- bad folders ----------------------------------------------------------------------------

def _resave(path, drop=None, meta_edit=None):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, "pt") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys() if k != drop}
        meta = dict(f.metadata())
    if meta_edit:
        meta_edit(meta)
    save_file(arrays, path, metadata=meta)


def _flip_byte(folder, tensor):
    pm = packedmodel.read_packed_model(folder, verify=False)
    fname = pm.where[tensor]
    header, start = pm.headers[fname]
    off = start + header[tensor]["data_offsets"][0] + 3
    path = os.path.join(folder, fname)
    data = bytearray(open(path, "rb").read())
    data[off] = (data[off] + 1) % 243
    open(path, "wb").write(bytes(data))


def _set_qc(folder, **kw):
    p = os.path.join(folder, "config.json")
    cfg = json.load(open(p))
    cfg["quantization_config"].update(kw)
    json.dump(cfg, open(p, "w"))


def _shuffle_shards(folder):
    idx = os.path.join(folder, packedmodel.INDEX_NAME)
    data = json.load(open(idx))
    a, b = "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors"
    os.rename(os.path.join(folder, a), os.path.join(folder, "x"))
    os.rename(os.path.join(folder, b), os.path.join(folder, a))
    os.rename(os.path.join(folder, "x"), os.path.join(folder, b))
    json.dump(data, open(idx, "w"))


def _set_model_type(folder, model_type):
    p = os.path.join(folder, "config.json")
    cfg = json.load(open(p))
    cfg["model_type"] = model_type
    json.dump(cfg, open(p, "w"))


def _rename_shard(folder):
    os.rename(os.path.join(folder, "model-00003-of-00003.safetensors"),
              os.path.join(folder, "model-00004-of-00003.safetensors"))
    idx = os.path.join(folder, packedmodel.INDEX_NAME)
    data = json.load(open(idx))
    data["weight_map"] = {k: v.replace("00003-of", "00004-of") for k, v in data["weight_map"].items()}
    json.dump(data, open(idx, "w"))


M = "model.layers.1.mlp.down_proj"
BAD = {
    "missing tensor": (None, lambda f: _resave(os.path.join(f, "model.safetensors"), drop=f"{M}.trits"),
                       rf"model\.safetensors: tensor {M}\.trits is missing"),
    "missing float tensor": (None, lambda f: _resave(os.path.join(f, "model.safetensors"), drop="model.norm.weight"),
                             r"model\.safetensors: tensor model\.norm\.weight is missing"),
    "checksum": (None, lambda f: _flip_byte(f, f"{M}.trits"),
                 rf"model\.safetensors: tensor {M}\.trits: SHA-256 mismatch"),
    "checksum of a kept tensor": (None, lambda f: _flip_byte(f, "model.embed_tokens.weight"),
                                  r"tensor model\.embed_tokens\.weight: SHA-256 mismatch"),
    "other method": (None, lambda f: _set_qc(f, quant_method="bitnet"),
                     r"config\.json: quantization_config of method 'bitnet', expected 'tritforge'"),
    "other version": (None, lambda f: _set_qc(f, format_version=1),
                      r"config\.json: quantization_config format 'tritforge-packed' version 1"),
    "unknown architecture": (None, lambda f: _set_model_type(f, "nosuchmodel"),
                             r"config\.json: architecture 'nosuchmodel' is not known to this transformers"),
    "shards swapped": (70_000, _shuffle_shards, r"shards out of order"),
    "shard numbering": (70_000, _rename_shard, r"shards out of order"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_folder_is_one_line_naming_the_file(tmp_path, capsys, case):
    shard, spoil, pattern = BAD[case]
    _, _, packed, _, _ = build(tmp_path, shard=shard)
    if shard:
        assert len([f for f in os.listdir(packed) if f.startswith("model-")]) == 3
    spoil(packed)
    with pytest.raises(TritforgeError, match=pattern):
        packedmodel.read_packed_model(packed)
    if case == "unknown architecture":         # transformers' AutoConfig refuses it before any quantizer runs
        with pytest.raises(ValueError, match="nosuchmodel"):
            load(packed)
    elif case != "other method":               # transformers itself dispatches on the method
        with pytest.raises(ValueError, match=pattern):
            load(packed)
    before = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    for argv in (["inspect", packed], ["run", "--packed", packed, "--eval-tokens", "0", "--quiet"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and packed in err, err
        assert re.search(pattern, err), err
    assert sorted(os.listdir(tmp_path)) == before                     # nothing written


def test_reader_refuses_a_plain_folder_and_mismatched_depth(tmp_path):
    ck, qt, packed, fp16, _ = build(tmp_path)
    with pytest.raises(TritforgeError, match="no quantization_config"):
        packedmodel.read_packed_model(fp16)
    t = TritLinear.from_trit_tensor(next(iter(qt.values())))
    assert t.trits.dtype == torch.uint8 and t.codebook.dtype == torch.uint16


@pytest.mark.model
def test_smollm2_packed_folder_generates_the_fp16_exports_text(tmp_path):
    """SmolLM2 at d = 2: the packed folder (about 3.5 bpw for the quantized matrices) loads in
    stock transformers and greedy-generates the FP16 export's text."""
    from transformers import AutoTokenizer

    assert cli.main(["quantize", "--model", "default", "--configs", "uniform-d2", "--out", str(tmp_path),
                     "--no-ppl", "--quiet"]) == 0
    sizes = json.load(open(tmp_path / "uniform-d2" / "report.json"))["packed_model"]
    assert 3.49 < sizes["quantized_bpw"] < 3.51
    packed, fp16 = str(tmp_path / "uniform-d2" / "packed"), str(tmp_path / "uniform-d2" / "model")
    tok = AutoTokenizer.from_pretrained(packed)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    texts = []
    for folder in (packed, fp16):
        m = load(folder, dtype=torch.float16)
        out = m.generate(ids, max_new_tokens=8, do_sample=False)
        texts.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert texts[0] == texts[1] and "Paris" in texts[0]


@pytest.mark.parametrize("code", [
    "import tritforge; from transformers import AutoModelForCausalLM",
    "import transformers.quantizers.auto, tritforge",
    "from tritforge import hfquantizer",            # before transformers: no circular import
])
def test_registration_in_any_import_order(code):
    import subprocess
    import sys

    check = "; from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING as M; assert 'tritforge' in M"
    assert subprocess.run([sys.executable, "-c", code + check]).returncode == 0


def test_import_tritforge_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, tritforge; assert 'transformers' not in sys.modules and 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
