"""LayerConfig: one build of the decoder-layer top (hw/layer.py) — the model's layer shape
and the accelerator (``AccelConfig``: GEMV engine, attention and vector units) it runs on.

The facts the layer's RTL, its port set (tritforge/layerports.py), the tests and the
driver share are derived here once: the seven matrices in schedule order with their
shapes, sources and destinations, and the map of the on-chip vector memory.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .accelconfig import AccelConfig
from .attentionunit import AttentionUnitConfig
from .codec import layout
from .errors import TritforgeError
from .hwconfig import HwConfig


@dataclass(frozen=True)
class Matrix:
    """One projection of the layer, in schedule order."""

    name: str
    in_features: int
    out_features: int
    source: str         #: what makes its int8 input: "norm1", "norm2", "attention", "silu"
    load: bool          #: loads its input vector (False: reuses the previous matrix's)
    dst: str            #: the vector-memory region its requantized rows go to
    residual: bool      #: the rows are added to the residual (o_proj, down_proj)

    @property
    def fixed_point_input(self) -> bool:
        """The input is a fixed-point vector (FR fraction bits) quantized to int8, so its
        step is in units of 2^-FR (an RMSNorm's step is in real units)."""
        return self.source in ("attention", "silu")

    @property
    def groups(self) -> int:
        """Activation words (groups of 16) of the input, the last one padded with zeros."""
        return -(-self.in_features // layout.GROUP)


@dataclass(frozen=True)
class LayerConfig:
    """A decoder layer (Llama / Qwen2 form) and the accelerator. The engine's ``vectors`` T
    is the layer's tokens per command: T = 1 decodes one token, T > 1 runs T consecutive
    tokens of a prompt (prefill) with one pass over the weights."""

    hidden: int = 576
    intermediate: int = 1536
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    accel: AccelConfig = field(default_factory=lambda: AccelConfig(engine=HwConfig(max_in_features=1536,
                                                                                   max_out_features=1536)))
    lanes: int = 16     #: the attention unit's int8 elements per beat

    def __post_init__(self):
        o = "LayerConfig"
        for name in ("hidden", "intermediate", "heads", "kv_heads", "head_dim", "lanes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TritforgeError(f"{o} {name}={v!r}: expected a positive integer")
        if not isinstance(self.accel, AccelConfig):
            raise TritforgeError(f"{o} accel={self.accel!r}: expected an AccelConfig")
        if self.heads % self.kv_heads:
            raise TritforgeError(f"{o}: {self.heads} query heads do not share {self.kv_heads} KV heads evenly")
        e = self.accel.engine
        if self.tokens > 1:
            # the regions interleave the tokens in chunks of R (``address``): every vector,
            # head and engine tile must be whole chunks
            for name, n in (("hidden", self.hidden), ("heads × head_dim", self.qdim), ("head_dim", self.head_dim),
                            ("intermediate", self.intermediate)):
                if n % e.rows:
                    raise TritforgeError(f"{o}: {name}={n} is not a multiple of the engine's rows R={e.rows}; "
                                         f"a build of {self.tokens} tokens per command needs it")
            # a tile's T result beats leave the layer's serializer R elements each while
            # the engine works T·groups cycles on the next tile
            narrow = min(self.matrices, key=lambda mt: mt.groups)
            if narrow.groups < e.rows:
                raise TritforgeError(f"{o}: {narrow.name}_proj has {narrow.groups} groups of 16 inputs, fewer than "
                                     f"the engine's rows R={e.rows}; a build of {self.tokens} tokens per command "
                                     f"needs at least R")
        widest_in = max(m.groups for m in self.matrices) * layout.GROUP
        widest_out = max(m.out_features for m in self.matrices)
        if e.max_in_features < widest_in or e.max_out_features < widest_out:
            raise TritforgeError(f"{o}: engine max_in_features={e.max_in_features} / max_out_features="
                                 f"{e.max_out_features}; the layer needs {widest_in} / {widest_out}")
        self.attention_unit                                  # its own checks

    @property
    def tokens(self) -> int:
        """T: the tokens of one command (the engine's vectors)."""
        return self.accel.engine.vectors

    @property
    def qdim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kvdim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def attention_unit(self) -> AttentionUnitConfig:
        return AttentionUnitConfig(head_dim=self.head_dim, group=self.group, lanes=self.lanes,
                                   attention=self.accel.attention, vector=self.accel.vector)

    @property
    def matrices(self) -> tuple[Matrix, ...]:
        """q, k, v, o, gate, up, down in schedule order."""
        H, I, Q, KV = self.hidden, self.intermediate, self.qdim, self.kvdim
        return (Matrix("q", H, Q, "norm1", True, "q", False), Matrix("k", H, KV, "norm1", False, "k", False),
                Matrix("v", H, KV, "norm1", False, "v", False), Matrix("o", Q, H, "attention", True, "h", True),
                Matrix("gate", H, I, "norm2", True, "g", False), Matrix("up", H, I, "norm2", False, "u", False),
                Matrix("down", I, H, "silu", True, "h", True))

    @property
    def regions(self) -> dict[str, tuple[int, int]]:
        """The vector memory: region -> (base, elements of one token). h: the residual; q, k,
        v: the projections (heads in order); a: the attention output; g, u: gate and up.
        Each region holds T tokens (``address``)."""
        out, at = {}, 0
        for name, n in (("h", self.hidden), ("q", self.qdim), ("k", self.kvdim), ("v", self.kvdim),
                        ("a", self.qdim), ("g", self.intermediate), ("u", self.intermediate)):
            out[name] = (at, n)
            at += n * self.tokens
        return out

    @property
    def memory_depth(self) -> int:
        return sum(n for _, n in self.regions.values()) * self.tokens

    def address(self, region: str, token: int, i: int) -> int:
        """Where element i of ``token`` lies. Region a is token-major (base + t·n + i); the
        others, which the engine writes, interleave the tokens in chunks of R as its result
        beats leave it (tile, then vector, then row): base + (i // R)·T·R + t·R + i % R, so
        the engine's rows land at consecutive addresses and a token's elements are chunks of R
        at a stride of T·R. At T = 1 both are base + i."""
        base, n = self.regions[region]
        if region == "a":
            return base + token * n + i
        R, T = self.accel.engine.rows, self.tokens
        return base + (i // R) * T * R + token * R + i % R

    def to_dict(self) -> dict:
        return {"hidden": self.hidden, "intermediate": self.intermediate, "heads": self.heads,
                "kv_heads": self.kv_heads, "head_dim": self.head_dim, "lanes": self.lanes,
                "accelconfig": self.accel.to_dict()}

    @classmethod
    def for_model(cls, config, accel: AccelConfig | None = None, lanes: int = 16,
                  tokens: int = 1) -> "LayerConfig":
        """The build for a transformers config (Llama / Qwen2 form), or a model-shape dict
        (``sim.estimate.load_shape``) running ``tokens`` tokens per command; ``accel``'s
        engine gets that many vectors and room for the layer's widest matrix."""
        get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k, None))
        heads = get("num_attention_heads")
        hd = get("head_dim") or get("hidden_size") // heads
        widest = padded_width(config)
        accel = accel or AccelConfig()
        engine = dataclasses.replace(accel.engine, vectors=tokens, max_in_features=widest, max_out_features=widest)
        return cls(hidden=get("hidden_size"), intermediate=get("intermediate_size"), heads=heads,
                   kv_heads=get("num_key_value_heads") or heads, head_dim=hd,
                   accel=dataclasses.replace(accel, engine=engine), lanes=math.gcd(lanes, hd))


def padded_width(config) -> int:
    """The widest matrix side of a model's layer (a transformers config or a shape dict),
    rounded up to whole groups of 16: what the engine's ``max_in_features`` /
    ``max_out_features`` must hold."""
    get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k, None))
    hd = get("head_dim") or get("hidden_size") // get("num_attention_heads")
    widest = max(get("hidden_size"), get("intermediate_size"), get("num_attention_heads") * hd)
    return -(-widest // layout.GROUP) * layout.GROUP
