"""The HwConfig document: the GEMV engine's parameters (``tritforge.hwconfig.HwConfig``),
as a HwConfig JSON, the ``hwconfig`` object of a generate sidecar, or an AccelConfig's
``engine``. It owns every rule on the parameters; ``HwConfig`` checks itself with it."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..codec import layout
from ..codec.codebook import MANT_BITS, SHIFT_LIMIT
from ..codec.golden import ACT_BITS, widths
from .validation import Doc, Int, Num

#: the widest accumulator the engine builds (the host reads it as a signed 64-bit integer)
MAX_ACC_BITS = 63


class HwConfigDoc(Doc):
    depth: Annotated[Int, Field(ge=min(layout.DEPTHS), le=max(layout.DEPTHS))]
    rows: Annotated[Int, Field(ge=1, le=256)]
    vectors: Annotated[Int, Field(ge=1, le=64)]
    group: Literal[layout.GROUP]
    act_bits: Literal[ACT_BITS]
    mant_bits: Literal[MANT_BITS]
    shift_limit: Annotated[Int, Field(ge=0, le=SHIFT_LIMIT)]
    max_in_features: Annotated[Int, Field(ge=layout.GROUP, le=1 << 20, multiple_of=layout.GROUP)]
    max_out_features: Annotated[Int, Field(ge=1, le=1 << 24)]
    clock_mhz: Annotated[Num, Field(gt=0, le=2000)]
    organisation: Literal["lockstep", "array"]
    #: the weight stream the engine takes: "uniform" beats (every group of the matrix at
    #: its depth) or the "variable"-depth column stream behind a word FIFO and a gearbox
    #: (hw/ENGINE.md "Variable-depth stream")
    weight_stream: Literal["uniform", "variable"] = "uniform"
    #: bytes of one memory beat of the variable-depth stream (its ``mem`` port)
    mem_bytes: Annotated[Int, Field(ge=1, le=256)] = 16

    @model_validator(mode="after")
    def _variable(self):
        if self.weight_stream == "variable" and self.organisation != "lockstep":
            raise ValueError("a variable-depth weight stream is built for the lockstep "
                             "organisation only")
        head = layout.var_header_bytes(self.rows)
        if self.weight_stream == "variable" and self.mem_bytes < head:
            raise ValueError(f"mem_bytes={self.mem_bytes}: a variable-depth column's header is "
                             f"{head} bytes at rows={self.rows}; a memory beat must hold one "
                             f"(mem_bytes >= {head})")
        return self

    @model_validator(mode="after")
    def _accumulator(self):
        acc = widths(self.depth, self.max_in_features, self.mant_bits, self.shift_limit).acc
        if acc > MAX_ACC_BITS:
            raise ValueError(f"the accumulator would need {acc} bits (> {MAX_ACC_BITS}); "
                             "lower max_in_features or shift_limit")
        return self
