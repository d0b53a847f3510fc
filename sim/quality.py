"""Model quality on a short bundled English text: perplexity, top-1 agreement, logit error.

The text (``sim/data/eval_text.txt``, about 2,160 words, 2,578 SmolLM2 tokens) was written
for tritforge and is released under the project's license: ten short pieces in different
registers (a history note, an explanation of tides, a recipe, reportage, a letter, a note on
balanced ternary, two descriptions, a how-to, a travel sketch). It is new text, so no model
has memorized it.

Method
    The token ids (no special tokens added) are cut into consecutive windows of ``window``
    tokens (512 by default: fast on a CPU), each run from an empty context. The logits at
    position i predict token i + 1, including across a window boundary (the last position of
    a window predicts the first token of the next), so every token but the first is scored:
    ``ppl = exp(mean_i -log p(ids[i+1] | logits[i]))``.

Two ways to get the same figure: :func:`perplexity` keeps one window's logits at a time;
:func:`window_logits` + :func:`perplexity_from_logits` keep all logits (N x vocab fp32),
which :func:`compare_logits` needs to compare two models position by position.

Models without logits (encoders such as BERT) have no perplexity: for them
:func:`last_hidden_states` and :func:`relative_rms_error` measure how far the last
layer's hidden states move, on the same text and windows (cut to the model's position
table).

Models: :func:`model_from_checkpoint` builds the stock ``transformers`` model from a
``codec.checkpoint.Checkpoint`` (fp32, eval mode), and :func:`substituted` swaps
dequantized weights into it for the duration of a ``with`` block.
"""
from __future__ import annotations

import contextlib
import math
import os

from ..errors import TritforgeError

TEXT_FILE = os.path.join(os.path.dirname(__file__), "data", "eval_text.txt")
WINDOW = 512


# --- text ------------------------------------------------------------------------------

def eval_text() -> str:
    """The bundled evaluation text."""
    try:
        with open(TEXT_FILE, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise TritforgeError(f"{TEXT_FILE}: bundled evaluation text missing ({exc.strerror}); "
                             "reinstall tritforge") from None


def eval_ids(tokenizer, max_tokens: int = 0):
    """Token ids of the bundled text (1-D int64 tensor), cut to ``max_tokens`` if > 0."""
    import torch

    if max_tokens < 0:
        raise TritforgeError(f"max_tokens={max_tokens}: expected 0 (all) or a positive count")
    ids = tokenizer(eval_text(), add_special_tokens=False)["input_ids"]
    if max_tokens:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise TritforgeError(f"max_tokens={max_tokens}: need at least 2 tokens to score")
    return torch.tensor(ids, dtype=torch.long)


# --- models ----------------------------------------------------------------------------

def model_from_checkpoint(ckpt, dtype=None):
    """The stock transformers model of ``ckpt`` with its tensors loaded (eval mode;
    ``codec.checkpoint.Checkpoint.float_model``)."""
    return ckpt.float_model(dtype)


@contextlib.contextmanager
def substituted(model, weights: dict):
    """Within the block, ``model``'s parameters named in ``weights`` hold those values.

    ``weights`` maps parameter names to ``TritTensor`` (dequantized here), numpy arrays or
    torch tensors. The original values are restored on exit.
    """
    import torch

    saved = {}
    try:
        with torch.no_grad():
            for name, w in weights.items():
                try:
                    p = model.get_parameter(name)
                except AttributeError:
                    raise TritforgeError(f"{name}: no such parameter in the model") from None
                if hasattr(w, "dequantize") and hasattr(w, "codebook"):
                    w = w.dequantize()
                w = torch.as_tensor(w)
                if tuple(w.shape) != tuple(p.shape):
                    raise TritforgeError(f"{name}: weight shape {tuple(w.shape)}, model expects {tuple(p.shape)}")
                saved[name] = p.detach().clone()
                p.copy_(w.to(p.dtype))
        yield model
    finally:
        with torch.no_grad():
            for name, old in saved.items():
                model.get_parameter(name).copy_(old)


# --- logits and perplexity -------------------------------------------------------------

def _windows(n: int, window: int):
    if window < 2:
        raise TritforgeError(f"window={window}: expected at least 2 tokens")
    return [(s, min(s + window, n)) for s in range(0, n, window)]


def window_logits(model, ids, window: int = WINDOW):
    """Logits (N, vocab) fp32 of ``ids`` (1-D) run window by window."""
    import torch

    out = []
    with torch.inference_mode():
        for s, e in _windows(len(ids), window):
            x = ids[s:e].unsqueeze(0).to(model.device)
            out.append(model(input_ids=x, use_cache=False).logits[0].float().cpu())
    return torch.cat(out)


def perplexity_from_logits(logits, ids) -> float:
    """exp of the mean negative log-likelihood of ``ids[1:]`` under ``logits[:-1]``."""
    import torch

    if logits.shape[0] != len(ids):
        raise TritforgeError(f"logits for {logits.shape[0]} positions, ids {len(ids)}: expected equal")
    nll = torch.nn.functional.cross_entropy(logits[:-1].float(), ids[1:], reduction="mean")
    return float(math.exp(float(nll)))


def perplexity(model, ids, window: int = WINDOW, progress: bool = False, desc: str = "perplexity") -> float:
    """Same figure as ``perplexity_from_logits(window_logits(...))``, one window in memory.

    ``progress`` shows a tqdm bar over the windows (on stderr).
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    total, count, prev = 0.0, 0, None
    with torch.inference_mode():
        for s, e in tqdm(_windows(len(ids), window), desc=desc, unit="window",
                         disable=not progress, leave=False):
            x = ids[s:e].unsqueeze(0).to(model.device)
            lg = model(input_ids=x, use_cache=False).logits[0].float().cpu()
            if prev is not None:                       # previous window's last position
                total += float(F.cross_entropy(prev[None], ids[s:s + 1], reduction="sum"))
                count += 1
            if e - s > 1:
                total += float(F.cross_entropy(lg[:-1], ids[s + 1:e], reduction="sum"))
                count += e - s - 1
            prev = lg[-1]
    return math.exp(total / count)


def encoder_window(model, window: int = WINDOW) -> int:
    """``window`` cut to the model's position table (``max_position_embeddings``)."""
    n = getattr(model.config, "max_position_embeddings", None)
    return min(window, n) if isinstance(n, int) and n > 1 else window


def last_hidden_states(model, ids, window: int = WINDOW, progress: bool = False,
                       desc: str = "hidden states"):
    """The last layer's hidden states (N, hidden) fp32 of ``ids`` (1-D), run window by
    window (each from an empty context, :func:`encoder_window` tokens at most): for models
    without logits to score, such as encoders."""
    import torch
    from tqdm import tqdm

    window = encoder_window(model, window)
    out = []
    with torch.inference_mode():
        for s, e in tqdm(_windows(len(ids), window), desc=desc, unit="window",
                         disable=not progress, leave=False):
            res = model(input_ids=ids[s:e].unsqueeze(0).to(model.device), output_hidden_states=True)
            h = res.hidden_states[-1] if getattr(res, "hidden_states", None) else res.last_hidden_state
            out.append(h[0].float().cpu())
    return torch.cat(out)


def relative_rms_error(ref, out) -> float:
    """sqrt(sum (out - ref)^2 / sum ref^2) over all elements."""
    if ref.shape != out.shape:
        raise TritforgeError(f"shapes {tuple(ref.shape)} and {tuple(out.shape)}: expected equal")
    den = float(ref.double().square().sum())
    return math.sqrt(float((out.double() - ref.double()).square().sum()) / den) if den > 0 else 0.0


def top1_agreement(ref, out) -> float:
    """Fraction of positions where both logits pick the same top token."""
    if ref.shape != out.shape:
        raise TritforgeError(f"logit shapes {tuple(ref.shape)} and {tuple(out.shape)}: expected equal")
    return float((ref.argmax(-1) == out.argmax(-1)).float().mean())


def logit_error(ref, out) -> dict:
    """RMS, largest absolute and relative RMS error of ``out`` against ``ref``."""
    if ref.shape != out.shape:
        raise TritforgeError(f"logit shapes {tuple(ref.shape)} and {tuple(out.shape)}: expected equal")
    diff = (out.double() - ref.double())
    rms = float(diff.square().mean().sqrt())
    ref_rms = float(ref.double().square().mean().sqrt())
    return {"logit_rmse": rms, "logit_max_abs_err": float(diff.abs().max()),
            "logit_rel_rmse": rms / ref_rms if ref_rms > 0 else 0.0}


def compare_logits(ref, out) -> dict:
    """:func:`top1_agreement` and :func:`logit_error` in one dict."""
    return {"top1_agreement": top1_agreement(ref, out), **logit_error(ref, out)}


def measure_paths(model, tok, recorder, max_tokens: int,
                    progress: bool = True, layer: bool = False) -> dict:
    """Quality figures of a run's paths on the bundled text, against the source model
    (``recorder``: the run's ``sim.hwlinear.HwRecorder``, whose mode selects the path).

    ``ppl_source``: the stock model; ``ppl_quantized``: the same with dequantized weights
    (float, what the FP16 export gives); ``ppl_hw``: the linear-only hardware path (every
    quantized Linear through the engine, the rest of the model in float on the host).
    Top-1 agreement and logit errors compare the hardware path with the source model; the
    ``quantized_*`` and ``hw_vs_quantized_*`` figures split that into the weight
    quantization and the integer path (int8 activations, exact accumulators).

    With ``layer`` (the model patched by ``sim.hwlayer.patch_layers``) the whole-layer
    hardware path is measured too: ``ppl_layer``, ``layer_*`` against the source model,
    ``layer_vs_hw_*`` against the linear-only hardware path.
    """
    from tqdm import tqdm

    ids = eval_ids(tok, max_tokens)
    logits = {}
    modes = ("source", "dequant", "hw") + (("layer",) if layer else ())
    before = recorder.mode
    try:
        for mode in tqdm(modes, desc="quality", unit="pass", disable=not progress, leave=False):
            recorder.set_mode(mode)
            recorder.phase = "eval"
            logits[mode] = window_logits(model, ids)
    finally:
        recorder.set_mode(before)
        recorder.phase = "idle"
    src, deq, hw = logits["source"], logits["dequant"], logits["hw"]
    out = {"eval_tokens": int(len(ids)),
           "ppl_source": perplexity_from_logits(src, ids),
           "ppl_quantized": perplexity_from_logits(deq, ids),
           "ppl_hw": perplexity_from_logits(hw, ids),
           **compare_logits(src, hw)}
    out.update({f"quantized_{k}": v for k, v in compare_logits(src, deq).items()})
    out.update({f"hw_vs_quantized_{k}": v for k, v in compare_logits(deq, hw).items()})
    if layer:
        lay = logits["layer"]
        out["ppl_layer"] = perplexity_from_logits(lay, ids)
        out.update({f"layer_{k}": v for k, v in compare_logits(src, lay).items()})
        out.update({f"layer_vs_hw_{k}": v for k, v in compare_logits(hw, lay).items()})
    return out
