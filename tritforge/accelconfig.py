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

from .errors import TritforgeError
from .hwconfig import HwConfig
from .jsonfile import read_json

LM_HEADS = ("int8", "ternary", "host-fp16")
KV_FORMATS = ("int8",)
KV_SCALES = ("per-token",)
EXP_METHODS = ("lut", "poly2")
RSQRT_METHODS = ("lut-newton",)
SILU_METHODS = ("lut-interp",)


def _check_int(owner: str, name: str, value, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise TritforgeError(f"{owner} {name}={value!r}: expected an integer in {lo}..{hi}")


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise TritforgeError(f"{owner} {name}={value!r}: expected one of {list(choices)}")


def _from_dict(cls, data, what: str):
    if not isinstance(data, dict):
        raise TritforgeError(f"{what}: expected a JSON object of {cls.__name__} parameters")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise TritforgeError(f"{what}: unknown parameter {unknown[0]!r}; expected some of {names}")
    return cls(**data)


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
        o = "AttentionConfig"
        _check_int(o, "max_head_dim", self.max_head_dim, 2, 1024)
        if self.max_head_dim % 2:
            raise TritforgeError(f"{o} max_head_dim={self.max_head_dim}: expected an even number")
        _check_int(o, "max_context", self.max_context, 1, 1 << 20)
        _check_choice(o, "kv_format", self.kv_format, KV_FORMATS)
        _check_choice(o, "kv_scale", self.kv_scale, KV_SCALES)
        _check_int(o, "scale_bits", self.scale_bits, 8, 20)
        _check_int(o, "score_frac_bits", self.score_frac_bits, 4, 20)
        _check_int(o, "score_int_bits", self.score_int_bits, 4, 16)
        _check_choice(o, "exp_method", self.exp_method, EXP_METHODS)
        _check_int(o, "exp_lut_bits", self.exp_lut_bits, 1, 16)
        if self.exp_lut_bits > self.score_frac_bits:
            raise TritforgeError(f"{o} exp_lut_bits={self.exp_lut_bits}: expected at most "
                                 f"score_frac_bits={self.score_frac_bits}")
        _check_int(o, "prob_frac_bits", self.prob_frac_bits, 4, 24)
        _check_int(o, "block", self.block, 1, 4096)
        _check_int(o, "pv_frac_bits", self.pv_frac_bits, 0, 20)
        _check_int(o, "recip_bits", self.recip_bits, 8, 24)

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
        o = "VectorConfig"
        _check_int(o, "resid_bits", self.resid_bits, 16, 40)
        _check_int(o, "resid_frac_bits", self.resid_frac_bits, 0, self.resid_bits - 2)
        _check_int(o, "scale_bits", self.scale_bits, 8, 20)
        _check_int(o, "norm_in_bits", self.norm_in_bits, 8, 24)
        _check_choice(o, "rsqrt_method", self.rsqrt_method, RSQRT_METHODS)
        _check_int(o, "rsqrt_lut_bits", self.rsqrt_lut_bits, 2, 12)
        _check_int(o, "rsqrt_frac_bits", self.rsqrt_frac_bits, 8, 24)
        _check_int(o, "rsqrt_newton", self.rsqrt_newton, 0, 3)
        _check_int(o, "gamma_bits", self.gamma_bits, 8, 24)
        _check_int(o, "rope_frac_bits", self.rope_frac_bits, 4, 24)
        _check_choice(o, "silu_method", self.silu_method, SILU_METHODS)
        _check_int(o, "silu_lut_bits", self.silu_lut_bits, 2, 14)
        _check_int(o, "silu_range_log2", self.silu_range_log2, 1, 6)
        _check_int(o, "sigmoid_frac_bits", self.sigmoid_frac_bits, 8, 24)
        if self.silu_range_log2 + self.resid_frac_bits < self.silu_lut_bits:
            raise TritforgeError(f"{o} silu_lut_bits={self.silu_lut_bits}: expected at most "
                                 "silu_range_log2 + resid_frac_bits")

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
        _check_choice("AccelConfig", "lm_head", self.lm_head, LM_HEADS)

    def to_dict(self) -> dict:
        return {"engine": self.engine.to_dict(), "attention": self.attention.to_dict(),
                "vector": self.vector.to_dict(), "lm_head": self.lm_head}

    @classmethod
    def from_dict(cls, data: dict, what: str = "AccelConfig") -> "AccelConfig":
        if not isinstance(data, dict):
            raise TritforgeError(f"{what}: expected a JSON object of AccelConfig parameters")
        names = ["engine", "attention", "vector", "lm_head"]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise TritforgeError(f"{what}: unknown parameter {unknown[0]!r}; expected some of {names}")
        kw = {}
        if "engine" in data:
            if not isinstance(data["engine"], dict):
                raise TritforgeError(f"{what}: engine: expected a JSON object of HwConfig parameters")
            kw["engine"] = HwConfig.from_dict(data["engine"], f"{what}: engine")
        if "attention" in data:
            kw["attention"] = AttentionConfig.from_dict(data["attention"], f"{what}: attention")
        if "vector" in data:
            kw["vector"] = VectorConfig.from_dict(data["vector"], f"{what}: vector")
        if "lm_head" in data:
            kw["lm_head"] = data["lm_head"]
        return cls(**kw)

    @classmethod
    def from_json(cls, path: str) -> "AccelConfig":
        data = read_json(path, "accelerator config (AccelConfig parameters)")
        return cls.from_dict(data.get("accelconfig", data), path)
