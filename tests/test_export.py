"""The FP16 HF export: stock transformers loads it, the weights are the dequantized ones,
it generates text, and nothing half-written is left behind."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tinymodels import make_tiny_model
from tritforge.codec.checkpoint import load_checkpoint
from tritforge.errors import TritforgeError
from tritforge.atomic import atomic_folder
from tritforge.codec.export import export_fp16, has_tokenizer
from tritforge.codec.modelquant import quantize_checkpoint


def quantized(folder, depth=2, mode="tritllm-v2"):
    ck = load_checkpoint(folder)
    return ck, quantize_checkpoint(ck, [depth], mode, progress=False)[depth].tensors


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_export_loads_in_stock_transformers_with_dequantized_weights(tmp_path, arch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ck, qt = quantized(make_tiny_model(tmp_path / "src", arch, seed=7))
    out = export_fp16(ck, qt, str(tmp_path / "export"), {"depth": 2})
    assert sorted(os.listdir(tmp_path)) == ["export", "src"]          # no temporary left over
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert os.path.isfile(os.path.join(out, f)), f
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.float16
    state = model.state_dict()
    for name, t in ck.tensors.items():
        if name in qt:
            expect = torch.from_numpy(qt[name].dequantize()).half()
            assert torch.equal(state[name], expect), name
            assert not torch.equal(state[name], t.half()), name          # really quantized
        else:
            assert torch.equal(state[name], t.half()), name               # embeddings, norms, biases
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("the old man went", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    assert gen.shape[1] == ids.shape[1] + 6
    assert isinstance(tok.decode(gen[0]), str)


def test_export_matches_fp32_dequantized_model(tmp_path):
    """Logits of the stock fp16 export are those of the fp32 model with dequantized weights."""
    from transformers import AutoModelForCausalLM

    from tritforge.sim import quality

    ck, qt = quantized(make_tiny_model(tmp_path / "src", seed=8))
    out = export_fp16(ck, qt, str(tmp_path / "e"))
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ref = quality.model_from_checkpoint(ck)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad(), quality.substituted(ref, qt):
        a = ref(ids).logits
    with torch.no_grad():
        b = exported(ids).logits
    assert torch.allclose(a, b, atol=2e-2, rtol=0)           # fp16 rounding of the weights only
    with torch.no_grad():
        c = ref(ids).logits                                   # the source, restored
    assert (a - c).abs().max() > 10 * (a - b).abs().max()


def test_tied_embeddings_export(tmp_path):
    from transformers import AutoModelForCausalLM

    ck, qt = quantized(make_tiny_model(tmp_path / "src", tied=True))
    out = export_fp16(ck, qt, str(tmp_path / "e"))
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()
        meta = json.loads(f.metadata()["tritforge"])
    assert meta["quantized_matrices"] == len(qt)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)


def test_hf_tokenizer_and_generation_config_are_copied(tmp_path):
    src = make_tiny_model(tmp_path / "src")
    with open(os.path.join(src, "generation_config.json")) as f:
        gen = json.load(f)
    gen["max_new_tokens"] = 17
    with open(os.path.join(src, "generation_config.json"), "w") as f:
        json.dump(gen, f)
    ck, qt = quantized(src)
    out = export_fp16(ck, qt, str(tmp_path / "e"))
    assert json.load(open(os.path.join(out, "generation_config.json")))["max_new_tokens"] == 17
    assert has_tokenizer(out)
    assert open(os.path.join(out, "tokenizer.json")).read() == open(os.path.join(src, "tokenizer.json")).read()


def test_export_replaces_existing_folder(tmp_path):
    ck, qt = quantized(make_tiny_model(tmp_path / "src"))
    target = tmp_path / "e"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    export_fp16(ck, qt, str(target))
    assert not (target / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["e", "src"]


def test_failed_export_leaves_nothing(tmp_path):
    ck, qt = quantized(make_tiny_model(tmp_path / "src"))
    wrong = dict(qt)
    name = "model.layers.0.mlp.up_proj.weight"
    wrong[name] = qt["model.layers.0.mlp.down_proj.weight"]          # wrong shape
    target = tmp_path / "e"
    target.mkdir()
    (target / "keep.txt").write_text("previous result")
    with pytest.raises(TritforgeError, match="up_proj.weight: quantized shape"):
        export_fp16(ck, wrong, str(target))
    assert os.listdir(target) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["e", "src"]
    with pytest.raises(TritforgeError, match="not a tensor of"):
        export_fp16(ck, {"nope.weight": qt[name]}, str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()


def test_atomic_folder_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_folder(str(tmp_path / "x")) as tmp:
            open(os.path.join(tmp, "half.bin"), "wb").write(b"1")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with atomic_folder(str(tmp_path / "x")) as tmp:
        open(os.path.join(tmp, "ok.bin"), "wb").write(b"1")
    assert os.listdir(tmp_path / "x") == ["ok.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "x").st_mode & 0o777 == 0o777 & ~umask     # not mkdtemp's 0700


def test_atomic_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(TritforgeError, match="not a folder"):
        with atomic_folder(str(tmp_path / "f")):
            pass


def test_quantized_matrices_differ_by_depth(tmp_path):
    """Sanity: the export changes with d (so the test above would see a wrong depth)."""
    src = make_tiny_model(tmp_path / "src")
    ck = load_checkpoint(src)
    res = quantize_checkpoint(ck, [1, 3], progress=False)
    name = ck.linear_names[0]
    assert not np.array_equal(res[1].tensors[name].dequantize(), res[3].tensors[name].dequantize())


def test_exported_files_have_normal_modes(tmp_path):
    ck, qt = quantized(make_tiny_model(tmp_path / "src"))
    out = export_fp16(ck, qt, str(tmp_path / "e"))
    umask = os.umask(0)
    os.umask(umask)
    for name in os.listdir(out):
        assert os.stat(os.path.join(out, name)).st_mode & 0o777 == 0o666 & ~umask, name


def test_export_names_its_source_by_name_and_hash(tmp_path):
    ck, qt = quantized(make_tiny_model(tmp_path / "src"))
    out = export_fp16(ck, qt, str(tmp_path / "e"))
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        note = json.loads(f.metadata()["tritforge"])
    assert note["source"] == "src" and note["source_sha256"] == ck.source_sha256
    assert str(tmp_path) not in json.dumps(note)
