"""The whole-layer hardware path: decoder layers, final norm and lm_head through the
integer contract of the vector and attention units (docs/NUMERIC.md, "Attention and
vector units") and the GEMV engine's cycle model.

:func:`patch_layers` replaces, in a model whose Linears are already
:class:`~.hwlinear.HwLinear` (``sim.patching.patch_model``),

* every decoder layer by a :class:`HwDecoderLayer`,
* the final norm by a :class:`HwFinalNorm`,
* ``lm_head`` by a :class:`HwHead`.

In the recorder's ``"layer"`` mode these compute in integers; in every other mode
(``"hw"``, ``"dequant"``, ``"source"``) they call the stock modules, so one patched
model gives all the paths the driver compares.

One decoder layer in ``"layer"`` mode, token vectors h (T, hidden) of the residual
stream (integers with FR fraction bits, carried between layers as exact float64 values
h · 2^-FR; the first layer rounds the embedding rows to that format, as the host's
offline conversion of the embedding table would):

1. input RMSNorm -> int8 x_q and its step (``codec/intnorm.rmsnorm_int8``);
2. q, k, v projections on the engine (``HwLinear.accumulate``), requantized to FR
   fraction bits (``codec/fixedpoint.requantize``: step × the codebook's host_scale as a
   B-bit multiplier) plus the bias in fixed point (Qwen2);
3. RoPE on q and k (``codec/introtary.py``, tables from the model's ``inv_freq``);
4. k, v appended to the layer's int8 KV cache, attention with online softmax
   (``codec/intattention.py``);
5. int8 quantization of the attention output, o_proj, residual add (saturating);
6. post-attention RMSNorm, gate and up projections, SiLU·mul (``codec/intact.py``),
   int8 quantization, down projection, residual add.

The final norm passes the residual through; ``HwHead`` applies the integer RMSNorm and
then ``lm_head`` by the AccelConfig's choice (int8 datapath, ternary engine, or host
FP16). The logits leave as floats: only sampling stays on the host.

KV cache: each HwDecoderLayer keeps its own :class:`~tritforge.codec.intattention.IntKVCache`.
A call whose first position is 0 starts a new sequence (clears the cache); any other call
must continue exactly where the cache ends (decode steps, or a prompt continued). The
driver passes ``position_ids`` explicitly and ``use_cache=False`` in this mode, so the
stock model's own cache is not involved. Batch size 1 only.
"""
from __future__ import annotations

import collections

import numpy as np
import torch
from torch import nn

from ..accelconfig import AccelConfig
from ..codec import golden
from ..codec.fixedpoint import (acc_preshift, quantize_int8, requantize, saturate,
                                scale_mul, to_multiplier)
from ..codec.intact import silu_mul
from ..codec.intattention import IntKVCache, attend, int8_head, quantize_rows_int8
from ..codec.intnorm import IntNormWeights, rmsnorm_int8
from ..codec.introtary import apply_rope, rope_tables
from ..codec.quantize import quantize_matrix
from ..errors import TritforgeError
from .hwlinear import HwLinear, HwRecorder

ROPE_TYPES = ("default", "linear", "llama3")
#: the input residuals a layer keeps for the RTL layer check (the longest prefill command
#: ``run --rtl-prefill`` replays)
RECENT_INPUTS = 16


def check_supported(model, accel: AccelConfig) -> None:
    """One-line TritforgeError for a model whose layers the integer units do not cover."""
    c = model.config
    arch = getattr(c, "model_type", None)
    if arch not in ("llama", "qwen2"):
        raise TritforgeError(f"whole-layer hardware path: architecture {arch!r} is not covered "
                             "(expected llama or qwen2)")
    types = set(getattr(c, "layer_types", None) or [])
    if getattr(c, "use_sliding_window", False) or types - {"full_attention"}:
        raise TritforgeError(f"whole-layer hardware path: {arch} with sliding-window attention is not "
                             "covered (the attention unit computes full causal attention)")
    if getattr(c, "hidden_act", "silu") != "silu":
        raise TritforgeError(f"whole-layer hardware path: {arch} with activation {c.hidden_act!r} "
                             "is not covered (expected silu)")
    rope = getattr(model.model.rotary_emb, "rope_type", "default")
    if rope not in ROPE_TYPES:
        raise TritforgeError(f"whole-layer hardware path: {arch} with rope_type {rope!r} is not "
                             f"covered (expected one of {ROPE_TYPES})")
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if hd > accel.attention.max_head_dim:
        raise TritforgeError(f"whole-layer hardware path: head_dim {hd} exceeds the attention "
                             f"unit's max_head_dim={accel.attention.max_head_dim}")
    if c.num_attention_heads % c.num_key_value_heads:
        raise TritforgeError(f"whole-layer hardware path: {c.num_attention_heads} query heads "
                             f"over {c.num_key_value_heads} KV heads")


class _Gemv:
    """One HwLinear with its requantization constants (host, offline)."""

    def __init__(self, lin: HwLinear, accel: AccelConfig):
        if not isinstance(lin, HwLinear):
            raise TritforgeError(f"whole-layer hardware path: expected an HwLinear, found "
                                 f"{type(lin).__name__}")
        v = accel.vector
        self.lin = lin
        self.bits = v.scale_bits
        self.hm, self.he = to_multiplier(lin.t.codebook.host_scale, v.scale_bits)
        t = lin.t
        bound = golden.widths(t.depth, t.in_padded, t.codebook.mant_bits, t.codebook.shift_limit).bound
        self.a = acc_preshift(bound, v.scale_bits)
        self.frac, self.width = v.resid_frac_bits, v.resid_bits
        self.bias = None if lin.bias is None else \
            np.rint(lin.bias.detach().double().numpy() * 2.0 ** v.resid_frac_bits).astype(np.int64)

    def __call__(self, xq, m, e) -> np.ndarray:
        A = self.lin.accumulate(xq)
        cm, ce = scale_mul(m, e, self.hm, self.he, self.bits)
        y = requantize(A, self.a, cm[:, None], ce[:, None], self.frac, self.width)
        if self.bias is not None:
            y = saturate(y + self.bias, self.width)
        return y


class HwDecoderLayer(nn.Module):
    """A decoder layer computed by the integer units in ``"layer"`` mode, by the stock
    layer otherwise. The stock layer's submodules are registered under their own names
    (``self_attn.q_proj``, ...), so the model's module names do not change."""

    def __init__(self, layer: nn.Module, index: int, model, recorder: HwRecorder, accel: AccelConfig):
        super().__init__()
        self.__dict__["_stock"] = layer
        self.self_attn, self.mlp = layer.self_attn, layer.mlp
        self.input_layernorm = layer.input_layernorm
        self.post_attention_layernorm = layer.post_attention_layernorm
        if hasattr(layer, "attention_type"):
            self.attention_type = layer.attention_type
        c = model.config
        self.index, self.recorder, self.accel = index, recorder, accel
        v = accel.vector
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.hidden = c.hidden_size
        a = layer.self_attn
        self.q, self.k, self.v, self.o = (_Gemv(p, accel) for p in (a.q_proj, a.k_proj, a.v_proj, a.o_proj))
        m = layer.mlp
        self.gate, self.up, self.down = (_Gemv(p, accel) for p in (m.gate_proj, m.up_proj, m.down_proj))
        self.norm1 = IntNormWeights.from_float(layer.input_layernorm.weight.detach().double().numpy(),
                                               layer.input_layernorm.variance_epsilon,
                                               v.resid_frac_bits, v.gamma_bits)
        self.norm2 = IntNormWeights.from_float(layer.post_attention_layernorm.weight.detach().double().numpy(),
                                               layer.post_attention_layernorm.variance_epsilon,
                                               v.resid_frac_bits, v.gamma_bits)
        rot = model.model.rotary_emb
        self.inv_freq = rot.inv_freq.detach().double().numpy()
        self.rope_scaling = float(rot.attention_scaling)
        self.cache = IntKVCache(self.kv_heads, self.head_dim, accel.attention, v)
        #: the last tokens' input residuals and positions, oldest first (the RTL layer check
        #: replays the last one as a decode token, the last T as a prefill command)
        self.recent_inputs = collections.deque(maxlen=RECENT_INPUTS)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, position_embeddings=None, **kwargs):
        if self.recorder.mode != "layer":
            return self._stock(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                               past_key_values=past_key_values, use_cache=use_cache,
                               position_embeddings=position_embeddings, **kwargs)
        if hidden_states.shape[0] != 1:
            raise TritforgeError(f"whole-layer hardware path: batch of {hidden_states.shape[0]} "
                                 "sequences, expected 1")
        T = hidden_states.shape[1]
        if position_ids is None:
            pos = np.arange(len(self.cache), len(self.cache) + T)
        else:
            pos = position_ids.reshape(-1)[-T:].cpu().numpy().astype(np.int64)
        FR = self.accel.vector.resid_frac_bits
        h = np.rint(hidden_states[0].detach().double().cpu().numpy() * 2.0 ** FR).astype(np.int64)
        y = self.compute(h, pos)
        return torch.from_numpy(y.astype(np.float64) * 2.0 ** -FR)[None]

    def compute(self, h: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The integer layer: residual h (T, hidden) at positions pos -> the new residual."""
        acc, v = self.accel.attention, self.accel.vector
        RB, B = v.resid_bits, v.scale_bits
        T = h.shape[0]
        if T and pos[0] == 0:
            self.cache.clear()
        want = np.arange(len(self.cache), len(self.cache) + T)
        if not np.array_equal(pos, want):
            raise TritforgeError(f"layer {self.index}: positions {pos[0]}..{pos[-1]} do not continue "
                                 f"the KV cache of {len(self.cache)} tokens")
        h = saturate(h, RB)
        if T and pos[0] == 0:
            self.recent_inputs.clear()
        self.recent_inputs.extend((h[t].copy(), int(pos[t])) for t in range(T))
        xq, m, e = rmsnorm_int8(h, self.norm1, v)
        q = self.q(xq, m, e).reshape(T, self.heads, self.head_dim)
        k = self.k(xq, m, e).reshape(T, self.kv_heads, self.head_dim)
        val = self.v(xq, m, e).reshape(T, self.kv_heads, self.head_dim)
        cos_q, sin_q = rope_tables(pos, self.inv_freq, v.rope_frac_bits, self.rope_scaling, acc.max_context)
        q = apply_rope(q, cos_q, sin_q, v.rope_frac_bits, RB - 1)
        k = apply_rope(k, cos_q, sin_q, v.rope_frac_bits, RB - 1)
        q, k = saturate(q, RB), saturate(k, RB)
        self.cache.append(k, val)
        att = attend(q, pos, self.cache, acc, v).reshape(T, self.heads * self.head_dim)
        xq, m, e = quantize_int8(att, B)              # step in units of 2^-FR
        h = saturate(h + self.o(xq, m, e + v.resid_frac_bits), RB)
        xq, m, e = rmsnorm_int8(h, self.norm2, v)
        act = silu_mul(self.gate(xq, m, e), self.up(xq, m, e), v)
        xq, m, e = quantize_int8(act, B)
        return saturate(h + self.down(xq, m, e + v.resid_frac_bits), RB)


class HwFinalNorm(nn.Module):
    """The model's final norm: the stock norm, or in ``"layer"`` mode a pass-through (the
    integer RMSNorm runs in :class:`HwHead`, next to the lm_head it feeds)."""

    def __init__(self, norm: nn.Module, recorder: HwRecorder):
        super().__init__()
        self.norm, self.recorder = norm, recorder

    def forward(self, x):
        return x if self.recorder.mode == "layer" else self.norm(x)


class HwHead(nn.Module):
    """lm_head: the stock one, or in ``"layer"`` mode the integer final RMSNorm and the
    AccelConfig's lm_head placement."""

    def __init__(self, head: nn.Linear, norm: nn.Module, recorder: HwRecorder, accel: AccelConfig,
                 quant_mode: str = "tritllm-v2"):
        super().__init__()
        self.head, self.recorder, self.accel = head, recorder, accel
        v = accel.vector
        self.norm_w = IntNormWeights.from_float(norm.weight.detach().double().numpy(),
                                                norm.variance_epsilon, v.resid_frac_bits, v.gamma_bits)
        w = head.weight.detach()
        self.choice = accel.lm_head
        if self.choice == "int8":
            wq, self.wm, self.we = quantize_rows_int8(w.double().numpy(), v.scale_bits)
            self.wq = wq.astype(np.float32)            # exact: |w_q| <= 127
            self.row_step = self.wm.astype(np.float64) * 2.0 ** -self.we.astype(np.float64)
        elif self.choice == "ternary":
            t = quantize_matrix(w, accel.engine.depth, quant_mode, name="lm_head")
            self.engine = HwLinear("lm_head", t, None, None, recorder)
        else:
            self.w16 = w.half().float()

    def forward(self, x):
        if self.recorder.mode != "layer":
            return self.head(x)
        v = self.accel.vector
        h = np.rint(x.detach().double().cpu().numpy().reshape(-1, x.shape[-1]) * 2.0 ** v.resid_frac_bits)
        xq, m, e = rmsnorm_int8(h.astype(np.int64), self.norm_w, v)
        step = m.astype(np.float64) * 2.0 ** -e.astype(np.float64)     # host: sampling boundary
        if self.choice == "int8":
            logits = int8_head(self.wq, xq.astype(np.float32)).astype(np.float64)
            logits = logits * step[:, None] * self.row_step[None, :]
        elif self.choice == "ternary":
            A = self.engine.accumulate(xq)
            logits = A.astype(np.float64) * step[:, None] * self.engine.t.codebook.host_scale
        else:
            xr = torch.from_numpy(xq.astype(np.float64) * step[:, None]).half().float()
            logits = (xr @ self.w16.T).double().numpy()
        out = torch.from_numpy(logits).float()
        return out.reshape(*x.shape[:-1], out.shape[-1])


def patch_layers(model, recorder: HwRecorder, accel: AccelConfig, quant_mode: str = "tritllm-v2") -> list:
    """Install the whole-layer path in a model whose Linears are HwLinears (in place).

    Returns the HwDecoderLayers. The lm_head engine matrix (``lm_head = "ternary"``) is
    quantized here with ``quant_mode``.
    """
    check_supported(model, accel)
    if accel.engine != recorder.cfg:
        raise TritforgeError("whole-layer hardware path: the AccelConfig's engine differs from the "
                             "recorder's HwConfig")
    layers = model.model.layers
    out = []
    for i in range(len(layers)):
        hw = HwDecoderLayer(layers[i], i, model, recorder, accel)
        layers[i] = hw
        out.append(hw)
    norm = model.model.norm
    model.model.norm = HwFinalNorm(norm, recorder)
    head = model.get_output_embeddings()
    model.lm_head = HwHead(head, norm, recorder, accel, quant_mode)
    return out
