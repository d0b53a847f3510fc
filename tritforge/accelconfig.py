"""AccelConfig: the frozen parameter objects of the whole accelerator.

``HwConfig`` (``tritforge/hwconfig.py``) parametrizes the ternary GEMV engine. A whole
decoder layer also needs an attention unit and a vector unit; their integer contract is
docs/NUMERIC.md, "Attention and vector units", and the golden reference is
``codec/fixedpoint.py``, ``codec/intnorm.py``, ``codec/introtary.py``,
``codec/intsoftmax.py``, ``codec/intact.py`` and ``codec/intattention.py``. Every
fraction width, LUT size and polynomial choice of that contract is a field here, so the
golden reference, the driver and (later) the RTL take them from one place.

``AccelConfig`` holds the three: ``engine`` (HwConfig), ``attention`` (AttentionConfig),
``vector`` (VectorConfig), plus ``lm_head``, where the output projection runs:

``"int8"``      on the attention unit's int8 datapath (int8 weights with one scale per row,
                int8 activations, int32 accumulators);
``"ternary"``   on the GEMV engine, the lm_head matrix quantized with the codec like the
                other linear layers;
``"host-fp16"`` on the host, weights and activations rounded to FP16.

The defaults are the configuration measured on SmolLM2-135M-Instruct at d = 2
(docs/NUMERIC.md gives its perplexity beside the linear-only path's and a coarser
variant's).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .documents.accelconfig import AccelDoc, AttentionDoc, VectorDoc
from .documents.validation import validate
from .errors import TritforgeError
from .hwconfig import HwConfig, defaults
from .jsonfile import read_json



def _from_dict(cls, data, what: str):
    """The dataclass ``cls`` of a (possibly partial) parameter object, checked by its document."""
    if not isinstance(data, dict):
        raise TritforgeError(f"{what}: expected an object of {cls.__name__} parameters, got {type(data).__name__}")
    doc = validate(_DOCS[cls.__name__], {**defaults(cls), **data}, what)
    return cls(**doc.model_dump())


@dataclass(frozen=True)
class AttentionConfig:
    """The attention unit: int8 KV cache, int8 q·Kᵀ, online softmax, p·V."""

    max_head_dim: int = 256        #: largest head_dim (sizes q·Kᵀ and the RoPE table)
    max_context: int = 8192        #: largest context (KV cache depth, RoPE table rows)
    kv_format: str = "int8"        #: KV cache element format
    kv_scale: str = "per-token"    #: one scale per token and KV head
    scale_bits: int = 16           #: B: mantissa bits of every dynamic scale (m · 2^-e)
    score_frac_bits: int = 12      #: SF: fraction bits of the base-2 logits z
    score_int_bits: int = 10       #: |z| < 2^score_int_bits (saturated)
    exp_method: str = "lut"        #: 2^-f on [0, 1): "lut" (rounded index) or "poly2" (I-BERT)
    exp_lut_bits: int = 8          #: LUT index bits (2^bits + 1 entries)
    prob_frac_bits: int = 15       #: PF: fraction bits of p = 2^(z - m), p <= 2^PF
    block: int = 64                #: keys per online-softmax block
    pv_frac_bits: int = 8          #: OVF: fraction bits of the p·V accumulator's unit
    recip_bits: int = 16           #: bits of the normalized 1/l

    def __post_init__(self):
        validate(AttentionDoc, self.to_dict(), "AttentionConfig")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, what: str = "AttentionConfig") -> "AttentionConfig":
        return _from_dict(cls, data, what)


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit: RMSNorm, RoPE, SiLU·mul, requantization, residual adds."""

    resid_bits: int = 32           #: width of the residual stream and of every fixed-point vector
    resid_frac_bits: int = 14      #: FR: their fraction bits (range ±2^(resid_bits-1-FR))
    scale_bits: int = 16           #: B: mantissa bits of every dynamic scale and multiplier
    norm_in_bits: int = 16         #: |h >> p| <= 2^norm_in_bits in the sum of squares
    rsqrt_method: str = "lut-newton"
    rsqrt_lut_bits: int = 6        #: index bits of the 1/sqrt LUT on [1, 4)
    rsqrt_frac_bits: int = 15      #: fraction bits of the LUT entries and the Newton result
    rsqrt_newton: int = 1          #: Newton steps after the LUT
    gamma_bits: int = 16           #: signed width of the RMSNorm weights (per-norm fraction bits)
    rope_frac_bits: int = 14       #: fraction bits of the cos/sin table
    silu_method: str = "lut-interp"
    silu_lut_bits: int = 8         #: sigmoid LUT: 2^bits intervals on [0, 2^silu_range_log2]
    silu_range_log2: int = 4       #: sigmoid LUT covers |x| <= 2^silu_range_log2
    sigmoid_frac_bits: int = 15    #: fraction bits of sigma

    def __post_init__(self):
        validate(VectorDoc, self.to_dict(), "VectorConfig")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, what: str = "VectorConfig") -> "VectorConfig":
        return _from_dict(cls, data, what)


@dataclass(frozen=True)
class AccelConfig:
    """The whole accelerator: GEMV engine, attention unit, vector unit, lm_head placement."""

    engine: HwConfig = field(default_factory=HwConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    lm_head: str = "int8"

    def __post_init__(self):
        for name, cls in (("engine", HwConfig), ("attention", AttentionConfig), ("vector", VectorConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TritforgeError(f"AccelConfig {name}={getattr(self, name)!r}: expected a {cls.__name__}")
        validate(AccelDoc, self.to_dict(), "AccelConfig")

    def to_dict(self) -> dict:
        return {"engine": self.engine.to_dict(), "attention": self.attention.to_dict(),
                "vector": self.vector.to_dict(), "lm_head": self.lm_head}

    @classmethod
    def from_dict(cls, data: dict, what: str = "AccelConfig") -> "AccelConfig":
        if not isinstance(data, dict):
            raise TritforgeError(f"{what}: expected an object of AccelConfig parameters, got {type(data).__name__}")
        full = {"lm_head": defaults(cls)["lm_head"], **data}
        for name, part in (("engine", HwConfig), ("attention", AttentionConfig), ("vector", VectorConfig)):
            given = data.get(name, {})
            full[name] = {**defaults(part), **given} if isinstance(given, dict) else given
        doc = validate(AccelDoc, full, what)
        return cls(engine=HwConfig(**doc.engine.model_dump()), attention=AttentionConfig(**doc.attention.model_dump()),
                   vector=VectorConfig(**doc.vector.model_dump()), lm_head=doc.lm_head)

    @classmethod
    def from_json(cls, path: str) -> "AccelConfig":
        data = read_json(path, "accelerator config (AccelConfig parameters)")
        if "accelconfig" in data:
            return cls.from_dict(data["accelconfig"], f"{path}: accelconfig")
        return cls.from_dict(data, path)


_DOCS = {"AttentionConfig": AttentionDoc, "VectorConfig": VectorDoc}
