"""The attention unit's input streams as the host or a memory controller serves them
(hw/ATTENTION.md, "Ports" and "KV stream"), as payload words of its port set
(``tritforge.attentionports``): the query beats of a group of heads and one KV head's
cache in block order."""
from __future__ import annotations

import numpy as np

from ..attentionports import attention_ports
from ..attentionunit import AttentionUnitConfig
from ..ports import by_name


def row_beats(ucfg: AttentionUnitConfig, elems, m: int, e: int) -> list[int]:
    """One row (a head's vector) as ``beats`` words of ``lanes`` int8 elements, each
    carrying the row's step."""
    port = by_name(attention_ports(ucfg))["kv"]
    L = ucfg.lanes
    elems = np.asarray(elems).reshape(-1)
    return [port.pack({"elems": elems[b * L:(b + 1) * L], "m": int(m), "e": int(e)}) for b in range(ucfg.beats)]


def q_beats(ucfg: AttentionUnitConfig, q_q, q_m, q_e) -> list[int]:
    """The group's query heads in order: q_q (g, head_dim) int8, steps (g,)."""
    out = []
    for h in range(ucfg.group):
        out += row_beats(ucfg, q_q[h], q_m[h], q_e[h])
    return out


def kv_beats(ucfg: AttentionUnitConfig, k_q, k_m, k_e, v_q, v_m, v_e) -> list[int]:
    """One KV head's cache over its keys (rows 0..N-1 of each array): per block of
    ``AttentionConfig.block`` keys its K rows, then its V rows."""
    keys, blk = len(k_q), ucfg.attention.block
    out = []
    for j0 in range(0, keys, blk):
        js = range(j0, min(j0 + blk, keys))
        for j in js:
            out += row_beats(ucfg, k_q[j], k_m[j], k_e[j])
        for j in js:
            out += row_beats(ucfg, v_q[j], v_m[j], v_e[j])
    return out


def cache_beats(ucfg: AttentionUnitConfig, cache, head: int, keys: int) -> list[int]:
    """``kv_beats`` of KV head ``head`` of a ``codec.intattention.IntKVCache``, keys 0..keys-1."""
    c, h = cache, head
    return kv_beats(ucfg, c.k_q[:keys, h], c.k_m[:keys, h], c.k_e[:keys, h],
                    c.v_q[:keys, h], c.v_m[:keys, h], c.v_e[:keys, h])
