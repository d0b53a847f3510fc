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

then the heads' normalization and output. The last merge starts at m0 = tV + v_latency + 1
and writes head h's l, whose divisor is ready from l_h = m0 + h·(head_dim + 1) +
l_latency (merge_latency + den_stages). Head 0 divides at d = tV + final_wait (= l_0);
its result is taken at d + Q + 1 and its elements are read from x_0 = d + Q + 2, one per
cycle; its last beat is formed at e_0 = x_0 + head_dim + out_latency - 2. Head h > 0
starts its division at s_h = max(x_(h-1), l_h) (during the previous head's output), takes
it from r_h = max(e_(h-1) + 1, s_h + Q + 1) and reads from x_h = r_h + 1 (a division not
started by e_(h-1) starts at e_(h-1) + 1 instead). The job's last beat is on ``out`` at
e_(g-1) + 1.
"""
from __future__ import annotations

from ..attentionunit import AttentionUnitConfig


def job_cycles(ucfg: AttentionUnitConfig, keys: int) -> int:
    """Cycles of one job of ``keys`` >= 1 keys, from the one after the command's acceptance
    to the last output beat, inclusive (closed form above)."""
    g, B, blk, hd = ucfg.group, ucfg.beats, ucfg.attention.block, ucfg.head_dim
    Q = ucfg.quotient_bits
    k0, tv = g * B + 1, None
    for j0 in range(0, keys, blk):
        rows = min(blk, keys - j0) * B
        tk = k0 + rows - 1
        s = tk + ucfg.k_drain if tv is None else max(tk + ucfg.k_drain, tv + ucfg.merge_wait)
        tv = s + ucfg.soft_cycles + rows - 1
        k0 = tv + 1
    m0 = tv + ucfg.v_latency + 1
    x = tv + ucfg.final_wait + Q + 2
    e = x + hd + ucfg.out_latency - 2
    for h in range(1, g):
        s = max(x, m0 + h * (hd + 1) + ucfg.l_latency)
        if s > e:
            s = e + 1
        x = max(e + 1, s + Q + 1) + 1
        e = x + hd + ucfg.out_latency - 2
    return e + 1
