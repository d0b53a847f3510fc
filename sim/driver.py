"""The model-level driver: a real checkpoint, run through the simulated hardware.

Steps of :func:`run` (the ``tritforge run`` command; docs/ARCHITECTURE.md):

1. load the stock transformers model and its tokenizer (HF safetensors folder or GGUF):
   any decoder-only causal LM on the linear-only path, the Llama and Qwen2 families on
   the whole-layer path (:func:`check_runnable`);
2. quantize every linear layer except the output embedding (``lm_head``) at the config's
   depth (a mixed config: a depth per group, ``codec.mixeddepth``, by the plain weight
   error), or read the quantized matrices from a packed file (``codec.packfile``);
   variable-depth matrices run on the variable-depth engine model (``sim.varmodel``, fed
   at the board's sustained bytes per cycle), the others on the uniform one;
3. replace each of those ``nn.Linear`` with an :class:`~.hwlinear.HwLinear` that runs
   the vectorized cycle model (``sim.fastmodel``) — the linear-only hardware path, where
   embeddings, norms, attention, rotary embeddings, the KV cache and ``lm_head`` stay the
   stock model's — and, with ``path = "layer"`` (the default), also every decoder layer,
   the final norm and ``lm_head`` with the modules of ``sim.hwlayer``: the whole-layer
   hardware path, where everything after the embedding lookup runs through the integer
   contract of the vector and attention units (docs/NUMERIC.md) with its own int8 KV
   cache, parametrized by an ``AccelConfig`` (``RunOptions.accel``);
4. generate greedily through the chosen path (the tokenizer's chat template when it has
   one). Prefill sends all prompt tokens through each matrix at once — the engine takes
   them T per weight fetch — and every decode step sends one token;
5. quality on the bundled text: perplexity of the source model, of the dequantized float
   model, of the linear-only hardware path and (``path = "layer"``) of the whole-layer
   hardware path, top-1 agreement and logit error of each against the source model, and
   per layer the error of the integer linear path against the float dequantized product;
6. hardware figures per layer and per decode token (cycles, actions, weight bytes,
   bound, energy) through the estimator (``sim.estimate``) for the chosen board.

Timing figures (all simulated, at the board's clock and bandwidth): ``prefill_s`` is the
time of the prefill pass through the engine (each layer bounded by its cycles or by its
weight traffic, whichever is slower, as the estimator rules); ``ttft_s`` equals it (the
first token comes out of the prefill pass; the work outside the GEMV engine — embeddings,
the attention and vector units or the host, ``lm_head`` — is not in the timing). ``decode_tokens_per_s`` comes from the per-token layer
figures. ``wall_s_per_token`` is the measured wall time of one simulated decode step
on this machine.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import __version__
from ..codec import packfile
from ..errors import TritforgeError
from ..codec.quantize import MODES, TritTensor, quantize_matrix
from ..hwconfig import HwConfig
from .actions import Actions
from . import varmodel
from .hwlinear import HwLinear, HwRecorder, LayerStats

#: the families whose decoder layers the whole-layer path (sim.hwlayer) runs; the linear
#: path runs any decoder-only causal LM
ARCHS = ("llama", "qwen2")
PATHS = ("layer", "linear")
DEFAULT_PROMPT = "What is the capital of France? Answer in one sentence."


@dataclass
class RunOptions:
    model: str = "default"
    config: str = "uniform-d2"
    mode: str = "tritllm-v2"
    hw: str = "default"
    packed: str | None = None
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 24
    energy_table: str | None = None
    eval_tokens: int = 1024        #: tokens of the bundled text for the quality figures (0: skip)
    rtl_sample: int = 0
    progress: bool = True
    accel: str | None = None       #: AccelConfig JSON (attention, vector, lm_head); None: defaults
    path: str = "layer"            #: generation through "layer" (whole layers) or "linear" (Linears only)


# --- inputs ------------------------------------------------------------------------------

def parse_config(name: str) -> int:
    """``uniform-dN`` -> N (the depth of every quantized matrix), a mixed config
    (``mixed-d<D>-bpw<B>``, ``d<D>scale-sens<digits>``: a depth per group) -> its base depth
    D, whose matrices run on the variable-depth engine (``sim.varmodel``); the names are
    ``codec.modelquant.parse_config``'s."""
    return _config(name).depth


def _config(name: str):
    from ..codec.mixeddepth import parse_mixed
    from ..codec.modelquant import parse_config as parse_quant_config

    if parse_mixed(str(name)) is not None:      # refuses a bad target with its own line
        return parse_quant_config(str(name))
    try:
        return parse_quant_config(str(name))
    except TritforgeError:
        raise TritforgeError(f"config {name!r}: expected uniform-d1, uniform-d2, uniform-d3 or uniform-d4, "
                             "or a mixed config (mixed-d<D>-bpw<B>, d<D>scale-sens<digits>)") from None


def resolve_hw(spec: str, depth: int):
    """``--hw``: a board name, a board description (``.toml``, ``sim.boards``), a HwConfig
    JSON file or ``default`` -> (board, HwConfig).

    A HwConfig file runs its engine (array size, buffer, clock) on the default board
    (``sim.boards.with_hwconfig``: the memory, static power and host stay the board's, and
    the board's name says both, e.g. ``kv260+engine.json``); for another board's memory,
    give that board's description.
    """
    from . import boards

    if spec.lower().endswith(".json"):
        cfg = HwConfig.from_json(spec)
        if cfg.depth != depth:
            raise TritforgeError(f"{spec}: hardware depth d={cfg.depth}, but the config asks for d={depth}")
        base = boards.get_board(boards.DEFAULT_BOARD)
        return boards.with_hwconfig(base, cfg, os.path.basename(spec)), cfg
    if spec.strip().lower() not in ("default", *boards.BOARDS) and not spec.lower().endswith(".toml"):
        raise TritforgeError(f"--hw {spec!r}: expected a board ({', '.join(sorted(boards.BOARDS))}), "
                             "a board .toml file, a HwConfig .json file or 'default'")
    board = boards.get_board(spec)
    return board, board.hwconfig(depth)


def resolve_accel(spec: str | None, cfg: HwConfig):
    """The AccelConfig of a run: ``spec`` a JSON file (its attention, vector and lm_head
    are used; the engine is always ``cfg``, the one ``--hw`` chose), or None for the
    defaults."""
    from ..accelconfig import AccelConfig

    if spec is None:
        return AccelConfig(engine=cfg)
    return dataclasses.replace(AccelConfig.from_json(spec), engine=cfg)


def rtl_sample_cases(recorder: HwRecorder, layers: dict[str, HwLinear], rows: int,
                     seed: int = 0) -> list:
    """Vector cases (``codec.vectors``) for the RTL check: ``rows`` rows of chosen layers.

    Chosen layers: every matrix of the first and of the last decoder block. For each, a
    seeded random choice of rows is cut out of the quantized matrix (same codebook) and fed
    the int8 activations of the last decode step; the expected accumulators come from the
    golden reference and must equal the rows the driver computed through the cycle model,
    and the expected cycles are the cycle model's for that sub-matrix.
    """
    from ..codec import golden, vectors
    from .fastmodel import run_matrix

    if rows < 1:
        raise TritforgeError(f"--rtl-sample {rows}: expected at least 1 row")
    decode = recorder.phase_stats("decode")
    blocks = sorted({n.split(".layers.")[1].split(".")[0] for n in layers if ".layers." in n}, key=int)
    pick = {blocks[0], blocks[-1]} if blocks else set()
    chosen = [n for n in layers if ".layers." in n and n.split(".layers.")[1].split(".")[0] in pick]
    rng = np.random.default_rng(seed)
    cfg = recorder.cfg
    cases = []
    for name in chosen or list(layers)[:7]:
        hw, st = layers[name], decode.get(name)
        if st is None or st.last_xq is None:
            raise TritforgeError(f"{name}: no decode step recorded for the RTL sample")
        t = hw.t
        idx = np.sort(rng.choice(t.q.shape[0], min(rows, t.q.shape[0]), replace=False))
        sub = TritTensor(t.q[idx], t.k[idx], t.codebook, t.depth, (len(idx), t.shape[1]), t.mode,
                         t.group_depth[idx] if t.variable else None)
        xq = st.last_xq[-1:]
        expected = golden.accumulators(sub, xq)
        if not np.array_equal(expected, st.last_acc[-1:, idx]):
            raise TritforgeError(f"{name}: the cycle model's accumulators differ from the golden reference")
        run = run_matrix(cfg, sub, xq)
        case = vectors.make_case(f"{name}.rows{len(idx)}", sub, xq, cfg.to_dict(), run.cycles)
        cases.append((case, [int(i) for i in idx]))
    return cases


def _model_location(spec: str) -> tuple[str, str | None]:
    """(folder, gguf file name or None) of a model given as a path or ``default``."""
    from ..codec import checkpoint

    path = checkpoint.resolve_model(spec)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise TritforgeError(f"{path}: no config.json; expected a Hugging Face model folder or a .gguf file")
        return path, None
    if not os.path.isfile(path):
        raise TritforgeError(f"{path}: no such model file or folder")
    if not path.lower().endswith(".gguf"):
        raise TritforgeError(f"{path}: expected a .gguf file or a Hugging Face model folder")
    return os.path.dirname(os.path.abspath(path)), os.path.basename(path)


def check_runnable(folder: str, kw: dict, where: str, path: str = "layer") -> None:
    """Refuse, before any weight is read, a model ``tritforge run`` cannot run: one that is
    not a decoder-only causal LM (an encoder such as BERT, an encoder-decoder), or, on the
    whole-layer ``path``, a family outside :data:`ARCHS`. One line naming the architecture
    and the class transformers reads it as."""
    from transformers import AutoConfig

    from ..codec import checkpoint
    from ..jsonfile import read_json

    if not kw:                        # a folder: its model_type must be one transformers knows
        cfg_path = os.path.join(folder, "config.json")
        raw = read_json(cfg_path, "model config (an HF config.json)")
        checkpoint.check_known_architecture(raw.get("model_type"), cfg_path)
    try:
        config = AutoConfig.from_pretrained(folder, **kw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TritforgeError(f"{where}: cannot read its config ({str(exc).splitlines()[0]})") from None
    arch = getattr(config, "model_type", None)
    try:
        cls = checkpoint.model_class(config, where)
    except TritforgeError:
        cls = None
    if cls is None or not checkpoint.is_causal_lm(cls) or getattr(config, "is_encoder_decoder", False):
        what = f"not a decoder-only causal LM ({cls.__name__})" if cls else "not a model transformers can build"
        raise TritforgeError(f"{where}: architecture {arch!r} is {what}; tritforge run runs decoder-only "
                             f"causal LMs (tritforge quantize and inspect take it)")
    if path == "layer" and arch not in ARCHS:
        raise TritforgeError(f"{where}: architecture {arch!r}: the whole-layer hardware path covers "
                             f"{', '.join(ARCHS)}; pass --path linear to run its Linears on the engine "
                             f"and the rest of the model on the host")


def load_model(spec: str, progress: bool = False, path: str = "layer"):
    """The stock transformers model (float32, eval mode) and tokenizer -> (model, tokenizer, path).

    ``progress``: show transformers' own loading bars. ``path``: the run's path, for
    :func:`check_runnable` (the whole-layer path takes the families of :data:`ARCHS`, the
    linear path any decoder-only causal LM). A packed model folder
    (``codec.packedmodel``) loads through the tritforge quantizer with nothing else; its
    ``TritLinear`` modules are then turned into ``nn.Linear`` holding the dequantized
    float32 weights (the stand-in for the source the quality figures compare against), and
    their matrices are kept in ``model.tritforge_packed`` (weight name -> TritTensor) for
    :func:`packed_layers`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ..codec.packedmodel import is_packed_model

    folder, gguf = _model_location(spec)
    packed_folder = gguf is None and is_packed_model(folder)
    if packed_folder:
        from .. import hfquantizer

        hfquantizer.register()
    where = os.path.join(folder, gguf) if gguf else folder
    kw = {"gguf_file": gguf} if gguf else {}
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        check_runnable(folder, kw, where, path)
        try:
            # transformers' GGUF loader draws its own tqdm bar, outside its progress-bar switch
            quiet = contextlib.redirect_stderr(io.StringIO()) if gguf and not progress else contextlib.nullcontext()
            with quiet:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
        except TritforgeError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise TritforgeError(f"{where}: cannot load the model ({str(exc).splitlines()[0]})") from None
        try:
            tok = AutoTokenizer.from_pretrained(folder, **kw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TritforgeError(f"{where}: cannot load the tokenizer ({str(exc).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    if packed_folder:
        from ..codec.tritlinear import trit_modules

        packed = {}
        for name, m in trit_modules(model).items():
            packed[f"{name}.weight"] = m.trit_tensor(f"{where}: {name}")
            model.set_submodule(name, m.to_linear(torch.float32))
        model.tritforge_packed = packed
    return model, tok, where


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear the hardware runs: all of them except the output embedding."""
    head = model.get_output_embeddings()
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not head}


def quantize_layers(layers: dict[str, nn.Linear], depth: int, mode: str,
                    progress: bool = True, mixed=None) -> dict[str, TritTensor]:
    """Every layer at ``depth``, or with ``mixed`` (a ``codec.mixeddepth.MixedConfig``) a
    depth per group by its rule over these layers (``codec.modelquant.quantize_mixed``,
    weighing the plain weight error: ``run`` has no calibration pass)."""
    if mode not in MODES:
        raise TritforgeError(f"mode {mode!r}: expected one of {MODES}")
    if mixed is not None:
        from ..codec.modelquant import quantize_mixed

        weights = {n: lin.weight for n, lin in layers.items()}
        return dict(quantize_mixed(weights, list(layers), [mixed], mode, None,
                                   progress=progress)[mixed.name].tensors)
    out = {}
    for name, lin in tqdm(layers.items(), desc=f"quantize d={depth}", unit="matrix",
                          disable=not progress, leave=False):
        out[name] = quantize_matrix(lin.weight, depth, mode, name=name)
    return out


def packed_layers(path: str, layers: dict[str, nn.Linear], depth: int,
                  tensors: dict[str, TritTensor] | None = None) -> dict[str, TritTensor]:
    """The model's matrices from a packed file or packed model folder (or their already
    read ``tensors``), checked against the model's layers."""
    if tensors is None:
        if os.path.isdir(path):
            from ..codec.packedmodel import read_packed_model

            tensors = read_packed_model(path).trit_tensors()
        else:
            tensors = packfile.read_packed(path)[0]
    out = {}
    for name, lin in layers.items():
        t = tensors.get(f"{name}.weight", tensors.get(name))
        if t is None:
            raise TritforgeError(f"{path}: no quantized matrix for layer {name}")
        if tuple(t.shape) != tuple(lin.weight.shape):
            raise TritforgeError(f"{path}: {name} has shape {tuple(t.shape)}, "
                                 f"the model's layer has {tuple(lin.weight.shape)}")
        if t.depth != depth:
            raise TritforgeError(f"{path}: {name} is quantized at d={t.depth}, the config asks for d={depth}")
        out[name] = t
    return out


def patch_model(model: nn.Module, tensors: dict[str, TritTensor], recorder: HwRecorder,
                keep_source: bool = True) -> dict[str, HwLinear]:
    """Replace each named nn.Linear by an HwLinear (in place); returns the new modules."""
    done = {}
    for name, t in tensors.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        lin = getattr(parent, attr)
        if not isinstance(lin, nn.Linear):
            raise TritforgeError(f"{name}: expected an nn.Linear, found {type(lin).__name__}")
        hw = HwLinear(name, t, lin.bias, lin.weight if keep_source else None, recorder)
        setattr(parent, attr, hw)
        done[name] = hw
    return done


# --- generation --------------------------------------------------------------------------

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


def check_generation(model, tok, opts: RunOptions, where: str, max_context: int | None) -> None:
    """Refuse a prompt plus ``opts.max_new_tokens`` beyond the model's maximum context
    (``max_position_embeddings``), the attention unit's (``max_context``, the layer path), or
    this machine's memory for the KV caches: before anything is quantized."""
    from ..memory import check_context

    what = f"--max-new-tokens {opts.max_new_tokens}"
    prompt = len(prompt_ids(tok, opts.prompt))
    total = prompt + opts.max_new_tokens
    c = model.config
    for limit, whose in ((getattr(c, "max_position_embeddings", None), f"{where}'s maximum context "
                          "(max_position_embeddings)"), (max_context, "the attention unit's max_context")):
        if limit and total > limit:
            raise TritforgeError(f"{what}: the prompt's {prompt} tokens + {opts.max_new_tokens} = {total:,} "
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


# --- quality -----------------------------------------------------------------------------

def measure_quality(model, tok, recorder: HwRecorder, max_tokens: int,
                    progress: bool = True, layer: bool = False) -> dict:
    """Quality figures on the bundled text (``sim.quality``), against the source model.

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
    from . import quality

    ids = quality.eval_ids(tok, max_tokens)
    logits = {}
    modes = ("source", "dequant", "hw") + (("layer",) if layer else ())
    before = recorder.mode
    try:
        for mode in tqdm(modes, desc="quality", unit="pass", disable=not progress, leave=False):
            recorder.set_mode(mode)
            recorder.phase = "eval"
            logits[mode] = quality.window_logits(model, ids)
    finally:
        recorder.set_mode(before)
        recorder.phase = "idle"
    src, deq, hw = logits["source"], logits["dequant"], logits["hw"]
    out = {"eval_tokens": int(len(ids)),
           "ppl_source": quality.perplexity_from_logits(src, ids),
           "ppl_quantized": quality.perplexity_from_logits(deq, ids),
           "ppl_hw": quality.perplexity_from_logits(hw, ids),
           **quality.compare_logits(src, hw)}
    out.update({f"quantized_{k}": v for k, v in quality.compare_logits(src, deq).items()})
    out.update({f"hw_vs_quantized_{k}": v for k, v in quality.compare_logits(deq, hw).items()})
    if layer:
        lay = logits["layer"]
        out["ppl_layer"] = quality.perplexity_from_logits(lay, ids)
        out.update({f"layer_{k}": v for k, v in quality.compare_logits(src, lay).items()})
        out.update({f"layer_vs_hw_{k}": v for k, v in quality.compare_logits(hw, lay).items()})
    return out


# --- figures -----------------------------------------------------------------------------

def _per_call(st: LayerStats, steps: int) -> tuple[int, Actions]:
    """Average cycles and actions of one decode step (exact: every step does the same work)."""
    a = {k: int(round(v / steps)) for k, v in st.actions.to_dict().items()}
    return int(round(st.cycles / steps)), Actions.from_dict(a)


def hw_error(recorder: HwRecorder) -> dict[str, float]:
    """Per layer: relative error of the integer path against the float dequantized product."""
    err, ref = {}, {}
    for (name, _), st in recorder.stats.items():
        err[name] = err.get(name, 0.0) + st.err_sq
        ref[name] = ref.get(name, 0.0) + st.ref_sq
    return {n: float(np.sqrt(err[n] / ref[n])) if ref[n] > 0 else 0.0 for n in err}


def phase_figures(recorder: HwRecorder, layers: dict[str, HwLinear], phase: str, steps: int,
                  board, table) -> list[dict]:
    from . import estimate

    stats = recorder.phase_stats(phase)
    out = []
    for name, hw in layers.items():
        st = stats.get(name)
        if st is None:
            raise TritforgeError(f"{name}: did not run in the {phase} phase")
        cycles, actions = _per_call(st, steps)
        out.append(estimate.layer_figures(name, hw.out_features, hw.in_features, cycles, actions,
                                          board, table, hw=recorder.cfg))
    return out


def model_info(model, where: str, layers: dict[str, HwLinear]) -> dict:
    c = model.config
    return {"name": os.path.basename(where.rstrip("/")), "path": where,
            "arch": c.model_type, "layers": int(c.num_hidden_layers),
            "hidden": int(c.hidden_size), "intermediate": int(c.intermediate_size),
            "vocab": int(c.vocab_size),
            "linear_weights": int(sum(h.in_features * h.out_features for h in layers.values()))}


def variable_bpw(layers: dict[str, HwLinear]) -> float | None:
    """Bits per (padded) weight of the variable-depth column stream over the run's
    matrices, or None if none is variable (``sim.estimate.stream_columns`` spreads it)."""
    var = [h for h in layers.values() if h.t.variable]
    if not var:
        return None
    cfg = var[0].recorder.cfg
    weights = sum(cfg.tiles(h.out_features) * cfg.rows * h.t.in_padded for h in var)
    return sum(h.weight_bytes for h in var) * 8 / weights


def whole_token(model, depth: int, board, table, accel, context: int,
                stream_bpw: float | None = None) -> dict:
    """The whole decode token at ``context`` (the prompt's length) through the estimator's
    closed forms (``sim.estimate.project``: the engine, attention and vector units,
    ``lm_head`` per the AccelConfig, sustained memory bandwidth, board static power), for
    the model the run loaded; and the context sweep the report plots.

    The run's own ``per_token`` counts the quantized matrices as the cycle model ran them;
    ``whole_token`` adds the rest of the token, so its tokens/s and J/token are the
    figures of the whole accelerator."""
    from . import estimate

    shape = {**model.config.to_dict(), "_name": getattr(model.config, "name_or_path", "") or "model"}
    r = estimate.project(shape, depth, board, table, context=context, prompt_tokens=context,
                         accel=accel, stream_bpw=stream_bpw)
    keep = ("context", "per_token", "timing", "prefill", "memory_fit", "lm_head", "schedule",
            "assumptions")
    out = {k: r[k] for k in keep if k in r}
    if shape.get("model_type") in ("llama", "qwen2"):
        from .layercycles import token_figures

        # the layer top as built (hw/layer.py), by its exact closed form
        hw = board.hwconfig(depth, vectors=1, max_in_features=board.max_in_features)
        out["layer_top"] = token_figures(shape, dataclasses.replace(accel, engine=hw), context,
                                         board.clock_mhz)
    return {"whole_token": out,
            "context_sweep": estimate.context_sweep(shape, depth, board, table, accel=accel,
                                                    stream_bpw=stream_bpw)}


def run(opts: RunOptions, rtl_check=None) -> dict:
    """Everything ``tritforge run`` does; returns the run-result JSON document (a dict).

    ``rtl_check(cfg, cases, rate) -> dict``: with ``opts.rtl_sample``, runs the sampled
    vector cases (:func:`rtl_sample_cases`) on the RTL; its answer goes in
    ``result["rtl_sample"]``. Variable-depth matrices (a mixed config's or a packed file's)
    are checked on the variable-depth engine (``cfg.weight_stream == "variable"``), its
    memory at the board's bytes per cycle ``rate`` (at most one longest column a cycle) on a
    ``mem`` port that wide.
    The co-simulation lives with the caller (the CLI), so ``sim`` never imports ``hw``.
    """
    from . import estimate
    from .energy import EnergyTable

    qconfig = _config(opts.config)
    depth = qconfig.depth
    if opts.mode not in MODES:
        raise TritforgeError(f"mode {opts.mode!r}: expected one of {MODES}")
    board, cfg = resolve_hw(opts.hw, depth)
    table = EnergyTable.load(opts.energy_table)
    accel = resolve_accel(opts.accel, cfg)
    if opts.path not in PATHS:
        raise TritforgeError(f"path {opts.path!r}: expected one of {PATHS}")
    # --packed: a packed file (the model comes from --model) or a packed model folder,
    # which is the model itself: it loads alone, no source checkpoint
    from ..codec.packedmodel import is_packed_model

    packed_folder = bool(opts.packed) and os.path.isdir(opts.packed)
    if packed_folder and not is_packed_model(opts.packed):
        from ..codec.packedmodel import read_packed_model

        read_packed_model(opts.packed)        # raises the one-line reason it is not one
    if packed_folder:
        packed, packed_meta = None, {}
    else:
        packed, packed_meta = packfile.read_packed(opts.packed) if opts.packed else (None, {})
    wall = {}
    t0 = time.perf_counter()
    model, tok, where = load_model(opts.packed if packed_folder else opts.model, opts.progress, opts.path)
    wall["load"] = time.perf_counter() - t0
    check_generation(model, tok, opts, where, accel.attention.max_context if opts.path == "layer" else None)
    if packed_folder:
        from ..codec.packedmodel import read_packed_model

        packed, packed_meta = model.tritforge_packed, read_packed_model(opts.packed, verify=False).note
    arch = packed_meta.get("architecture")
    if arch and arch != model.config.model_type:
        raise TritforgeError(f"{opts.packed}: quantized from a {arch} model, but {where} is "
                             f"{model.config.model_type}")
    linears = linear_layers(model)
    if not linears:
        raise TritforgeError(f"{where}: no linear layers to quantize")
    for name, lin in linears.items():
        cfg.check_shape(lin.out_features, lin.in_features, what=name)
    t0 = time.perf_counter()
    if packed is not None:
        tensors = packed_layers(opts.packed, linears, depth, packed)
    else:
        tensors = quantize_layers(linears, depth, opts.mode, opts.progress, qconfig.mixed)
    wall["quantize"] = time.perf_counter() - t0
    from .varmodel import board_rate

    # the variable-depth engine (a packed file's or a mixed config's matrices) is fed at
    # the board's sustained bytes per engine cycle
    recorder = HwRecorder(cfg, rate=board_rate(board))
    layers = patch_model(model, tensors, recorder, keep_source=opts.eval_tokens > 0)
    layered = opts.path == "layer"
    if layered:
        from .hwlayer import patch_layers

        hw_layers = patch_layers(model, recorder, accel, tensors[next(iter(tensors))].mode)
        recorder.set_mode("layer")

    gen = generate(model, tok, recorder, opts.prompt, opts.max_new_tokens, opts.progress)
    rtl_layer = None
    if layered and opts.rtl_sample:
        # before the quality passes, which restart the layers' KV caches
        from .layercheck import check_layer

        before, recorder.phase = recorder.phase, "rtl-layer"
        try:
            t0 = time.perf_counter()
            rtl_layer = check_layer(hw_layers[0], model.config, accel, board=board)
            wall["rtl_layer"] = time.perf_counter() - t0
        finally:
            recorder.phase = before
    wall["prefill"], wall["decode"] = gen.prefill_wall_s, gen.decode_wall_s
    decode = phase_figures(recorder, layers, "decode", gen.decode_steps, board, table)
    prefill = phase_figures(recorder, layers, "prefill", 1, board, table)
    # the quantized matrices alone: their actions and bytes (the board's static power is
    # in the whole-token figures, ``whole_token``)
    per_token = estimate.token_figures(decode, board, table, static=False)
    prefill_s = estimate.token_figures(prefill, board, table, static=False)["time_s"]

    quality = {}
    if opts.eval_tokens > 0:
        t0 = time.perf_counter()
        quality = measure_quality(model, tok, recorder, opts.eval_tokens, opts.progress, layered)
        wall["quality"] = time.perf_counter() - t0
    errors = hw_error(recorder)
    for entry in decode:
        entry["hw_vs_dequant_rel_err"] = errors.get(entry["name"], 0.0)
    all_err = sum(st.err_sq for st in recorder.stats.values())
    all_ref = sum(st.ref_sq for st in recorder.stats.values())
    quality["hw_vs_dequant_rel_err"] = float(np.sqrt(all_err / all_ref)) if all_ref > 0 else 0.0
    quality["hw_vs_dequant_rel_err_max_layer"] = max(errors.values()) if errors else 0.0

    steps = max(gen.decode_steps, 1)
    result = {
        "tool": "tritforge", "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_info(model, where, layers),
        "config": opts.config, "mode": opts.mode if not opts.packed else tensors[next(iter(tensors))].mode,
        "packed": opts.packed, "packed_source": packed_meta.get("source"),
        "hwconfig": {**cfg.to_dict(), "derived": cfg.derived()},
        "path": opts.path,
        "accelconfig": accel.to_dict(),
        "board": board.to_dict(),
        "energy_table": table.info(),
        "prompt": opts.prompt, "generated_text": gen.text,
        "tokens": {"prompt": len(gen.prompt_ids), "generated": len(gen.new_ids)},
        "timing": {
            "prefill_cycles": int(sum(e["cycles"] for e in prefill)),
            "prefill_s": prefill_s,
            "ttft_s": prefill_s,
            "decode_cycles_per_token": int(sum(e["cycles"] for e in decode)),
            "decode_tokens_per_s": per_token["tokens_per_s"],
            "wall_s_per_token": gen.decode_wall_s / steps,
            "wall_prefill_s": gen.prefill_wall_s,
            "wall_breakdown_s": wall,
        },
        "layers": decode,
        "prefill_layers": [{k: e[k] for k in ("name", "cycles", "compute_s", "memory_s", "bound")}
                           for e in prefill],
        "per_token": per_token,
        "quality": quality,
    }
    result.update(whole_token(model, depth, board, table, accel, len(gen.prompt_ids),
                              stream_bpw=variable_bpw(layers)))
    if rtl_layer is not None:
        result["rtl_layer"] = rtl_layer
    if opts.rtl_sample:
        if rtl_check is None:
            raise TritforgeError("--rtl-sample: no RTL co-simulation available to this caller")
        cases = rtl_sample_cases(recorder, layers, opts.rtl_sample)
        rtl_cfg, rate = cfg, recorder.rate
        variable = {c.tensor.variable for c, _ in cases}
        if variable == {True}:
            # the memory at the board's rate, or at one longest column a cycle if that is
            # less (the engine then takes a column a cycle either way): the gearbox's
            # tables grow with its port's width (hw/ENGINE.md "Variable-depth stream")
            rate = min(rate, cfg.column_bytes_max)
            rtl_cfg = dataclasses.replace(cfg, weight_stream="variable",
                                          mem_bytes=varmodel.port_bytes(cfg, rate))
        elif len(variable) > 1:
            raise TritforgeError("--rtl-sample: the sampled matrices mix uniform and variable-depth "
                                 "ones; one engine build takes one kind")
        result["rtl_sample"] = {"rows": opts.rtl_sample, "engine": rtl_cfg.weight_stream,
                                "bytes_per_cycle": float(rate),
                                "layers": {c.name.rsplit(".rows", 1)[0]: rows for c, rows in cases},
                                **rtl_check(rtl_cfg, [c for c, _ in cases], rate)}
    return result
