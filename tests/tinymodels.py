"""Tiny random causal LMs of every supported family and a word-level tokenizer, shared by
the tests.

``intermediate_size`` 88 is not a multiple of 16, so down_proj exercises the zero padding;
Qwen2 brings q/k/v biases, made non-zero so that they matter. :func:`tiny_family` builds
Mistral, Qwen3, Phi-3 (fused qkv_proj / gate_up_proj), Gemma-2 and Gemma-3 (text) from
their transformers configs, no downloads.
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


def tiny_model(arch: str = "llama", seed: int = 0, tied: bool = False, intermediate: int = 88):
    """A random tiny Llama/Qwen2 causal LM (intermediate 88: down_proj needs padding)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    kw = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=intermediate, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
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


def tiny_family(arch: str, seed: int = 0, tied: bool = False):
    """A random tiny causal LM of any family in :data:`FAMILIES` (float32, eval mode)."""
    import transformers

    if arch in ("llama", "qwen2"):
        return tiny_model(arch, seed, tied)
    cfg_cls, model_cls = (getattr(transformers, n) for n in FAMILIES[arch])
    kw = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=88, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              bos_token_id=1, eos_token_id=EOS, pad_token_id=0, tie_word_embeddings=tied)
    if arch in ("qwen3", "gemma2", "gemma3_text"):
        kw["head_dim"] = 16
    if arch == "gemma3_text":
        kw["sliding_window"] = 8
    torch.manual_seed(seed)
    return model_cls(cfg_cls(**kw)).eval()


def make_tiny_family(folder, arch: str, seed: int = 0, dtype=torch.float32, tied: bool = False) -> str:
    """Save a tiny model of ``arch`` (and the tokenizer) as an HF safetensors folder."""
    tiny_family(arch, seed, tied).to(dtype).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return str(folder)
