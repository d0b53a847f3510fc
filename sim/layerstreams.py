"""The decoder-layer top's streams for one decode token, as the host and the board's memory
serve them (hw/LAYER.md), and the outputs the integer contract says it must give.

``layer_case(lcfg, layer, h, pos)`` takes a ``sim.hwlayer.HwDecoderLayer`` whose KV cache
holds positions 0..pos-1, runs the golden layer for the build's T tokens at pos..pos+T-1
(h: T × hidden; which appends their K and V rows to the cache) and returns the layer
top's input streams as payload words of its port set (``tritforge.layerports``) with the
expected ``h_out`` elements and ``kv_wr`` beats. Streams that carry a token's vectors
carry them token by token; the weights, codebooks and norms' weights come once. The
``norm`` stream comes from the layer's two ``IntNormWeights`` (``layer.norm1``,
``layer.norm2``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec import layout
from ..codec.introtary import rope_tables
from ..errors import TritforgeError
from ..layerconfig import LayerConfig
from ..layerports import layer_ports
from ..ports import by_name
from .attentionstreams import cache_beats, row_beats


@dataclass
class LayerCase:
    inputs: dict          #: port name -> payload words
    h_out: np.ndarray     #: the new residual, token by token (T · hidden,)
    kv_wr: list           #: the new K/V rows' beats, per token and KV head K then V


def _gemvs(layer) -> dict:
    return {"q": layer.q, "k": layer.k, "v": layer.v, "o": layer.o, "gate": layer.gate,
            "up": layer.up, "down": layer.down}


def norm_beats(port, weights) -> list:
    """One RMSNorm's beats on the ``norm`` port: g_q[i] on beat i, gamma_frac and eps_q on
    the first (checked against the fields' widths)."""
    f = {x.name: x for x in port.fields}
    lo_gf, hi_gf = -(1 << (f["gamma_frac"].width - 1)), (1 << (f["gamma_frac"].width - 1)) - 1
    if not lo_gf <= weights.gamma_frac <= hi_gf:
        raise TritforgeError(f"RMSNorm gamma_frac {weights.gamma_frac} outside the norm port's {lo_gf}..{hi_gf}")
    if not 0 <= weights.eps_q < 1 << f["eps_q"].width:
        raise TritforgeError(f"RMSNorm eps_q {weights.eps_q} outside the norm port's {f['eps_q'].width} bits")
    first = {"gamma_frac": weights.gamma_frac, "eps_q": weights.eps_q}
    return [port.pack({"g": int(g), **(first if i == 0 else {"gamma_frac": 0, "eps_q": 0})})
            for i, g in enumerate(weights.g_q)]


def layer_case(lcfg: LayerConfig, layer, h, pos: int) -> LayerCase:
    ports = by_name(layer_ports(lcfg))
    e = lcfg.accel.engine
    v = lcfg.accel.vector
    ucfg = lcfg.attention_unit
    T = lcfg.tokens
    h = np.asarray(h, dtype=np.int64).reshape(T, lcfg.hidden)
    positions = np.arange(pos, pos + T)
    y = layer.compute(h, positions).reshape(-1)
    gemv = _gemvs(layer)
    cb, mat, w = [], [], []
    for mt in lcfg.matrices:
        g = gemv[mt.name]
        t = g.lin.t
        cb += [ports["cb"].pack({"index": i, "mantissa": int(t.codebook.mantissa[i]),
                                 "shift": int(t.codebook.left_shift[i])}) for i in range(27)]
        mat.append(ports["mat"].pack({"hm": g.hm, "he": g.he, "a": g.a}))
        beats = layout.stream_beats(t.q, t.k, e.depth, e.rows).reshape(-1, e.beat_bytes)
        w += [int.from_bytes(bytes(b), "little") for b in beats]
    cos_q, sin_q = rope_tables(positions, layer.inv_freq, v.rope_frac_bits, layer.rope_scaling,
                               lcfg.accel.attention.max_context)
    cs = []
    for t in range(T):
        row = [ports["cs"].pack({"c": int(c), "s": int(s)}) for c, s in zip(cos_q[t], sin_q[t])]
        cs += row * (lcfg.heads + lcfg.kv_heads)
    c = layer.cache
    kv_rd, kv_wr = [], []
    for p in positions:
        for j in range(lcfg.kv_heads):
            kv_wr += row_beats(ucfg, c.k_q[p, j], c.k_m[p, j], c.k_e[p, j])
            kv_wr += row_beats(ucfg, c.v_q[p, j], c.v_m[p, j], c.v_e[p, j])
        for j in range(lcfg.kv_heads):
            kv_rd += cache_beats(ucfg, c, j, p + 1)
    inputs = {"cmd": [ports["cmd"].pack({"pos": pos})],
              "h_in": [ports["h_in"].pack({"h": int(x)}) for x in h.reshape(-1)],
              "norm": norm_beats(ports["norm"], layer.norm1) + norm_beats(ports["norm"], layer.norm2),
              "cb": cb, "mat": mat, "w": w, "cs": cs, "kv_rd": kv_rd}
    return LayerCase(inputs, y, kv_wr)
