"""Closed forms: cycles, actions and bytes of the attention unit and the vector unit per token.

The GEMV engine's cycles come from ``sim.fastmodel`` (exact). These are the estimator's
planning forms of the attention unit and the vector unit of docs/NUMERIC.md ("Attention
and vector units"): units sized to the array (``UnitsConfig.for_array``), running beside
the engine and overlapping it. The units as hw/ builds them — one attention unit of a
given ``lanes``, one element per cycle through each vector unit, the phases of a layer one
after another — have their own exact closed forms (sim/attentioncycles.py,
sim/vectorcycles.py, sim/layercycles.py), which the RTL meets cycle for cycle and which
``run`` prints beside the estimator's figures (its ``layer top`` line). The parallelism
here is ``UnitsConfig`` (a frozen dataclass of this module: ``AccelConfig`` has the units'
number formats but not their lanes).

Symbols: Hq query heads, Hkv KV heads, g = Hq / Hkv, hd head_dim, H hidden, I intermediate,
V vocabulary, N the context: the KV cache holds N tokens, the new token's own k and v
among them (written first, then streamed back with the others), so the token attends to
keys = max(N, 1) keys and N rows are read; block = ``AttentionConfig.block``.

Every function returns a ``UnitWork``: cycles at the unit's clock (the engine's), unit
action counts (priced by the energy table's [units] rows, ``sim.energy.UNIT_ACTIONS``) and
the bytes it reads from and writes to off-chip memory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..accelconfig import AttentionConfig
from ..errors import TritforgeError
from ..vectorports import EXP_BITS


def _ceil(a, b) -> int:
    return -(-int(a) // int(b))


@dataclass(frozen=True)
class UnitsConfig:
    """Parallelism of the planned attention and vector units (tritforge choices for the
    estimator, not measured builds; a built unit's parameters are its own config object,
    e.g. ``AttentionUnitConfig``)."""

    attn_lanes: int = 256      #: int8 x int8 MACs per cycle (q.K^T, p.V, the int8 lm_head)
    exp_units: int = 8         #: 2^x evaluations per cycle (LUT reads)
    recip_cycles: int = 4      #: cycles of one reciprocal 1/l (normalization), not pipelined
    block_latency: int = 8     #: pipeline fill of one online-softmax block (max, exp, rescale)
    vec_lanes: int = 32        #: vector-unit elements per cycle
    op_latency: int = 4        #: pipeline fill of one vector operation
    rsqrt_cycles: int = 6      #: 1/sqrt: LUT read, Newton step (3 multiplies), normalize

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 16:
                raise TritforgeError(f"UnitsConfig {f.name}={v!r}: expected an integer in 1..65536")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_array(cls, engine_rows: int) -> "UnitsConfig":
        """The units sized to an engine array of ``engine_rows`` rows (all engines): as many
        int8 MAC lanes as the array has weight lanes (rows x 16), one 2^x unit per 32 lanes,
        one vector lane per 8 MAC lanes (at least 16). A tritforge choice: the attention unit
        then keeps pace with the engine on the same memory bus."""
        lanes = max(16, engine_rows * 16)
        return cls(attn_lanes=lanes, exp_units=max(1, lanes // 32), vec_lanes=max(16, lanes // 8))


DEFAULT_UNITS = UnitsConfig()


@dataclass
class UnitWork:
    cycles: int = 0
    actions: dict = field(default_factory=dict)   #: UNIT_ACTIONS name -> count
    read_bytes: int = 0
    write_bytes: int = 0
    write_batches: int = 0

    def __add__(self, other: "UnitWork") -> "UnitWork":
        acts = dict(self.actions)
        for k, v in other.actions.items():
            acts[k] = acts.get(k, 0) + v
        return UnitWork(self.cycles + other.cycles, acts, self.read_bytes + other.read_bytes,
                        self.write_bytes + other.write_bytes, self.write_batches + other.write_batches)

    def scaled(self, n: int) -> "UnitWork":
        return UnitWork(self.cycles * n, {k: v * n for k, v in self.actions.items()}, self.read_bytes * n,
                        self.write_bytes * n, self.write_batches * n)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def scale_bytes(att: AttentionConfig) -> int:
    """Bytes of one stored dynamic scale (m, e): a ``scale_bits`` mantissa and an
    ``EXP_BITS`` signed exponent (``tritforge.vectorports``), rounded up to whole bytes: 3
    at the default B = 16."""
    return _ceil(att.scale_bits + EXP_BITS, 8)


def kv_row_bytes(shape: dict, att: AttentionConfig) -> int:
    """Bytes of one token's K and V in one layer: 2 x Hkv x (hd int8 + one scale)."""
    return 2 * shape["num_key_value_heads"] * (shape["head_dim"] + scale_bytes(att))


def attention_decode(shape: dict, context: int, att: AttentionConfig, units: UnitsConfig) -> UnitWork:
    """One layer's attention for one decode token at ``context`` = N tokens in the cache.

    Assumptions (a planning model; the built unit's exact cycles: sim/attentioncycles.py):
    * The new token's k and v are written once (2 Hkv (hd + scale) bytes, one write batch);
      then the N rows of K and V (int8, one scale per token and KV head) stream from
      off-chip memory once per layer: each K row of KV head h serves its g query heads
      (grouped-query attention), so reads are 2 Hkv N (hd + scale bytes) bytes.
    * q.K^T and p.V share ``attn_lanes`` int8 MAC lanes: ceil(Hq keys hd / lanes) cycles
      each (the lanes take any (head, key, element) order; no padding per head).
    * 2^x runs in ``exp_units`` pipelined units beside the MACs: Hq keys evaluations, of
      which only the excess over the q.K^T cycles shows.
    * Online softmax over ceil(keys / block) blocks: per block and query head the running
      o (hd elements) is rescaled on the MAC lanes, ceil(Hq blocks hd / lanes) cycles, plus
      ``block_latency`` cycles of pipeline fill per block (blocks follow each other).
    * Normalization: one reciprocal per query head (``recip_cycles`` each, sequential) and
      ceil(Hq hd / lanes) multiply cycles.
    """
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise TritforgeError(f"context={context!r}: expected an integer >= 0")
    hq, hd = shape["num_attention_heads"], shape["head_dim"]
    keys = max(context, 1)
    lanes = units.attn_lanes
    macs = hq * keys * hd
    blocks = _ceil(keys, att.block)
    exps = hq * keys
    qk, pv = _ceil(macs, lanes), _ceil(macs, lanes)
    rescale = _ceil(hq * blocks * hd, lanes)
    norm = hq * units.recip_cycles + _ceil(hq * hd, lanes)
    cycles = qk + pv + max(0, _ceil(exps, units.exp_units) - qk) + rescale + blocks * units.block_latency + norm
    row = kv_row_bytes(shape, att)
    actions = {"qk_mac": macs, "pv_mac": macs, "unit_acc_add": 2 * macs + exps, "exp_lut": exps,
               "vec_mul": exps + hq * blocks * hd + hq * hd, "unit_sram_bits": 8 * row * context}
    reads = row * context
    actions["kv_read_bytes"] = reads
    actions["kv_write_bytes"] = row
    return UnitWork(cycles, actions, read_bytes=reads, write_bytes=row, write_batches=1)


def attention_prefill(shape: dict, prompt: int, vectors: int, att: AttentionConfig,
                      units: UnitsConfig) -> UnitWork:
    """One layer's causal attention for a prompt of P tokens, T = ``vectors`` queries per pass.

    Assumptions: queries go in passes of T tokens; each pass streams the K/V rows of every
    token up to its last query once (ceil(P / T) passes, pass j reads min(jT, P) rows) and
    writes its T new rows in one batch; the MAC lanes compute the P(P+1)/2 (query, key)
    pairs of every head (causal mask: no work on masked keys), the rest as in
    ``attention_decode`` per query.
    """
    if prompt < 1:
        raise TritforgeError(f"prompt={prompt!r}: expected >= 1 token")
    hq, hd = shape["num_attention_heads"], shape["head_dim"]
    pairs = prompt * (prompt + 1) // 2
    lanes = units.attn_lanes
    macs = hq * pairs * hd
    exps = hq * pairs
    blocks = sum(_ceil(i + 1, att.block) for i in range(prompt))
    qk = _ceil(macs, lanes)
    cycles = (2 * qk + max(0, _ceil(exps, units.exp_units) - qk) + _ceil(hq * blocks * hd, lanes)
              + blocks * units.block_latency + prompt * (hq * units.recip_cycles + _ceil(hq * hd, lanes)))
    row = kv_row_bytes(shape, att)
    passes = _ceil(prompt, vectors)
    rows_read = sum(min(j * vectors, prompt) for j in range(1, passes + 1))
    reads = row * rows_read
    actions = {"qk_mac": macs, "pv_mac": macs, "unit_acc_add": 2 * macs + exps, "exp_lut": exps,
               "vec_mul": exps + hq * blocks * hd + prompt * hq * hd, "unit_sram_bits": 8 * reads,
               "kv_read_bytes": reads, "kv_write_bytes": row * prompt}
    return UnitWork(cycles, actions, read_bytes=reads, write_bytes=row * prompt, write_batches=passes)


def _op(elements: int, units: UnitsConfig, extra: int = 0) -> int:
    return _ceil(elements, units.vec_lanes) + units.op_latency + extra


def vector_ops(shape: dict, units: UnitsConfig) -> list[tuple[str, int, dict]]:
    """The vector unit's operations of one layer for one token, in order: (name, cycles,
    actions). ``vector_layer`` sums them; ``sim.estimate`` places them between the engine's
    matrices (the schedule).

    Assumptions: every operation streams its elements through ``vec_lanes`` lanes plus
    ``op_latency`` cycles of fill, one after the other (an operation waits for its input
    vector); RMSNorm is two passes (sum of squares, then scale and quantize: the scale needs
    the 1/sqrt of the whole sum, ``rsqrt_cycles``); every int8 quantization is a max-abs
    pass and a multiply pass (the step is known only after the max); each engine output
    element is rescaled by one multiply (docs/NUMERIC.md, "Linear layers inside a layer")
    and Qwen2's q/k/v biases are one add each.
    """
    H, I = shape["hidden_size"], shape["intermediate_size"]
    hq, hkv, hd = shape["num_attention_heads"], shape["num_key_value_heads"], shape["head_dim"]
    qkv = (hq + 2 * hkv) * hd
    rope = (hq + hkv) * hd
    bias = qkv if shape.get("model_type") == "qwen2" else 0

    def norm(n):
        return (_op(n, units) + units.rsqrt_cycles + 2 * _op(n, units),
                {"vec_mul": 3 * n, "vec_add": 2 * n, "vec_lut": 1})

    def quant(n):
        return 2 * _op(n, units), {"vec_add": n, "vec_mul": n}

    ops = []
    c, a = norm(H)
    ops.append(("rmsnorm (attention input)", c, a))
    ops.append(("rescale q, k, v" + (" + bias" if bias else ""), _op(qkv, units),
                {"vec_mul": qkv, "vec_add": bias}))
    ops.append(("rope q, k", _op(rope, units), {"vec_mul": 2 * rope, "vec_add": rope, "vec_lut": rope}))
    c, a = quant(qkv)
    ops.append(("quantize q, k, v (int8)", c, a))
    c, a = quant(hq * hd)
    ops.append(("quantize attention output", c, a))
    ops.append(("rescale o + residual add", _op(H, units), {"vec_mul": H, "vec_add": H}))
    c, a = norm(H)
    ops.append(("rmsnorm (mlp input)", c, a))
    ops.append(("rescale gate, up", _op(2 * I, units), {"vec_mul": 2 * I}))
    ops.append(("silu * up", _op(I, units, 2), {"vec_lut": I, "vec_mul": 3 * I, "vec_add": I}))
    c, a = quant(I)
    ops.append(("quantize silu * up", c, a))
    ops.append(("rescale down + residual add", _op(H, units), {"vec_mul": H, "vec_add": H}))
    return ops


def _sum(ops) -> UnitWork:
    w = UnitWork()
    for _, c, a in ops:
        w = w + UnitWork(c, dict(a))
    return w


def vector_layer(shape: dict, units: UnitsConfig) -> UnitWork:
    """The vector unit's work of one layer for one token (``vector_ops`` summed)."""
    return _sum(vector_ops(shape, units))


def vector_final(shape: dict, units: UnitsConfig, embedding_bytes: int = 2) -> UnitWork:
    """Once per token: the embedding row read (H elements of ``embedding_bytes``; fp16 by
    default) and the final RMSNorm with its int8 quantization for the lm_head."""
    H = shape["hidden_size"]
    c = _op(H, units) + units.rsqrt_cycles + 2 * _op(H, units)
    return UnitWork(c, {"vec_mul": 3 * H, "vec_add": 2 * H, "vec_lut": 1, "other_read_bytes": H * embedding_bytes},
                    read_bytes=H * embedding_bytes)


def lm_head_int8(shape: dict, att: AttentionConfig, units: UnitsConfig) -> UnitWork:
    """The int8 lm_head on the attention unit's MAC lanes (AccelConfig.lm_head = "int8").

    Assumptions: V x H int8 weights and one stored scale per row stream from off-chip memory
    (V H + V scale bytes); ceil(V H / attn_lanes) cycles; each row's int32 sum is one add
    per MAC; the V logits (int32, 4 bytes each) leave the chip to the host for sampling.
    """
    H, V = shape["hidden_size"], shape["vocab_size"]
    macs = V * H
    wbytes = V * H + V * scale_bytes(att)
    return UnitWork(_ceil(macs, units.attn_lanes),
                    {"lm_head_mac": macs, "unit_acc_add": macs, "lm_head_bytes": wbytes, "out_write_bytes": 4 * V},
                    read_bytes=wbytes, write_bytes=4 * V, write_batches=1)


def context_limit(shape: dict, att: AttentionConfig) -> int:
    """The longest context: the model's ``max_position_embeddings`` (the RoPE table and the KV
    cache are sized for it), else the attention unit's ``max_context``."""
    return int(shape.get("max_position_embeddings") or att.max_context)


def check_context(shape: dict, context, att: AttentionConfig, what: str = "context") -> int:
    """Refuse a context the model does not admit; return the limit."""
    limit = context_limit(shape, att)
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise TritforgeError(f"{what} {context!r}: expected an integer >= 0")
    if context > limit:
        raise TritforgeError(f"{what} {context}: longer than the model's maximum; expected 0..{limit} "
                             f"(max_position_embeddings of {shape.get('_name', 'the model')})")
    return limit
