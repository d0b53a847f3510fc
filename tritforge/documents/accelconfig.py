"""The AccelConfig document: the attention and vector units' contract parameters, the
engine (``HwConfigDoc``) and the lm_head choice (``tritforge.accelconfig``). It owns every
rule on them; the dataclasses check themselves with it."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .hwconfig import HwConfigDoc
from .validation import Doc, Int

LM_HEADS = ("int8", "ternary", "host-fp16")
KV_FORMATS = ("int8",)
KV_SCALES = ("per-token",)
EXP_METHODS = ("lut", "poly2")
RSQRT_METHODS = ("lut-newton",)
SILU_METHODS = ("lut-interp",)


def _int(lo: int, hi: int):
    return Annotated[Int, Field(ge=lo, le=hi)]


class AttentionDoc(Doc):
    max_head_dim: Annotated[Int, Field(ge=2, le=1024, multiple_of=2)]
    max_context: _int(1, 1 << 20)
    kv_format: Literal[KV_FORMATS]
    kv_scale: Literal[KV_SCALES]
    scale_bits: _int(8, 20)
    score_frac_bits: _int(4, 20)
    score_int_bits: _int(4, 16)
    exp_method: Literal[EXP_METHODS]
    exp_lut_bits: _int(1, 16)
    prob_frac_bits: _int(4, 24)
    block: _int(1, 4096)
    pv_frac_bits: _int(0, 20)
    recip_bits: _int(8, 24)

    @model_validator(mode="after")
    def _lut(self):
        if self.exp_lut_bits > self.score_frac_bits:
            raise ValueError(f"exp_lut_bits={self.exp_lut_bits}: expected at most "
                             f"score_frac_bits={self.score_frac_bits}")
        return self


class VectorDoc(Doc):
    resid_bits: _int(16, 40)
    resid_frac_bits: _int(0, 38)
    scale_bits: _int(8, 20)
    norm_in_bits: _int(8, 24)
    rsqrt_method: Literal[RSQRT_METHODS]
    rsqrt_lut_bits: _int(2, 12)
    rsqrt_frac_bits: _int(8, 24)
    rsqrt_newton: _int(0, 3)
    gamma_bits: _int(8, 24)
    rope_frac_bits: _int(4, 24)
    silu_method: Literal[SILU_METHODS]
    silu_lut_bits: _int(2, 14)
    silu_range_log2: _int(1, 6)
    sigmoid_frac_bits: _int(8, 24)

    @model_validator(mode="after")
    def _relations(self):
        if self.resid_frac_bits > self.resid_bits - 2:
            raise ValueError(f"resid_frac_bits={self.resid_frac_bits}: expected at most resid_bits - 2 = "
                             f"{self.resid_bits - 2}")
        if self.silu_range_log2 + self.resid_frac_bits < self.silu_lut_bits:
            raise ValueError(f"silu_lut_bits={self.silu_lut_bits}: expected at most "
                             "silu_range_log2 + resid_frac_bits")
        return self


class AccelDoc(Doc):
    engine: HwConfigDoc
    attention: AttentionDoc
    vector: VectorDoc
    lm_head: Literal[LM_HEADS]
