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

#: hw.fixedops.bitlen_staged: per chunk, then the highest nonzero chunk
BITLEN_STAGES = 2

#: Int8Quantizer, between a vector's last input beat and the cycle that offers the
#: divider its numerator: the last |v| folded into mu, mu floored at 1, its bit length,
#: K and the numerator 127 · 2^K
INT8Q_PREP_CYCLES = 1 + 1 + BITLEN_STAGES + 1
#: Int8Quantizer's output pass: the buffer read (the block RAM's address and output
#: registers), v · R, the staged rounding shift by K, the rounding add, the clamp
INT8Q_OUT_STAGES = 2 + MUL_STAGES + SHIFT_STAGES + 1 + 1
