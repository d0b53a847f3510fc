"""Whole-token throughput and energy: per matrix, per unit, per byte, for any model shape.

Time of one matrix (``layer_figures``)
    compute_s = cycles / clock                       (the cycle model's count, at the board clock)
    memory_s  = sustained time of its weight bytes   (``sim.memory``: refresh, row switches,
                                                      turnarounds of the board's memory)
    The weights stream while the array computes, so the matrix takes max(compute_s, memory_s);
    ``bound`` names the larger one.

One decode token at context N (``project``), as the schedule of one layer, repeated
    stage                 unit         reads / writes off chip
    rmsnorm               vector       -
    q, k, v               engine       their weights
    rescale, rope, quant  vector       -
    attention             attention    N K/V rows read, the new K/V row written
    quantize attn out     vector       -
    o                     engine       its weights
    rescale, res, norm    vector       -
    gate, up              engine       their weights
    silu * up, quant      vector       -
    down                  engine       its weights
    rescale, residual     vector       -
  then once per token: the embedding row and the final norm (vector), the lm_head
  (``AccelConfig.lm_head``: "int8" on the attention unit, V H + V scale bytes; "ternary" on
  the engine at the config's depth; "host-fp16" 2 V H bytes, on this memory bus when the
  board's host shares it, taking max(bytes at the host's read rate, V H MACs at the host's
  MAC rate) from the board file's ``[host]`` (``host_lm_head``), after the layers; else on
  the host and outside the board's figures) and the logits leaving the chip.
    A stage waits for its input (one token is a chain of dependencies), so stages do not
    overlap each other; inside a stage the unit computes while its bytes stream, so a stage
    takes max(compute, memory). tokens/s = 1 / sum of stage times; the compute-only and
    memory-only bounds are 1 / sum(compute) and 1 / sum(memory).
    J/token = action energy (engine actions, unit actions, every byte at the memory's
    pJ/bit; ``sim.energy``) + (board static power + DRAM background power) x time per token.

Prefill of P tokens in commands of T = ``prefill_vectors`` vectors (each weight beat fetched
once per T tokens), attention over the causal prompt (``unitcycles.attention_prefill``), the
vector unit once per token, the lm_head once (the first generated token): time to first token.

Weight formats: the codec's trits at depth d (default, ``fastmodel`` closed forms) or, to
configure published accelerators (``bench/bench_validate.py``), ``WEIGHT_FORMATS``: the
same array (R x 16 weights per cycle per engine, the same command timing), the format's
bytes per weight and scales on the same memory, one MAC per weight priced by the table.

Engines: a board of ``engines`` engines of R rows splits each matrix's rows evenly; they
run in parallel on the same activations, so a matrix takes one engine's cycles on
ceil(out / engines) rows and the actions of all of them.

Projection from an HF config.json alone: every quantized matrix of a Llama/Qwen2 block (q,
k, v, o, gate, up, down) at an assumed fraction of zero trits (measured on SmolLM2-135M,
``ZERO_TRIT_FRACTION``); k/v reuse q's activation buffer and up reuses gate's.
"""
from __future__ import annotations

import dataclasses
import datetime
import numbers
import os
from importlib import resources

from dataclasses import dataclass

from .. import __version__
from ..accelconfig import AccelConfig, AttentionConfig
from ..codec import layout
from ..documents.modelshape import REQUIRED as _REQUIRED, ModelShape
from ..documents.validation import validate
from ..errors import TritforgeError
from ..jsonfile import read_json
from ..hwconfig import HwConfig
from .actions import Actions
from .boards import Board
from .energy import EnergyTable
from .fastmodel import command_actions, commands, run_cycles
from .unitcycles import (DEFAULT_UNITS, UnitsConfig, UnitWork, attention_decode, attention_prefill, check_context,
                         kv_row_bytes, lm_head_int8, vector_final, vector_layer, vector_ops)

#: Fraction of zero weight trits after quantization (tritllm-v2 rule), measured on the q/k/v/o/
#: gate/up/down matrices of SmolLM2-135M blocks 0, 15 and 29 (21 matrices, 2.2 M weights).
ZERO_TRIT_FRACTION = {1: 0.463, 2: 0.438, 3: 0.396, 4: 0.372}

#: Projections of one decoder block: (name, which activation buffer load it reuses).
BLOCK_LINEARS = (("self_attn.q_proj", True), ("self_attn.k_proj", False), ("self_attn.v_proj", False),
                 ("self_attn.o_proj", True), ("mlp.gate_proj", True), ("mlp.up_proj", False),
                 ("mlp.down_proj", True))



# --- model shapes --------------------------------------------------------------------------

def shape_names() -> list[str]:
    folder = resources.files(__package__).joinpath("data", "shapes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_shape(spec: str) -> dict:
    """A model shape: a bundled name (``shape_names()``) or the path of an HF config.json."""
    if isinstance(spec, str) and spec.lower() in shape_names():
        path = str(resources.files(__package__).joinpath("data", "shapes", spec.lower() + ".json"))
    else:
        path = str(spec)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        if not os.path.exists(path):
            raise TritforgeError(f"model config {spec!r}: no such file; expected a config.json path "
                                 f"or one of {shape_names()}")
    data = read_json(path, "model config (an HF config.json)")
    data = dict(data.get("text_config", data)) if isinstance(data.get("text_config"), dict) else dict(data)
    data.setdefault("_name", os.path.basename(os.path.dirname(os.path.abspath(path))) or path)
    data["_path"] = path
    other = uncovered_attention(data)
    if other:
        raise TritforgeError(f"model config {path}: {other}: not in the whole-token model, which covers "
                             f"decoder-only models with full causal attention over the whole context "
                             f"(grouped-query or multi-head, as Llama and Qwen2)")
    return check_shape(data, path)


def uncovered_attention(shape: dict) -> str | None:
    """What in an HF config's attention the whole-token model does not cover (its K/V bytes
    and attention cycles assume every layer attends to the whole context with one K and V
    row per token and KV head), or None."""
    archs = shape.get("architectures") or []
    if shape.get("is_encoder_decoder") or archs and not any(a.endswith(("ForCausalLM", "LMHeadModel"))
                                                             for a in archs):
        return f"architecture {archs[0] if archs else shape.get('model_type')!r} is not a decoder-only causal LM"
    if shape.get("kv_lora_rank") or shape.get("q_lora_rank"):
        return "multi-head latent attention (kv_lora_rank: a compressed KV cache)"
    window = shape.get("sliding_window")
    if window and shape.get("use_sliding_window", True):
        return f"sliding-window attention (sliding_window {window})"
    kinds = sorted(set(shape.get("layer_types") or []) - {"full_attention"})
    if kinds:
        return f"layers of type {', '.join(kinds)}"
    return None


def check_shape(shape: dict, where: str = "model config") -> dict:
    """Validate the fields the estimator needs and fill the derived ones."""
    missing = [k for k in _REQUIRED if shape.get(k) is None]
    if missing:
        raise TritforgeError(f"model config {where}: missing {missing} (expected an HF config.json "
                             "of a Llama/Qwen2-style decoder)")
    validate(ModelShape, shape, f"model config {where}")      # every field's rule
    out = dict(shape)
    if out.get("num_key_value_heads") is None:
        out["num_key_value_heads"] = out["num_attention_heads"]
    if out.get("head_dim") is None:
        if out["hidden_size"] % out["num_attention_heads"]:
            raise TritforgeError(f"model config {where}: hidden_size {out['hidden_size']} is not a "
                                 f"multiple of num_attention_heads {out['num_attention_heads']}; give head_dim")
        out["head_dim"] = out["hidden_size"] // out["num_attention_heads"]
    if out["num_attention_heads"] % out["num_key_value_heads"]:
        raise TritforgeError(f"model config {where}: num_attention_heads is not a multiple of num_key_value_heads")
    if out.get("vocab_size") is None:
        out["vocab_size"] = 0
    return out


def block_linears(shape: dict) -> list[tuple[str, int, int, bool]]:
    """(name, out_features, in_features, load_act) of the quantized matrices of one block."""
    H, I = shape["hidden_size"], shape["intermediate_size"]
    q = shape["num_attention_heads"] * shape["head_dim"]
    kv = shape["num_key_value_heads"] * shape["head_dim"]
    dims = {"self_attn.q_proj": (q, H), "self_attn.k_proj": (kv, H), "self_attn.v_proj": (kv, H),
            "self_attn.o_proj": (H, q), "mlp.gate_proj": (I, H), "mlp.up_proj": (I, H),
            "mlp.down_proj": (H, I)}
    return [(n, *dims[n], load) for n, load in BLOCK_LINEARS]


# --- weight formats ------------------------------------------------------------------------

@dataclass(frozen=True)
class WeightFormat:
    """A weight format other than the codec's: bits per weight, scales, the MAC it needs."""

    name: str
    bits: float                #: bits per weight in memory
    group: int                 #: weights per stored scale (0: one scale per row)
    scale_bytes: int           #: bytes of one stored scale (and zero point)
    mac: str                   #: unit action of one weight x activation product
    zero_fraction: float = 0.0 #: weights that skip their MAC (ternary zeros)
    source: str = ""


WEIGHT_FORMATS = {f.name: f for f in (
    WeightFormat("int8", 8, 0, 2, "mac_int8", source="int8 weights, one fp16 scale per row"),
    WeightFormat("int4-g128", 4, 128, 4, "mac_int4",
                 source="W4A16 (AWQ/GPTQ style): 4-bit weights, fp16 scale + fp16 zero per 128 weights"),
    WeightFormat("ternary-1.6", 1.6, 0, 2, "mac_ternary", 0.0,
                 source="ternary weights packed 5 per byte (1.6 bits), one fp16 scale per row"),
    WeightFormat("ternary-2", 2, 0, 2, "mac_ternary", 0.0,
                 source="ternary weights packed 4 per byte (2 bits), one fp16 scale per row"),
)}


def _format(name):
    if name is None or isinstance(name, WeightFormat):
        return name
    if name not in WEIGHT_FORMATS:
        raise TritforgeError(f"weight format {name!r}: expected one of {sorted(WEIGHT_FORMATS)} "
                             "(or none: the codec's trits)")
    return WEIGHT_FORMATS[name]


def format_bytes(fmt: WeightFormat, out: int, in_: int) -> int:
    scales = out * (-(-in_ // fmt.group)) if fmt.group else out
    return int(-(-out * in_ * fmt.bits // 8)) + scales * fmt.scale_bytes


# --- per layer, per token ------------------------------------------------------------------

def _counts(actions) -> dict:
    return actions.to_dict() if isinstance(actions, Actions) else Actions.from_dict(dict(actions)).to_dict()


def layer_figures(name: str, out: int, in_: int, cycles: int, actions, board: Board,
                  table: EnergyTable, hw: HwConfig | None = None, unit_actions: dict | None = None) -> dict:
    """One ``layers`` entry of the run-result JSON (one matrix, one decode token).

    ``actions``: ``Actions`` (or its dict) of the matrix; ``hw`` prices the datapath widths
    (default: the board's config at d = 2 — pass the config that ran); ``unit_actions``:
    extra counts priced by the table's [units] rows (the MACs of non-codec weight formats).
    """
    if isinstance(cycles, bool) or not isinstance(cycles, numbers.Real) or not 0 <= cycles < float("inf"):
        raise TritforgeError(f"layer {name}: cycles={cycles!r}, expected a number >= 0")
    cycles = int(cycles) if float(cycles).is_integer() else float(cycles)   # averages may be fractional
    counts = _counts(actions)
    hw = board.hwconfig(2) if hw is None else hw
    compute_s = cycles / (board.clock_mhz * 1e6)
    memory_s = board.memory_system().transfer_s(counts["weight_bytes"])
    energy = table.energy_pj(counts, board.memory, hw)
    if unit_actions:
        energy.update(table.unit_energy_pj(unit_actions, board.memory, hw))
    return {"name": name, "out": int(out), "in": int(in_), "weight_bytes": counts["weight_bytes"],
            "cycles": cycles, "compute_s": compute_s, "memory_s": memory_s,
            "bound": "compute" if compute_s >= memory_s else "memory",
            "actions": counts, "energy_pj": energy}


def static_power_w(board: Board) -> tuple[float, float]:
    """(board static power, DRAM background power) in W."""
    return board.static_w, board.memory_system().background_w


def token_figures(layers: list[dict], board: Board, table: EnergyTable, static: bool = True) -> dict:
    """The ``per_token`` entry from ``layer_figures`` entries run one after another: bounds,
    achieved rate, energy; with ``static``, (board static + DRAM background) x time too."""
    if not layers:
        raise TritforgeError("token figures: no layers (expected the per-layer figures of one token)")
    compute_s = sum(l["compute_s"] for l in layers)
    memory_s = sum(l["memory_s"] for l in layers)
    time_s = sum(max(l["compute_s"], l["memory_s"]) for l in layers)
    breakdown = {}
    for l in layers:
        for k, v in l["energy_pj"].items():
            breakdown[k] = breakdown.get(k, 0.0) + v * 1e-12
    if static:
        sw, bw = static_power_w(board)
        breakdown["static_board"] = sw * time_s
        breakdown["dram_background"] = bw * time_s
    energy = sum(breakdown.values())
    return {"energy_j": energy, "energy_breakdown_j": breakdown,
            "tokens_per_s_compute": 1 / compute_s if compute_s else float("inf"),
            "tokens_per_s_memory": 1 / memory_s if memory_s else float("inf"),
            "tokens_per_s": 1 / time_s if time_s else float("inf"),
            "bound": "compute" if compute_s >= memory_s else "memory",
            "compute_s": compute_s, "memory_s": memory_s, "time_s": time_s,
            "cycles": sum(l["cycles"] for l in layers),
            "weight_bytes": sum(l["weight_bytes"] for l in layers),
            "layers_memory_bound": sum(l["bound"] == "memory" for l in layers),
            "layers_compute_bound": sum(l["bound"] == "compute" for l in layers),
            "memory": board.memory, "energy_table": f"{table.name} {table.version}"}


# --- the engine's matrices -----------------------------------------------------------------

def stream_columns(hw: HwConfig, out: int, in_: int, stream_bpw: float):
    """Column bytes of a variable-depth matrix whose column stream (``codec.layout``,
    ``var_stream_columns``) takes ``stream_bpw`` bits per (padded) weight, spread evenly:
    column j ends at byte ceil((j + 1) R 16 bpw / 8)."""
    import numpy as np

    n = hw.tiles(out) * -(-in_ // layout.GROUP)
    per = hw.rows * layout.GROUP * stream_bpw / 8
    ends = np.ceil(np.arange(1, n + 1) * per - 1e-9).astype(np.int64)
    return np.diff(np.concatenate([[0], ends]))


def config_stream(name: str) -> tuple[int, float | None]:
    """A config name -> (depth, stream bpw): ``uniform-dN`` -> (N, None), the uniform engine;
    ``mixed-d<D>-bpw<B>`` -> (D, B), the variable-depth engine at B bits per weight."""
    from ..codec.modelquant import parse_config

    c = parse_config(str(name))
    if c.mixed is None:
        return c.depth, None
    if c.mixed.rule != "bpw":
        raise TritforgeError(f"config {name!r}: its bytes follow from the weights; a projection from a "
                             "shape takes mixed-d<D>-bpw<B> (or tritforge run on the quantized model)")
    return c.mixed.base, c.mixed.value


def matrix_work(name: str, out: int, in_: int, load: bool, hw: HwConfig, board: Board, table: EnergyTable,
                zf: float, fmt: WeightFormat | None, n_vectors: int = 1,
                stream_bpw: float | None = None) -> dict:
    """One matrix on the board's engines for ``n_vectors`` vectors (commands of hw.vectors);
    with ``stream_bpw``, a variable-depth matrix on the variable-depth engine
    (``sim.varmodel``: its column stream's bytes at the board's W bytes per cycle)."""
    engines = board.engines
    out_e = -(-out // engines)
    n_cmd = commands(hw, n_vectors)
    if stream_bpw is not None and fmt is None:
        from . import varmodel

        cols = stream_columns(hw, out_e, in_, stream_bpw)
        nnz = round((1 - zf) * out_e * in_ * hw.depth)
        cyc = varmodel.run_cycles(hw, out_e, in_, cols, n_vectors, varmodel.board_rate(board), load)
        acts = (varmodel.command_actions(hw, out_e, in_, nnz, cols, 0, load)
                + varmodel.command_actions(hw, out_e, in_, nnz, cols, 0, True).scaled(n_cmd - 1))
        acts.cycles = cyc
        unit = None
    elif fmt is None:
        nnz = round((1 - zf) * out_e * in_ * hw.depth)
        one = command_actions(hw, out_e, in_, nnz, load_act=load)
        acts = one + command_actions(hw, out_e, in_, nnz, load_act=True).scaled(n_cmd - 1)
        # a matrix's commands run back to back (hw/ENGINE.md "Back to back")
        acts.cycles = run_cycles(hw, out_e, in_, n_vectors, load)
        unit = None
    else:
        cyc = run_cycles(hw, out_e, in_, n_vectors, load)
        macs = out_e * in_ * n_cmd * hw.vectors
        acts = Actions(cycles=cyc, weight_bytes=format_bytes(fmt, out_e, in_) * n_cmd,
                       result_bits=hw.tiles(out_e) * hw.rows * 32 * hw.vectors * n_cmd)
        unit = {fmt.mac: round(macs * (1 - fmt.zero_fraction)), "unit_acc_add": macs}
    cycles = acts.cycles
    if engines > 1:
        acts = acts.scaled(engines)
        acts.cycles = cycles
        unit = {k: v * engines for k, v in unit.items()} if unit else None
    return layer_figures(name, out, in_, cycles, acts, board, table, hw, unit)


def _stage(name: str, unit: str, compute_s: float, memory_s: float, energy_pj: dict, cycles,
           read: int = 0, write: int = 0) -> dict:
    return {"name": name, "unit": unit, "cycles": cycles, "compute_s": compute_s, "memory_s": memory_s,
            "time_s": max(compute_s, memory_s), "bound": "compute" if compute_s >= memory_s else "memory",
            "read_bytes": read, "write_bytes": write, "energy_pj": energy_pj}


def _unit_stage(name: str, unit: str, work: UnitWork, board: Board, table: EnergyTable, hw: HwConfig) -> dict:
    mem = board.memory_system()
    mem_s = mem.transfer_s(work.read_bytes, work.write_bytes, work.write_batches) if (
        work.read_bytes or work.write_bytes) else 0.0
    energy = table.unit_energy_pj(work.actions, board.memory, hw) if work.actions else {}
    return _stage(name, unit, work.cycles / (board.clock_mhz * 1e6), mem_s, energy, work.cycles,
                  work.read_bytes, work.write_bytes)


def _matrix_stage(row: dict) -> dict:
    return _stage(row["name"], "engine", row["compute_s"], row["memory_s"], row["energy_pj"], row["cycles"],
                  row["weight_bytes"], 0)


#: where the vector unit's operations sit between the engine's matrices (``vector_ops`` order)
_VECTOR_AFTER = {"rmsnorm (attention input)": None, "rescale q, k, v": "self_attn.v_proj",
                 "rope q, k": "self_attn.v_proj", "quantize q, k, v (int8)": "self_attn.v_proj",
                 "quantize attention output": "attention", "rescale o + residual add": "self_attn.o_proj",
                 "rmsnorm (mlp input)": "self_attn.o_proj", "rescale gate, up": "mlp.up_proj",
                 "silu * up": "mlp.up_proj", "quantize silu * up": "mlp.up_proj",
                 "rescale down + residual add": "mlp.down_proj"}


def layer_schedule(kinds: list[dict], attention: dict, vector_stages: list[dict]) -> list[dict]:
    """One layer's stages in execution order: each vector operation after the stage whose
    output it takes (``_VECTOR_AFTER``), the attention after v_proj's vector work."""
    def after(key):
        return [v for v in vector_stages if _VECTOR_AFTER.get(v["name"].split(" + bias")[0]) == key]

    out = after(None)
    for row in kinds:
        out.append(_matrix_stage(row))
        out += after(row["name"])
        if row["name"] == "self_attn.v_proj":
            out.append(attention)
            out += after("attention")
    return out


def _sum_stages(stages: list[dict], repeat: int = 1) -> dict:
    energy = {}
    for s in stages:
        for k, v in s["energy_pj"].items():
            energy[k] = energy.get(k, 0.0) + v * repeat
    return {"cycles": sum(s["cycles"] for s in stages) * repeat,
            "compute_s": sum(s["compute_s"] for s in stages) * repeat,
            "memory_s": sum(s["memory_s"] for s in stages) * repeat,
            "time_s": sum(s["time_s"] for s in stages) * repeat,
            "read_bytes": sum(s["read_bytes"] for s in stages) * repeat,
            "write_bytes": sum(s["write_bytes"] for s in stages) * repeat,
            "energy_j": sum(energy.values()) * 1e-12, "energy_pj": energy}


def _accel(accel: AccelConfig | None, shape: dict, hw: HwConfig) -> AccelConfig:
    """The AccelConfig of a projection: the given one (its engine replaced by ``hw``), or the
    defaults with the attention unit sized for the model (head_dim, max_position_embeddings)."""
    if accel is not None:
        return dataclasses.replace(accel, engine=hw)
    limit = int(shape.get("max_position_embeddings") or AttentionConfig().max_context)
    att = AttentionConfig(max_head_dim=max(AttentionConfig().max_head_dim, shape["head_dim"] + shape["head_dim"] % 2),
                          max_context=min(max(limit, 1), 1 << 20))
    return AccelConfig(engine=hw, attention=att)


# --- projection ----------------------------------------------------------------------------

def project(model_shape, depth: int, board: Board, table: EnergyTable,
            zero_trit_fraction: float | None = None, prompt_tokens: int = 0,
            vectors: int | None = None, *, context: int = 0, prefill_vectors: int | None = None,
            accel: AccelConfig | None = None, units: UnitsConfig | None = None,
            weight_format=None, embedding_bytes: int = 2, lm_head: str | None = None,
            stream_bpw: float | None = None) -> dict:
    """Whole-token tokens/s and J/token of one decode token at ``context`` for a model shape.

    The result has the keys of the run-result JSON that apply to a projection (``model``,
    ``config``, ``mode``, ``hwconfig``, ``board``, ``energy_table``, ``layers``, ``per_token``,
    ``timing``) plus ``kinds`` (one row per projection kind), ``schedule`` (one layer's
    stages), ``units``, ``bytes``, ``memory_fit``, ``lm_head`` and ``assumptions``, so
    ``sim.report.render`` draws it too. ``vectors``: T of the decode commands (default the
    board's); ``prefill_vectors``: T of the prefill commands (default the board's);
    ``prompt_tokens`` > 0 adds ``prefill`` (time to first token); ``lm_head`` overrides
    the AccelConfig's placement; ``weight_format`` (``WEIGHT_FORMATS``) replaces the codec's;
    ``stream_bpw``: the block matrices are variable-depth ones of base depth ``depth`` on the
    variable-depth engine, their column stream at that many bits per weight
    (``matrix_work``, ``config_stream``).
    """
    shape = load_shape(model_shape) if isinstance(model_shape, str) else check_shape(dict(model_shape))
    layout.check_depth(depth)
    fmt = _format(weight_format)
    zf = ZERO_TRIT_FRACTION[depth] if zero_trit_fraction is None else zero_trit_fraction
    if isinstance(zf, bool) or not isinstance(zf, (int, float)) or not 0 <= zf <= 1:
        raise TritforgeError(f"zero_trit_fraction={zf!r}: expected a fraction in 0..1")
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 0:
        raise TritforgeError(f"prompt_tokens={prompt_tokens!r}: expected an integer >= 0")
    units = UnitsConfig.for_array(board.total_rows) if units is None else units
    linears = block_linears(shape)
    need_in = max(i for _, _, i, _ in linears)
    lm_where = lm_head or (accel.lm_head if accel is not None else "int8")
    if lm_where == "ternary":
        need_in = max(need_in, shape["hidden_size"])
    need_in = -(-need_in // layout.GROUP) * layout.GROUP
    hw = board.hwconfig(depth, vectors=vectors, max_in_features=max(board.max_in_features, need_in))
    acc = _accel(accel, shape, hw)
    if lm_head is not None:
        acc = dataclasses.replace(acc, lm_head=lm_head)
    limit = check_context(shape, context, acc.attention)
    if prompt_tokens and prompt_tokens > limit:
        raise TritforgeError(f"prompt_tokens {prompt_tokens}: longer than the model's maximum {limit}")
    for n, o, i, _ in linears:
        hw.check_shape(-(-o // board.engines), i, n)
    L, H, V = shape["num_hidden_layers"], shape["hidden_size"], shape["vocab_size"]

    # one layer: matrices, attention, vector unit, and their schedule
    kinds = []
    for n, o, i, load in linears:
        row = matrix_work(n, o, i, load, hw, board, table, zf, fmt, stream_bpw=stream_bpw)
        kinds.append({**row, "count": L, "load_act": load})
    att_work = attention_decode(shape, context, acc.attention, units)
    attention = _unit_stage("attention", "attention", att_work, board, table, hw)
    vstages = [_unit_stage(n, "vector", UnitWork(c, dict(a)), board, table, hw) for n, c, a in vector_ops(shape, units)]
    schedule = layer_schedule(kinds, attention, vstages)
    layers = [{**row, "name": f"model.layers.{b}.{row['name']}"} for b in range(L) for row in kinds]
    for row in layers:
        del row["count"], row["load_act"]

    # once per token: embedding row, final norm, lm_head, logits out
    final = [_unit_stage("embedding + final rmsnorm", "vector", vector_final(shape, units, embedding_bytes),
                         board, table, hw)]
    lm = lm_head_stage(shape, acc, hw, board, table, zf, units, fmt)
    final.append(lm["stage"])

    per_layer = _sum_stages(schedule)
    tail = _sum_stages(final)
    by_unit = {}
    for u in ("engine", "attention", "vector"):
        by_unit[u] = _sum_stages([s for s in schedule if s["unit"] == u], L)
    by_unit["vector"] = _merge(by_unit["vector"], _sum_stages(final[:1]))
    by_unit["lm_head"] = _sum_stages(final[1:])
    time_s = per_layer["time_s"] * L + tail["time_s"]
    compute_s = per_layer["compute_s"] * L + tail["compute_s"]
    memory_s = per_layer["memory_s"] * L + tail["memory_s"]
    sw, bgw = static_power_w(board)
    breakdown = {}
    for part in (per_layer, tail):
        rep = L if part is per_layer else 1
        for k, v in part["energy_pj"].items():
            breakdown[k] = breakdown.get(k, 0.0) + v * (rep if part is per_layer else 1) * 1e-12
    breakdown["static_board"] = sw * time_s
    breakdown["dram_background"] = bgw * time_s
    energy = sum(breakdown.values())
    for u, d in by_unit.items():
        d["energy_j"] = d["energy_j"]
    by_unit["static"] = {"energy_j": breakdown["static_board"] + breakdown["dram_background"], "time_s": time_s,
                         "power_w": sw + bgw}
    weight_bytes = sum(l["weight_bytes"] for l in layers)
    kv_read = att_work.read_bytes * L
    kv_write = att_work.write_bytes * L
    byte_classes = {"weights": weight_bytes, "kv_read": kv_read, "kv_write": kv_write,
                    "lm_head": lm["bytes"], "embedding": H * embedding_bytes, "logits_out": lm["out_bytes"]}
    on_bus = sum(byte_classes.values()) - (0 if lm["on_bus"] else lm["bytes"] + lm["out_bytes"])
    mem = board.memory_system()
    per_token = {
        "energy_j": energy, "energy_breakdown_j": breakdown,
        "tokens_per_s_compute": 1 / compute_s if compute_s else float("inf"),
        "tokens_per_s_memory": 1 / memory_s if memory_s else float("inf"),
        "tokens_per_s": 1 / time_s,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "compute_s": compute_s, "memory_s": memory_s, "time_s": time_s,
        "cycles": per_layer["cycles"] * L + tail["cycles"],
        "weight_bytes": weight_bytes,
        "layers_memory_bound": sum(l["bound"] == "memory" for l in layers),
        "layers_compute_bound": sum(l["bound"] == "compute" for l in layers),
        "memory": board.memory, "energy_table": f"{table.name} {table.version}",
        "context": context, "bytes": byte_classes, "bytes_on_bus": on_bus,
        "units": by_unit, "power_w": energy / time_s,
        "static_w": sw, "dram_background_w": bgw,
        "memory_efficiency": mem.efficiency(), "sustained_gbs": mem.peak_gbs * mem.efficiency(),
        "peak_bound_tokens_per_s": mem.peak_bps / on_bus if on_bus else float("inf"),
    }
    timing = {"decode_cycles_per_token": per_token["cycles"], "decode_tokens_per_s": per_token["tokens_per_s"]}
    prefill = None
    pv = board.vectors if prefill_vectors is None else prefill_vectors
    if prompt_tokens:
        hw_pf = board.hwconfig(depth, vectors=pv, max_in_features=hw.max_in_features)
        prefill = prefill_figures(hw_pf, linears, zf, prompt_tokens, L, board, table, shape=shape, accel=acc,
                                  units=units, fmt=fmt, lm=lm, embedding_bytes=embedding_bytes,
                                  stream_bpw=stream_bpw)
        timing.update(prefill_cycles=prefill["cycles"], prefill_s=prefill["time_s"], ttft_s=prefill["time_s"])
    n_weights = sum(o * i for _, o, i, _ in linears) * L
    fit = memory_fit(shape, board, weight_bytes, lm, acc, limit, embedding_bytes)
    return {
        "tool": "tritforge", "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": shape.get("_name", "model"), "path": shape.get("_path", ""),
                  "source": shape.get("_source", ""), "arch": shape.get("model_type", ""),
                  "layers": L, "hidden": H, "intermediate": shape["intermediate_size"],
                  "heads": shape["num_attention_heads"], "kv_heads": shape["num_key_value_heads"],
                  "head_dim": shape["head_dim"], "vocab": V, "linear_weights": n_weights,
                  "max_context": limit},
        "config": (fmt.name if fmt is not None else f"uniform-d{depth}" if stream_bpw is None
                   else f"mixed-d{depth}-bpw{stream_bpw:g}"), "mode": "projection",
        "hwconfig": {**hw.to_dict(), "derived": hw.derived(), "engines": board.engines},
        "accelconfig": acc.to_dict(), "units_config": units.to_dict(),
        "board": board.to_dict(), "energy_table": table.info(),
        "timing": timing, "prefill": prefill, "context": context,
        "kinds": kinds, "layers": layers, "schedule": schedule, "final_stages": final,
        "per_token": per_token,
        "memory_fit": fit,
        "lm_head": {k: v for k, v in lm.items() if k != "stage"},
        "assumptions": {"zero_trit_fraction": zf, "decode_vectors": hw.vectors, "vectors_per_command": hw.vectors,
                        "prefill_vectors": pv, "weight_format": "codec trits" if fmt is None else fmt.source,
                        "variable_depth": None if stream_bpw is None else {
                            "base_depth": depth, "stream_bpw": stream_bpw,
                            "stream_rate_bytes_per_cycle": float(__import__(
                                "tritforge.sim.varmodel", fromlist=["x"]).board_rate(board)),
                            "columns": "even bytes per column (the average of the configuration)"},
                        "load_act": "k/v reuse q's activations, up reuses gate's",
                        "max_in_features": hw.max_in_features, "embedding_bytes": embedding_bytes,
                        "schedule": "stages one after another (each waits for its input); memory and "
                                    "compute overlap inside a stage",
                        "not_counted": "host-side sampling; the host's own power"
                                       + ("" if lm["on_bus"] else "; the host-fp16 lm_head (runs on the host)")},
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k in ("cycles", "compute_s", "memory_s", "time_s", "read_bytes", "write_bytes", "energy_j"):
        out[k] = a[k] + b[k]
    e = dict(a["energy_pj"])
    for k, v in b["energy_pj"].items():
        e[k] = e.get(k, 0.0) + v
    out["energy_pj"] = e
    return out


def lm_head_stage(shape: dict, acc: AccelConfig, hw: HwConfig, board: Board, table: EnergyTable, zf: float,
                  units: UnitsConfig, fmt: WeightFormat | None = None) -> dict:
    """The lm_head of one token by ``AccelConfig.lm_head`` (see the module docstring)."""
    H, V = shape["hidden_size"], shape["vocab_size"]
    where = acc.lm_head
    if V == 0:
        return {"where": where, "bytes": 0, "out_bytes": 0, "on_bus": True, "resident_bytes": 0,
                "stage": _stage("lm_head", "lm_head", 0.0, 0.0, {}, 0)}
    if where == "int8":
        w = lm_head_int8(shape, acc.attention, units)
        st = _unit_stage("lm_head (int8, attention unit)", "lm_head", w, board, table, hw)
        return {"where": where, "bytes": w.read_bytes, "out_bytes": w.write_bytes, "on_bus": True,
                "resident_bytes": w.read_bytes, "stage": st}
    if where == "ternary":
        row = matrix_work("lm_head", V, H, True, hw, board, table, zf, fmt)
        mem = board.memory_system()
        out_s = mem.transfer_s(0, 4 * V, 1)
        energy = dict(row["energy_pj"])
        energy.update(table.unit_energy_pj({"out_write_bytes": 4 * V}, board.memory, hw))
        st = _stage("lm_head (ternary, engine)", "lm_head", row["compute_s"], row["memory_s"] + out_s, energy,
                    row["cycles"], row["weight_bytes"], 4 * V)
        return {"where": where, "bytes": row["weight_bytes"], "out_bytes": 4 * V, "on_bus": True,
                "resident_bytes": row["weight_bytes"], "stage": st}
    wbytes = 2 * V * H
    if board.host_shares_memory:
        host = host_lm_head(board, V, H, wbytes)
        energy = table.unit_energy_pj({"lm_head_bytes": wbytes}, board.memory, hw)
        st = _stage("lm_head (host-fp16, shared memory bus)", "lm_head", host["compute_s"], host["read_s"], energy,
                    0, wbytes, 0)
        return {"where": where, "bytes": wbytes, "out_bytes": 0, "on_bus": True, "resident_bytes": wbytes,
                "stage": st, "host": host,
                "note": "host computes in fp16 after the layers; its weight stream shares the board's memory bus"}
    return {"where": where, "bytes": wbytes, "out_bytes": 0, "on_bus": False, "resident_bytes": 0,
            "stage": _stage("lm_head (host-fp16, host memory)", "lm_head", 0.0, 0.0, {}, 0),
            "note": "host computes in fp16 from its own memory: not in the board's time or energy"}


def host_lm_head(board: Board, V: int, H: int, wbytes: int) -> dict:
    """A host-side lm_head reading ``wbytes`` from the board's shared memory: its read time
    at the host's own read rate (the board file's ``[host] read_gbs``; never faster than the
    memory's sustained rate) and its compute time at the host's MAC rate (cores x clock x
    MACs per cycle); the stage takes the larger. Without a ``[host]`` table no compute time
    is charged, and without ``read_gbs`` the host reads at the memory's sustained rate: both
    are lower bounds on the host's time, and the result says which figures it had."""
    mem = board.memory_system()
    bus_s = mem.transfer_s(wbytes)
    hc = board.host
    macs = V * H
    read_s, rate = bus_s, "the memory's sustained rate: no host read rate in the board file"
    if hc is not None and hc.read_gbs is not None and wbytes / (hc.read_gbs * 1e9) > bus_s:
        read_s, rate = wbytes / (hc.read_gbs * 1e9), "the host's own, [host] read_gbs"
    compute_s = macs / hc.macs_per_s if hc is not None else 0.0
    return {"macs": macs, "read_s": read_s, "compute_s": compute_s, "read_rate": rate,
            "read_gbs": wbytes / read_s / 1e9 if read_s else None,
            "macs_per_s": hc.macs_per_s if hc is not None else None,
            "bound": "compute" if compute_s > read_s else "memory",
            "schedule": "after the last layer (the host waits for the final norm's output), not overlapped"}


def memory_fit(shape: dict, board: Board, weight_bytes: int, lm: dict, acc: AccelConfig, limit: int,
               embedding_bytes: int = 2) -> dict:
    """Everything resident in the board's memory: packed weights, the embedding table, the
    lm_head (unless it lives on the host), the KV cache at the largest context, and the
    activation and logit buffers."""
    H, V, L = shape["hidden_size"], shape["vocab_size"], shape["num_hidden_layers"]
    tied = bool(shape.get("tie_word_embeddings"))
    embed = V * H * embedding_bytes
    lm_b = lm["resident_bytes"]
    if tied and lm["where"] == "host-fp16" and lm["on_bus"] and embedding_bytes == 2:
        lm_b = 0                                   # the fp16 embedding table is the lm_head
    kv = kv_row_bytes(shape, acc.attention) * L * limit
    buffers = 4 * V + 4 * (H + shape["intermediate_size"]) * 4
    total = weight_bytes + embed + lm_b + kv + buffers
    return {"weight_bytes": weight_bytes, "embedding_bytes": embed, "lm_head_bytes": lm_b,
            "kv_cache_bytes": kv, "kv_context": limit, "buffer_bytes": buffers,
            "total_bytes": total, "capacity_bytes": board.memory_bytes, "fits": total <= board.memory_bytes}


def prefill_figures(hw: HwConfig, linears, zero_trit_fraction: float, prompt_tokens: int,
                    n_blocks: int, board: Board, table: EnergyTable, *, shape: dict | None = None,
                    accel: AccelConfig | None = None, units: UnitsConfig | None = None,
                    fmt: WeightFormat | None = None, lm: dict | None = None, embedding_bytes: int = 2,
                    stream_bpw: float | None = None) -> dict:
    """The prompt through every matrix in ``commands(T)`` commands of T = hw.vectors vectors
    (each weight beat fetched once per T tokens) and, with ``shape``, through the attention
    unit (causal, ``attention_prefill``), the vector unit (every token) and the lm_head once:
    the time to first token is the sum over stages of max(compute, memory)."""
    n_cmd = commands(hw, prompt_tokens)
    rows = [matrix_work(n, o, i, load, hw, board, table, zero_trit_fraction, fmt, prompt_tokens, stream_bpw)
            for n, o, i, load in linears]
    stages = [_matrix_stage(r) for r in rows]
    if shape is not None:
        units = DEFAULT_UNITS if units is None else units
        acc = accel if accel is not None else _accel(None, shape, hw)
        stages.append(_unit_stage("attention (prefill)", "attention",
                                  attention_prefill(shape, prompt_tokens, hw.vectors, acc.attention, units),
                                  board, table, hw))
        stages.append(_unit_stage("vector unit (prefill)", "vector",
                                  vector_layer(shape, units).scaled(prompt_tokens), board, table, hw))
    block = _sum_stages(stages)
    tail = _sum_stages([lm["stage"]]) if lm is not None else _sum_stages([])
    if shape is not None:
        fin = vector_final(shape, DEFAULT_UNITS if units is None else units, embedding_bytes).scaled(prompt_tokens)
        tail = _merge(tail, _sum_stages([_unit_stage("embeddings + final norm", "vector", fin, board, table, hw)]))
    time_s = block["time_s"] * n_blocks + tail["time_s"]
    sw, bgw = static_power_w(board)
    return {"prompt_tokens": prompt_tokens, "commands_per_matrix": n_cmd, "vectors": hw.vectors,
            "cycles": block["cycles"] * n_blocks + tail["cycles"],
            "weight_bytes": sum(r["weight_bytes"] for r in rows) * n_blocks,
            "compute_s": block["compute_s"] * n_blocks + tail["compute_s"],
            "memory_s": block["memory_s"] * n_blocks + tail["memory_s"],
            "time_s": time_s, "tokens_per_s": prompt_tokens / time_s,
            "bound": "compute" if block["compute_s"] >= block["memory_s"] else "memory",
            "energy_j": block["energy_j"] * n_blocks + tail["energy_j"] + (sw + bgw) * time_s,
            "per_matrix": [{k: r[k] for k in ("name", "out", "in", "cycles", "compute_s", "memory_s", "bound",
                                               "weight_bytes")} for r in rows]}


def context_sweep(model_shape, depth: int, board: Board, table: EnergyTable, points: int = 9, **kw) -> list[dict]:
    """tokens/s and J/token against context, 0 .. the model's maximum, per unit and byte class."""
    shape = load_shape(model_shape) if isinstance(model_shape, str) else check_shape(dict(model_shape))
    base = project(shape, depth, board, table, context=0, **kw)
    limit = base["model"]["max_context"]
    ctxs = sorted({0} | {round(limit * k / (points - 1)) for k in range(1, points)})
    out = []
    for c in ctxs:
        r = base if c == 0 else project(shape, depth, board, table, context=c, **kw)
        pt = r["per_token"]
        out.append({"context": c, "tokens_per_s": pt["tokens_per_s"], "energy_j": pt["energy_j"],
                    "bound": pt["bound"],
                    "time_s_by_unit": {u: d["time_s"] for u, d in pt["units"].items() if u != "static"},
                    "energy_j_by_unit": {u: d["energy_j"] for u, d in pt["units"].items()},
                    "bytes": dict(pt["bytes"])})
    return out
