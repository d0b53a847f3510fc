"""Cycles of the attention unit (hw/attention.py, hw/ATTENTION.md "Timing"): the closed form
that the RTL meets exactly with every stream always valid and ready, and that the
whole-token estimator uses.

One job is one query token, one KV head and its group of g query heads over N keys, with
B = head_dim / lanes beats per row, blocks of ``AttentionConfig.block`` keys and a divider
of Q = 2 recip_bits + 1 quotient bits; the stage counts are ``AttentionUnitConfig``'s
(``k_drain``, ``soft_cycles``, ``merge_wait``, ``final_wait``, ``out_latency``). Counted
from the command's acceptance c: the query heads take cycles c+1 .. c+g·B; then per block
of b keys

    K rows          from k0, b·B cycles (the last one tK)
    SOFT            from s = max(tK + k_drain, tV' + merge_wait), tV' the previous
                    block's last V beat (its merge must be done), soft_cycles long
    V rows          from s + soft_cycles, b·B cycles (the last one tV); the next block's
                    K rows from tV + 1

then the first DIVIDE at tV + final_wait and per head ``head_cycles``: DIVIDE (1), the
divider (Q + 1), head_dim element reads one per cycle, the head's last beat formed
out_latency - 1 cycles after its last read; the next head's DIVIDE then, and the job's
last beat on ``out`` one cycle later.
"""
from __future__ import annotations

from ..attentionunit import AttentionUnitConfig


def job_cycles(ucfg: AttentionUnitConfig, keys: int) -> int:
    """Cycles of one job of ``keys`` >= 1 keys, from the one after the command's acceptance
    to the last output beat, inclusive (closed form above)."""
    g, B, blk = ucfg.group, ucfg.beats, ucfg.attention.block
    k0, tv = g * B + 1, None
    for j0 in range(0, keys, blk):
        rows = min(blk, keys - j0) * B
        tk = k0 + rows - 1
        s = tk + ucfg.k_drain if tv is None else max(tk + ucfg.k_drain, tv + ucfg.merge_wait)
        tv = s + ucfg.soft_cycles + rows - 1
        k0 = tv + 1
    return tv + ucfg.final_wait + g * ucfg.head_cycles
