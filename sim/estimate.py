"""Throughput and energy estimates: per layer, per token, and projected for any model shape.

Time of one matrix (one decode token, ``layer_figures``)
    compute_s = cycles / clock                       (the cycle model's count, at the board clock)
    memory_s  = weight_bytes / bandwidth            (the weight stream; activations and results
                                                      are a few KB and are not counted here)
    The weights stream while the array computes, so the matrix takes max(compute_s, memory_s);
    ``bound`` names the larger one.

One token (``token_figures``), the matrices one after another
    tokens_per_s_compute = 1 / sum(compute_s)      the compute bound
    tokens_per_s_memory  = 1 / sum(memory_s)       the memory (bandwidth) bound
    tokens_per_s         = 1 / sum(max(compute_s, memory_s))   never above either bound
    energy_j             = sum over layers and actions of count x pJ per action (``sim.energy``)

Projection (``project``): a model too large to run here, from its HF config.json alone.
Every quantized matrix of a Llama/Qwen2 block (q, k, v, o, gate, up, down) is priced with
the cycle model's closed forms (``fastmodel.command_cycles`` / ``command_actions``: exact
for the engine, no weights needed) and an assumed fraction of zero trits (measured on
SmolLM2-135M, ``ZERO_TRIT_FRACTION``); k/v reuse q's activation buffer and up reuses
gate's (``load_act = False``). ``lm_head`` and the embeddings stay in floating point on the
host (docs/CODEC.md): they are not in the hardware figures; ``lm_head`` reports the bytes it
would add per token if it streamed from the same memory.
"""
from __future__ import annotations

import datetime
import numbers
import os
from importlib import resources

from .. import __version__
from ..codec import layout
from ..errors import TritforgeError
from ..jsonfile import read_json
from ..hwconfig import HwConfig
from .actions import Actions
from .boards import Board
from .energy import EnergyTable
from .fastmodel import command_actions, commands

#: Fraction of zero weight trits after quantization (tritllm-v2 rule), measured on the q/k/v/o/
#: gate/up/down matrices of SmolLM2-135M blocks 0, 15 and 29 (21 matrices, 2.2 M weights).
ZERO_TRIT_FRACTION = {1: 0.463, 2: 0.438, 3: 0.396, 4: 0.372}

#: Projections of one decoder block: (name, which activation buffer load it reuses).
BLOCK_LINEARS = (("self_attn.q_proj", True), ("self_attn.k_proj", False), ("self_attn.v_proj", False),
                 ("self_attn.o_proj", True), ("mlp.gate_proj", True), ("mlp.up_proj", False),
                 ("mlp.down_proj", True))

_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


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
    return check_shape(data, path)


def check_shape(shape: dict, where: str = "model config") -> dict:
    """Validate the fields the estimator needs and fill the derived ones."""
    missing = [k for k in _REQUIRED if k not in shape]
    if missing:
        raise TritforgeError(f"model config {where}: missing {missing} (expected an HF config.json "
                             "of a Llama/Qwen2-style decoder)")
    out = dict(shape)
    for k in _REQUIRED + ("num_key_value_heads", "head_dim", "vocab_size"):
        if k in out and out[k] is not None:
            v = out[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TritforgeError(f"model config {where}: {k}={v!r}, expected a positive integer")
    out.setdefault("num_key_value_heads", out["num_attention_heads"])
    if out.get("head_dim") is None:
        if out["hidden_size"] % out["num_attention_heads"]:
            raise TritforgeError(f"model config {where}: hidden_size {out['hidden_size']} is not a "
                                 f"multiple of num_attention_heads {out['num_attention_heads']}; give head_dim")
        out["head_dim"] = out["hidden_size"] // out["num_attention_heads"]
    if out["num_attention_heads"] % out["num_key_value_heads"]:
        raise TritforgeError(f"model config {where}: num_attention_heads is not a multiple of num_key_value_heads")
    out.setdefault("vocab_size", 0)
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


# --- per layer, per token ------------------------------------------------------------------

def _counts(actions) -> dict:
    return actions.to_dict() if isinstance(actions, Actions) else Actions.from_dict(dict(actions)).to_dict()


def layer_figures(name: str, out: int, in_: int, cycles: int, actions, board: Board,
                  table: EnergyTable, hw: HwConfig | None = None) -> dict:
    """One ``layers`` entry of the run-result JSON (one matrix, one decode token).

    ``actions``: ``Actions`` (or its dict) of the matrix; ``hw`` prices the datapath widths
    (default: the board's config at d = 2 — pass the config that ran).
    """
    if isinstance(cycles, bool) or not isinstance(cycles, numbers.Real) or not 0 <= cycles < float("inf"):
        raise TritforgeError(f"layer {name}: cycles={cycles!r}, expected a number >= 0")
    cycles = int(cycles) if float(cycles).is_integer() else float(cycles)   # averages may be fractional
    counts = _counts(actions)
    hw = board.hwconfig(2) if hw is None else hw
    compute_s = cycles / (board.clock_mhz * 1e6)
    memory_s = counts["weight_bytes"] / (board.bandwidth_gbs * 1e9)
    return {"name": name, "out": int(out), "in": int(in_), "weight_bytes": counts["weight_bytes"],
            "cycles": cycles, "compute_s": compute_s, "memory_s": memory_s,
            "bound": "compute" if compute_s >= memory_s else "memory",
            "actions": counts, "energy_pj": table.energy_pj(counts, board.memory, hw)}


def token_figures(layers: list[dict], board: Board, table: EnergyTable) -> dict:
    """The ``per_token`` entry: bounds, achieved rate, energy, from ``layer_figures`` entries."""
    if not layers:
        raise TritforgeError("token figures: no layers (expected the per-layer figures of one token)")
    compute_s = sum(l["compute_s"] for l in layers)
    memory_s = sum(l["memory_s"] for l in layers)
    time_s = sum(max(l["compute_s"], l["memory_s"]) for l in layers)
    breakdown = {}
    for l in layers:
        for k, v in l["energy_pj"].items():
            breakdown[k] = breakdown.get(k, 0.0) + v * 1e-12
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


# --- projection ----------------------------------------------------------------------------

def project(model_shape, depth: int, board: Board, table: EnergyTable,
            zero_trit_fraction: float | None = None, prompt_tokens: int = 0,
            vectors: int | None = None) -> dict:
    """Tokens/s and J/token of one decode token for a model shape (HF config dict, name or path).

    The result has the keys of the run-result JSON that apply to a projection (``model``,
    ``config``, ``mode``, ``hwconfig``, ``board``, ``energy_table``, ``layers``, ``per_token``,
    ``timing``) plus ``kinds`` (one row per projection kind) and ``assumptions``, so
    ``sim.report.render`` draws it too. ``prompt_tokens`` > 0 adds ``prefill``: the prompt
    through every matrix in commands of T vectors (each weight beat fetched once per T
    tokens), hence the time to first token. ``vectors`` overrides the board's T.
    """
    shape = load_shape(model_shape) if isinstance(model_shape, str) else check_shape(dict(model_shape))
    layout.check_depth(depth)
    zf = ZERO_TRIT_FRACTION[depth] if zero_trit_fraction is None else zero_trit_fraction
    if isinstance(zf, bool) or not isinstance(zf, (int, float)) or not 0 <= zf <= 1:
        raise TritforgeError(f"zero_trit_fraction={zf!r}: expected a fraction in 0..1")
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 0:
        raise TritforgeError(f"prompt_tokens={prompt_tokens!r}: expected an integer >= 0")
    linears = block_linears(shape)
    need_in = max(i for _, _, i, _ in linears)
    need_in = -(-need_in // layout.GROUP) * layout.GROUP
    hw = board.hwconfig(depth, vectors=vectors, max_in_features=max(board.max_in_features, need_in))
    for n, o, i, _ in linears:
        hw.check_shape(o, i, n)
    kinds = []
    for n, o, i, load in linears:
        nnz = round((1 - zf) * o * i * depth)
        acts = command_actions(hw, o, i, nnz, load_act=load)
        row = layer_figures(n, o, i, acts.cycles, acts, board, table, hw)
        kinds.append({**row, "count": shape["num_hidden_layers"], "load_act": load})
    layers = [{**row, "name": f"model.layers.{b}.{row['name']}"}        # execution order
              for b in range(shape["num_hidden_layers"]) for row in kinds]
    for row in layers:
        del row["count"], row["load_act"]
    per_token = token_figures(layers, board, table)
    timing = {"decode_cycles_per_token": per_token["cycles"], "decode_tokens_per_s": per_token["tokens_per_s"]}
    prefill = None
    if prompt_tokens:
        prefill = prefill_figures(hw, linears, zf, prompt_tokens, shape["num_hidden_layers"], board, table)
        timing.update(prefill_cycles=prefill["cycles"], prefill_s=prefill["time_s"], ttft_s=prefill["time_s"])
    H, V = shape["hidden_size"], shape["vocab_size"]
    lm_bytes = 2 * H * V                               # fp16 lm_head, tied or not
    lm_s = lm_bytes / (board.bandwidth_gbs * 1e9)
    n_weights = sum(o * i for _, o, i, _ in linears) * shape["num_hidden_layers"]
    return {
        "tool": "tritforge", "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": shape.get("_name", "model"), "path": shape.get("_path", ""),
                  "source": shape.get("_source", ""), "arch": shape.get("model_type", ""),
                  "layers": shape["num_hidden_layers"], "hidden": H,
                  "intermediate": shape["intermediate_size"], "heads": shape["num_attention_heads"],
                  "kv_heads": shape["num_key_value_heads"], "head_dim": shape["head_dim"],
                  "vocab": V, "linear_weights": n_weights},
        "config": f"uniform-d{depth}", "mode": "projection",
        "hwconfig": {**hw.to_dict(), "derived": hw.derived()},
        "board": board.to_dict(), "energy_table": table.info(),
        "timing": timing, "prefill": prefill,
        "kinds": kinds, "layers": layers, "per_token": per_token,
        "memory_fit": {"weight_bytes": per_token["weight_bytes"], "capacity_bytes": board.memory_bytes,
                       "fits": per_token["weight_bytes"] <= board.memory_bytes},
        "lm_head": {"weight_bytes_fp16": lm_bytes, "memory_s": lm_s,
                    "tokens_per_s_memory_with_lm_head": 1 / (per_token["memory_s"] + lm_s),
                    "note": "lm_head stays fp16 on the host (not quantized); these figures would apply "
                            "if it streamed from the board memory too"},
        "assumptions": {"zero_trit_fraction": zf, "decode_vectors": 1, "vectors_per_command": hw.vectors,
                        "load_act": "k/v reuse q's activations, up reuses gate's",
                        "max_in_features": hw.max_in_features,
                        "not_counted": "attention (scores, softmax, KV cache), norms, embeddings, "
                                       "lm_head, host rescale"},
    }


def prefill_figures(hw: HwConfig, linears, zero_trit_fraction: float, prompt_tokens: int,
                    n_blocks: int, board: Board, table: EnergyTable) -> dict:
    """The prompt through every matrix: ``commands(T)`` commands per matrix, each fetching the
    weights once for T tokens; the time to first token is the sum over matrices of
    max(compute, memory) (attention and lm_head not counted)."""
    n_cmd = commands(hw, prompt_tokens)
    rows = []
    for n, o, i, load in linears:
        nnz = round((1 - zero_trit_fraction) * o * i * hw.depth)
        acts = (command_actions(hw, o, i, nnz, load_act=load)
                + command_actions(hw, o, i, nnz, load_act=True).scaled(n_cmd - 1))
        rows.append(layer_figures(n, o, i, acts.cycles, acts, board, table, hw))
    block = token_figures(rows, board, table)
    time_s = block["time_s"] * n_blocks
    return {"prompt_tokens": prompt_tokens, "commands_per_matrix": n_cmd,
            "cycles": block["cycles"] * n_blocks, "weight_bytes": block["weight_bytes"] * n_blocks,
            "compute_s": block["compute_s"] * n_blocks, "memory_s": block["memory_s"] * n_blocks,
            "time_s": time_s, "tokens_per_s": prompt_tokens / time_s, "bound": block["bound"],
            "energy_j": block["energy_j"] * n_blocks,
            "per_matrix": [{k: r[k] for k in ("name", "out", "in", "cycles", "compute_s", "memory_s", "bound",
                                               "weight_bytes")} for r in rows]}
