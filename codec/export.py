"""The dequantized FP16 export: a plain HF folder that stock ``transformers`` loads.

What ``export_fp16`` writes (as the published tritllm checkpoints are laid out):

* ``model.safetensors``: every tensor of the source in fp16; the quantized linear matrices
  replaced by their dequantized values ``scale * q`` (computed in fp32, rounded once to
  fp16); ``lm_head.weight`` left out when the config ties it to the embeddings. The
  safetensors metadata carries ``format: pt`` and a ``tritforge`` JSON note (source by
  file name and content hash, never an absolute path; depth, mode, quantized matrices);
* ``config.json``: the source's transformers config with ``dtype: float16`` (and, when
  the source's config has none, as GGUF configs do, the ``architectures`` entry naming the
  class the checkpoint is read as, ``codec.checkpoint.model_class``);
* ``generation_config.json``: copied from an HF source, else derived from the config;
* the tokenizer: copied file by file from an HF source; for a GGUF source, the tokenizer
  ``transformers`` builds from the GGUF metadata, saved with ``save_pretrained``.

The folder is built in a temporary sibling and renamed into place at the end
(``atomic.atomic_folder``), so an error never leaves a half-written folder behind.
"""
from __future__ import annotations

import copy
import json
import os
import shutil

from ..atomic import atomic_file, atomic_folder
from ..errors import TritforgeError

#: Tokenizer files copied from an HF source folder when present.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json")

def export_config(ckpt, dtype):
    """The source's transformers config with ``dtype`` and an ``architectures`` entry."""
    config = copy.deepcopy(ckpt.config)
    config.dtype = dtype
    if not getattr(config, "architectures", None):
        config.architectures = [ckpt.model_class.__name__]
    return config


def copy_tokenizer_and_generation(ckpt, config, folder: str) -> None:
    """generation_config.json and the tokenizer files of ``ckpt`` into ``folder``."""
    from transformers import GenerationConfig

    src_gen = os.path.join(ckpt.path, "generation_config.json") if ckpt.format == "safetensors" else None
    if src_gen and os.path.isfile(src_gen):
        shutil.copy2(src_gen, os.path.join(folder, "generation_config.json"))
    else:
        GenerationConfig.from_model_config(config).save_pretrained(folder)
    if ckpt.format == "safetensors":
        for name in TOKENIZER_FILES:
            src = os.path.join(ckpt.path, name)
            if os.path.isfile(src):
                shutil.copy2(src, os.path.join(folder, name))
    else:
        ckpt.tokenizer().save_pretrained(folder)


def model_tensors(ckpt, quantized: dict):
    """Every tensor a model folder of ``ckpt`` stores, as ``(name, source tensor, its
    TritTensor or None)``: a tied ``lm_head`` is left out (the embedding is it), and every
    quantized matrix must be a tensor of ``ckpt`` of the same shape."""
    missing = sorted(set(quantized) - set(ckpt.tensors))
    if missing:
        raise TritforgeError(f"quantized matrix {missing[0]} is not a tensor of {ckpt.name}")
    tied = bool(getattr(ckpt.config, "tie_word_embeddings", False))
    for name, t in ckpt.tensors.items():
        if tied and name == "lm_head.weight":
            continue
        q = quantized.get(name)
        if q is not None and tuple(q.shape) != tuple(t.shape):
            raise TritforgeError(f"{name}: quantized shape {tuple(q.shape)} does not match "
                                 f"the source's {tuple(t.shape)}")
        yield name, t, q


def dequantized_state(ckpt, quantized: dict, dtype=None) -> dict:
    """All tensors of ``ckpt`` in ``dtype`` (fp16), the quantized ones dequantized."""
    import torch

    dtype = dtype or torch.float16
    return {name: (t if q is None else torch.from_numpy(q.dequantize())).to(dtype).contiguous()
            for name, t, q in model_tensors(ckpt, quantized)}


def export_fp16(ckpt, quantized: dict, folder: str, note: dict | None = None) -> str:
    """Write the FP16 HF folder of ``ckpt`` with ``quantized`` (name -> TritTensor) applied.

    Returns the folder path. ``note`` is merged into the ``tritforge`` metadata entry.
    """
    import torch
    from safetensors.torch import save_file

    state = dequantized_state(ckpt, quantized, torch.float16)
    config = export_config(ckpt, torch.float16)
    meta = {"format": "pt", "tritforge": json.dumps(
        {"source": ckpt.name, "source_sha256": ckpt.source_sha256,
         "quantized_matrices": len(quantized), **(note or {})})}

    with atomic_folder(folder) as tmp:
        with atomic_file(os.path.join(tmp, "model.safetensors")) as weights:
            save_file(state, weights, metadata=meta)
        config.save_pretrained(tmp)
        copy_tokenizer_and_generation(ckpt, config, tmp)
    return os.path.abspath(folder)


def has_tokenizer(folder: str) -> bool:
    """True if ``folder`` holds tokenizer files (the export then loads with AutoTokenizer)."""
    return any(os.path.isfile(os.path.join(folder, n))
               for n in ("tokenizer.json", "tokenizer.model", "vocab.json"))
