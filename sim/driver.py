"""The model-level driver: a real checkpoint, run through the simulated hardware.

Steps of :func:`run` (the ``tritforge run`` command; docs/ARCHITECTURE.md):

1. load the stock transformers model and its tokenizer (HF safetensors folder or GGUF,
   ``codec.checkpoint.load_model``): any decoder-only causal LM on the linear-only path,
   the Llama and Qwen2 families on the whole-layer path (:func:`load_model`);
2. quantize every linear layer except the output embedding (``lm_head``) at the config's
   depth (a mixed config: a depth per group, ``codec.mixeddepth``, by the plain weight
   error), or read the quantized matrices from a packed file (``codec.packfile``;
   ``sim.patching``);
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
4. generate greedily (``sim.generation``) through the chosen path (the tokenizer's chat template when it has
   one). Prefill sends all prompt tokens through each matrix at once — the engine takes
   them T per weight fetch — and every decode step sends one token;
5. quality on the bundled text (``sim.quality.measure_paths``): perplexity of the source model, of the dequantized float
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

import dataclasses
import datetime
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..codec import checkpoint, packfile
from ..codec.quantize import MODES, TritTensor
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from . import varmodel
from .actions import Actions
from .generation import check_generation, generate
from .hwlinear import HwLinear, HwRecorder, LayerStats
from .patching import linear_layers, packed_layers, patch_model, quantize_layers

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
    rtl_prefill: int = 0           #: with rtl_sample on the layer path: replay T tokens as one command
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


def load_model(spec: str, progress: bool = False, path: str = "layer"):
    """``codec.checkpoint.load_model`` for a run on ``path``: the whole-layer path takes the
    families of :data:`ARCHS`, the linear path any decoder-only causal LM."""
    if path != "layer":
        return checkpoint.load_model(spec, progress)
    return checkpoint.load_model(spec, progress, ARCHS,
                                 f"the whole-layer hardware path covers {', '.join(ARCHS)}; pass --path "
                                 f"linear to run its Linears on the engine and the rest of the model on the host")


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
    check_generation(model, tok, opts.prompt, opts.max_new_tokens, where,
                     accel.attention.max_context if opts.path == "layer" else None)
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
            rtl_layer = check_layer(hw_layers[0], model.config, accel, board=board, prefill=opts.rtl_prefill)
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
        from .quality import measure_paths

        quality = measure_paths(model, tok, recorder, opts.eval_tokens, opts.progress, layered)
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
            rtl_cfg = varmodel.built_config(cfg, rate)
        elif len(variable) > 1:
            raise TritforgeError("--rtl-sample: the sampled matrices mix uniform and variable-depth "
                                 "ones; one engine build takes one kind")
        result["rtl_sample"] = {"rows": opts.rtl_sample, "engine": rtl_cfg.weight_stream,
                                "bytes_per_cycle": float(rate),
                                "layers": {c.name.rsplit(".rows", 1)[0]: rows for c, rows in cases},
                                **rtl_check(rtl_cfg, [c for c, _ in cases], rate)}
    return result
