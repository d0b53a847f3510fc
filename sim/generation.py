"""Greedy generation through a patched model (``sim.patching``, ``sim.hwlayer``), prefill
and decode as separate phases of the recorder, and the checks before it: the prompt's
tokens (the tokenizer's chat template when it has one) and a context the model, the
attention unit and this machine's memory can hold."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..errors import TritforgeError
from .hwlinear import HwRecorder


@dataclass
class Generation:
    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    prefill_wall_s: float
    decode_wall_s: float
    decode_steps: int          #: forward passes after the prefill (figures per token use these)


def prompt_ids(tok, prompt: str) -> list[int]:
    """Token ids of the prompt, through the tokenizer's chat template when it has one."""
    if getattr(tok, "chat_template", None):
        enc = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                      add_generation_prompt=True, tokenize=True, return_dict=True)
        ids = enc["input_ids"]
    else:
        ids = tok(prompt)["input_ids"]
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    if not ids:
        raise TritforgeError("prompt: empty after tokenization; expected some text")
    return ids


def check_generation(model, tok, prompt: str, max_new_tokens: int, where: str,
                     max_context: int | None) -> None:
    """Refuse a prompt plus ``max_new_tokens`` beyond the model's maximum context
    (``max_position_embeddings``), the attention unit's (``max_context``, the layer path), or
    this machine's memory for the KV caches: before anything is quantized."""
    from ..memory import check_context

    what = f"--max-new-tokens {max_new_tokens}"
    n_prompt = len(prompt_ids(tok, prompt))
    total = n_prompt + max_new_tokens
    c = model.config
    for limit, whose in ((getattr(c, "max_position_embeddings", None), f"{where}'s maximum context "
                          "(max_position_embeddings)"), (max_context, "the attention unit's max_context")):
        if limit and total > limit:
            raise TritforgeError(f"{what}: the prompt's {n_prompt} tokens + {max_new_tokens} = {total:,} "
                                 f"exceed {whose} of {limit:,} tokens")
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    check_context(c.num_hidden_layers, kv_heads * head_dim, total, what)


def _eos_ids(model, tok) -> set[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), model.config, tok):
        e = getattr(src, "eos_token_id", None)
        if e is None:
            continue
        ids.update([e] if isinstance(e, int) else list(e))
    return ids


def generate(model, tok, recorder: HwRecorder, prompt: str, max_new_tokens: int,
             progress: bool = True) -> Generation:
    """Greedy generation through the patched model; prefill and decode as separate phases.

    When generation stops after the first token (``max_new_tokens == 1`` or an immediate
    end of sequence) one decode step is still run, its token discarded, so that the
    per-token figures exist.
    """
    if max_new_tokens < 1:
        raise TritforgeError(f"--max-new-tokens {max_new_tokens}: expected at least 1")
    ids = prompt_ids(tok, prompt)
    eos = _eos_ids(model, tok)
    recorder.reset()
    layer = recorder.mode == "layer"

    def step(tokens, past, start):
        if layer:          # the HwDecoderLayers keep the int8 KV cache themselves
            pos = torch.arange(start, start + len(tokens))[None]
            return model(input_ids=torch.tensor([tokens]), position_ids=pos, use_cache=False)
        return model(input_ids=torch.tensor([tokens]), past_key_values=past, use_cache=True)

    with torch.inference_mode():
        recorder.phase = "prefill"
        t0 = time.perf_counter()
        out = step(ids, None, 0)
        prefill_wall = time.perf_counter() - t0
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        new = [nxt]
        recorder.phase = "decode"
        steps, t1 = 0, time.perf_counter()
        bar = tqdm(total=max_new_tokens, initial=1, desc="decode", unit="tok",
                   disable=not progress, leave=False)
        while True:
            finished = len(new) >= max_new_tokens or nxt in eos
            if finished and steps > 0:
                break
            out = step([nxt], past, len(ids) + len(new) - 1)
            steps += 1
            past = out.past_key_values
            if finished:
                break
            nxt = int(out.logits[0, -1].argmax())
            new.append(nxt)
            bar.update(1)
        bar.close()
        decode_wall = time.perf_counter() - t1
    recorder.phase = "idle"
    text = tok.decode([i for i in new if i not in eos], skip_special_tokens=True)
    return Generation(ids, new, text, prefill_wall, decode_wall, steps)
