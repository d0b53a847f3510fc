"""The vector unit's pipeline depths (hw/VECTOR.md "Timing"), each defined once.

The RTL (hw/multiplier.WideMultiplier, hw/fixedops' staged operators, the units in hw/)
builds exactly these many registers, the closed forms (sim/vectorcycles.py) and the
stepping models (sim/vectorstep.py) count with them; plain Python, so the models read it
without importing the RTL. What each stage holds is in the components' docstrings.
"""
from __future__ import annotations

#: hw.multiplier.WideMultiplier: the 18 x 18 tiles' input, product and output registers,
#: then MUL_SUM_LEVELS registered levels of the partial products' adder tree (up to
#: 2^MUL_SUM_LEVELS tiles; a product of fewer tiles passes the spare levels as registers)
MUL_TILE_STAGES = 3
MUL_SUM_LEVELS = 3
MUL_STAGES = MUL_TILE_STAGES + MUL_SUM_LEVELS

#: hw.fixedops.staged_rshift: a variable right shift, the amount's bits split over this
#: many registered mux stages (most significant first)
SHIFT_STAGES = 3

#: Requantize: the pre-shift (the staged shift of 2A, the rounding add), A' · m, the output
#: shift (staged; its overflow test beside it), the rounding add, the saturation
REQUANT_STAGES = SHIFT_STAGES + 1 + MUL_STAGES + SHIFT_STAGES + 1 + 1
#: Requantize with the residual: res + y, then its saturation
REQUANT_RESIDUAL_STAGES = 2


def requant_stages(residual: bool) -> int:
    return REQUANT_STAGES + REQUANT_RESIDUAL_STAGES * int(residual)

#: SiluMul: |g|, the table index, the ROMs, the interpolation's product, its rounding,
#: sigma, g · sigma, silu, silu · u, its rounding, the saturation
SILU_STAGES = 3 + MUL_STAGES + 2 + MUL_STAGES + 1 + MUL_STAGES + 2

#: Rope: the four products, the difference and the sum, their rounding shifts, the
#: saturations
ROPE_STAGES = MUL_STAGES + 3

#: hw.elementpipe.CreditFifo: the output FIFO of a credit pipeline (a free-running register
#: chain whose last stage is the FIFO's entry, issuing while it holds a credit); an element
#: holds its credit from its issue to the cycle after it is taken, stages + 1 cycles at full
#: rate, so a pipeline of up to CREDIT_FIFO_DEPTH - 1 stages runs at one element per cycle
CREDIT_FIFO_DEPTH = 16

#: hw.vecmem.VectorMemory: a reader's block RAM address register and its output register
#: (hw.actbuffer.ActivationBuffer without fabric registers)
VECMEM_READ_LATENCY = 2

#: hw.fixedops.bitlen_staged: per chunk, then the highest nonzero chunk
BITLEN_STAGES = 2

#: Int8Quantizer, between a vector's last input beat and the cycle that offers the
#: divider its numerator: the last |v| folded into the running OR (bitlen(max(mu, 1))),
#: its bit length, the numerator's first shift, K and the numerator 127 · 2^K
INT8Q_PREP_CYCLES = 1 + BITLEN_STAGES + 1 + 1
#: Int8Quantizer's output pass, a credit pipeline: the buffer read (the block RAM's address
#: and output registers), v · R, the staged rounding shift by K, the rounding add, the clamp
#: (written into the output FIFO, whose entry is the last stage)
INT8Q_OUT_STAGES = 2 + MUL_STAGES + SHIFT_STAGES + 1 + 1

#: Rsqrt's normalization: the bit length of ss (BITLEN_STAGES), w = (bitlen - 1) // 2 and
#: E = RB + w, then mf = (ss << RB) >> 2w (the staged shift)
RSQRT_NORM_STAGES = BITLEN_STAGES + 1 + SHIFT_STAGES
#: Rsqrt's seed: the LUT's synchronous read
RSQRT_SEED_STAGES = 1
#: one Newton step: y², mf · y² (a WideMultiplier each), t = rshift_round(mf y², 2RB),
#: 3 · 2^RB - t, y · that (a WideMultiplier), the rounding shift
RSQRT_NEWTON_STAGES = 3 * MUL_STAGES + 3


def rsqrt_latency(newton: int) -> int:
    """Rsqrt's registers with ``newton`` Newton steps (an ss accepted in cycle t is on its
    output in cycle t + this)."""
    return RSQRT_NORM_STAGES + RSQRT_SEED_STAGES + RSQRT_NEWTON_STAGES * newton

#: RmsNorm, from the cycle after a vector's last input beat to the scan's first read: the
#: last beat's |h| folded into max |h|, its bit length, p (and the vector's ``k`` beat)
RMS_PREP_CYCLES = 1 + BITLEN_STAGES + 1
#: RmsNorm's scan: the buffer reads (the block RAMs' address and output registers), the
#: staged pre-shift of 2h by p and its rounding add, hs² and g_q · hs (WideMultipliers)
RMS_SCAN_STAGES = 2 + SHIFT_STAGES + 1 + MUL_STAGES
#: RmsNorm, from the cycle the last u is taken to the one ss is offered to the Rsqrt: the
#: last beat's square added to the sum, then eps' (and ss >= 1)
RMS_SS_CYCLES = 2
#: RmsNorm's step, a credit pipeline: m_u · y (a WideMultiplier), its bit length, k =
#: bitlen - B, the staged shift by k (e = e_u + E + GF - k beside it; its last stage written
#: into the output FIFO)
RMS_STEP_STAGES = MUL_STAGES + BITLEN_STAGES + 1 + SHIFT_STAGES
