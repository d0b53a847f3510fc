"""Tiny random causal LMs of every supported family and a word-level tokenizer, shared by
the tests.

``intermediate_size`` 88 is not a multiple of 16, so down_proj exercises the zero padding;
Qwen2 brings q/k/v biases, made non-zero so that they matter. :func:`tiny_family` builds
Mistral, Qwen3, Phi-3 (fused qkv_proj / gate_up_proj), Gemma-2 and Gemma-3 (text) from
their transformers configs, no downloads; :func:`tiny_bert` a BERT encoder;
:func:`write_gguf` writes any of the causal LMs as a GGUF file as llama.cpp would.
"""
from __future__ import annotations

import torch

WORDS = ("the a of and to in is was it for on that with as his he at by from her she they this "
         "there were one day time long ago little house old man woman went").split()
VOCAB = 300
EOS = 2


def make_tokenizer():
    """A byte-level BPE tokenizer trained on a few words."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(WORDS)] * 20, vocab_size=VOCAB, min_frequency=1,
                            special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def tiny_model(arch: str = "llama", seed: int = 0, tied: bool = False, intermediate: int = 88,
               hidden: int = 64, heads: int = 4, kv_heads: int = 2):
    """A random tiny Llama/Qwen2 causal LM (intermediate 88: down_proj needs padding)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    kw = dict(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
              num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
              bos_token_id=1, eos_token_id=EOS, tie_word_embeddings=tied)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kw))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**kw))
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0.0, 0.5)
    return model.eval()


def make_tiny_model(folder, arch: str = "llama", seed: int = 0, dtype=torch.float32,
                    tied: bool = False, shard: str | None = None) -> str:
    """Save a tiny model (and tokenizer) as an HF safetensors folder; returns the folder."""
    model = tiny_model(arch, seed, tied).to(dtype)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, **kw)
    make_tokenizer().save_pretrained(folder)
    return str(folder)


#: family -> (config class, model class) names in transformers
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
}


def tiny_family(arch: str, seed: int = 0, tied: bool = False, **overrides):
    """A random tiny causal LM of any family in :data:`FAMILIES` (float32, eval mode);
    ``overrides``: config fields to set (Llama and Qwen2 included)."""
    import transformers

    if arch in ("llama", "qwen2") and not overrides:
        return tiny_model(arch, seed, tied)
    cfg_cls, model_cls = (getattr(transformers, n) for n in FAMILIES[arch])
    kw = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=88, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              bos_token_id=1, eos_token_id=EOS, pad_token_id=0, tie_word_embeddings=tied)
    if arch in ("qwen3", "gemma2", "gemma3_text"):
        kw["head_dim"] = 16
    if arch == "gemma3_text":
        kw["sliding_window"] = 8
    kw.update(overrides)
    torch.manual_seed(seed)
    model = model_cls(cfg_cls(**kw)).eval()
    if arch == "qwen2":                  # non-zero q/k/v biases, as tiny_model makes them
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0.0, 0.5)
    return model


def make_tiny_family(folder, arch: str, seed: int = 0, dtype=torch.float32, tied: bool = False,
                     **overrides) -> str:
    """Save a tiny model of ``arch`` (and the tokenizer) as an HF safetensors folder."""
    tiny_family(arch, seed, tied, **overrides).to(dtype).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return str(folder)


def tiny_bert(seed: int = 0):
    """A random tiny BERT encoder (``BertModel``: embeddings, 2 encoder layers, pooler;
    intermediate 88 so that output.dense needs padding)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=88, max_position_embeddings=512, pad_token_id=0)
    return BertModel(cfg).eval()


def tiny_bert_mlm(seed: int = 0):
    """:func:`tiny_bert`'s encoder with BERT's masked-LM head (``BertForMaskedLM``: weights
    named ``bert.encoder...``, as the published BERT checkpoints are)."""
    from transformers import BertForMaskedLM

    base = tiny_bert(seed)
    torch.manual_seed(seed + 1)
    model = BertForMaskedLM(base.config).eval()
    return model


def make_tiny_bert(folder, seed: int = 0, head: bool = False) -> str:
    """Save :func:`tiny_bert` (``head``: :func:`tiny_bert_mlm`) and the tokenizer as an HF
    safetensors folder."""
    (tiny_bert_mlm(seed) if head else tiny_bert(seed)).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return str(folder)


# --- GGUF files, as llama.cpp's converter writes them -------------------------------------

#: transformers model_type -> llama.cpp architecture name
GGUF_ARCH = {"gemma3_text": "gemma3"}


def write_gguf(path, model, q8_names=(), arch: str | None = None, name: str = "tiny",
               tokenizer=True) -> dict:
    """Write ``model`` (a tiny causal LM of :func:`tiny_family`) as a GGUF file the way
    llama.cpp's ``convert_hf_to_gguf.py`` does: its metadata keys, its tensor names
    (``gguf.get_tensor_name_map``), Llama's q/k rows permuted (each head's rotary halves
    interleaved, for the ``llama`` architecture only), Gemma's norm weights stored as
    ``1 + w``, and (``tokenizer``) the tiny BPE tokenizer as GGUF ``gpt2`` tokenizer data.

    ``arch`` overrides the GGUF architecture (a Mistral model is written as ``llama``, as
    llama.cpp does). Tensors named in ``q8_names`` are stored as Q8_0. Returns the state
    the loader must give back (Q8_0 tensors as their dequantized values, in HF order).
    """
    import gguf
    import numpy as np

    cfg = model.config
    arch = arch or GGUF_ARCH.get(cfg.model_type, cfg.model_type)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = cfg.rope_parameters
    rope = rope.get("full_attention", rope)          # Gemma-3: per layer type
    w.add_rope_freq_base(float(rope["rope_theta"]))
    w.add_vocab_size(cfg.vocab_size)
    if arch == "llama":
        w.add_rope_dimension_count(head_dim)
    else:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if getattr(cfg, "sliding_window", None):
        w.add_sliding_window(cfg.sliding_window)
    if tokenizer:
        tok = make_tokenizer()
        vocab = tok.get_vocab()
        tokens = sorted(vocab, key=vocab.get)
        tokens += [f"[PAD{i}]" for i in range(cfg.vocab_size - len(tokens))]
        import json as _json

        merges = _json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([3 if t in ("<unk>", "<s>", "</s>") else 1 for t in tokens])
        w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
        w.add_bos_token_id(1)
        w.add_eos_token_id(EOS)
        w.add_unk_token_id(0)
        w.add_pad_token_id(0)
        w.add_add_bos_token(False)
    model_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(model_arch, cfg.num_hidden_layers)
    expected = {}
    for hf, t in model.state_dict().items():
        if hf == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        base, suffix = hf.rsplit(".", 1)
        gname = names.get_name(base)
        if gname is None:
            raise ValueError(f"{hf}: no GGUF name for {arch}")
        arr = t.detach().float().numpy()
        store = arr
        heads = {"attn_q": cfg.num_attention_heads, "attn_k": cfg.num_key_value_heads}.get(gname.rsplit(".", 1)[-1])
        if arch == "llama" and heads and suffix == "weight":
            half = arr.shape[0] // heads // 2
            store = arr.reshape(heads, 2, half, *arr.shape[1:]).swapaxes(1, 2).reshape(arr.shape)
        if arch in ("gemma2", "gemma3") and gname.endswith("norm"):
            store = arr + 1
        if hf in q8_names:
            qt = gguf.GGMLQuantizationType.Q8_0
            raw = gguf.quants.quantize(np.ascontiguousarray(store), qt)
            w.add_tensor(f"{gname}.{suffix}", raw, raw_shape=raw.shape, raw_dtype=qt)
            back = gguf.quants.dequantize(raw, qt).reshape(arr.shape)
            if store is not arr:          # the loader undoes the permutation
                back = back.reshape(heads, half, 2, *arr.shape[1:]).swapaxes(1, 2).reshape(arr.shape)
            expected[hf] = torch.from_numpy(np.ascontiguousarray(back))
        else:
            w.add_tensor(f"{gname}.{suffix}", np.ascontiguousarray(store))
            expected[hf] = torch.from_numpy(arr.copy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


#: family -> (tiny_family overrides, write_gguf options): Qwen3's GGUF config mapping in
#: transformers has no head_dim key, so only its default head_dim (128) round-trips; a
#: Mistral model is written as llama.cpp does, as architecture llama
GGUF_FAMILIES = {
    "llama": ({}, {}),
    "qwen2": ({}, {}),
    "mistral": ({}, {"arch": "llama", "name": "Mistral tiny"}),
    "qwen3": ({"head_dim": 128}, {}),
    "phi3": ({}, {}),
    "gemma2": ({}, {}),
    "gemma3_text": ({}, {}),
}


def make_gguf_family(folder, arch: str, seed: int = 7, q8=True):
    """A tiny model of ``arch`` written as GGUF into ``folder``: (model, path, expected state)."""
    overrides, options = GGUF_FAMILIES[arch]
    model = tiny_family(arch, seed=seed, tied=arch.startswith("gemma"), **overrides)
    q8_names = (["model.layers.0.self_attn.qkv_proj.weight", "model.layers.1.mlp.gate_up_proj.weight"]
                if arch == "phi3" else
                ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"])
    import os

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(str(folder), f"{arch}.gguf")
    expected = write_gguf(path, model, q8_names if q8 else (), **options)
    return model, path, expected
