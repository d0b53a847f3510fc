"""Cycles of the attention unit (hw/attention.py, hw/ATTENTION.md "Timing"): the closed form
that the RTL meets exactly with every stream always valid and ready, and that the
whole-token estimator uses.

One job is one query token, one KV head and its group of g query heads over N keys, with
B = head_dim / lanes beats per row, blocks of ``AttentionConfig.block`` keys and a divider
of Q = 2 recip_bits + 1 quotient bits. Counted from the cycle after the command is accepted
to the job's last output beat, inclusive:

    g·B                      the query heads (one beat per cycle)
  + Σ_blocks (2·b·B + 3)     a block of b keys: its K rows, two cycles of pipeline
                             (dot products, then logits), one cycle of softmax
                             bookkeeping (running max, correction, l), its V rows
  + 1                        the last V beat's accumulation
  + g·(Q + B + 2)            per head: the divider's start, its Q steps and the result,
                             then the head's output beats
"""
from __future__ import annotations

from ..attentionunit import AttentionUnitConfig


def job_cycles(ucfg: AttentionUnitConfig, keys: int) -> int:
    """Cycles of one job of ``keys`` >= 1 keys (closed form above)."""
    g, B, blk = ucfg.group, ucfg.beats, ucfg.attention.block
    blocks = -(-keys // blk)
    return g * B + 2 * keys * B + 3 * blocks + 1 + g * (ucfg.quotient_bits + B + 2)

