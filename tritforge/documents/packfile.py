"""The packed file's metadata (``codec.packfile``; the packed model folder's
``codec.packedmodel`` stores the same entries): one entry per matrix and the model note.

Entry rules: ``depth`` 1..4 (a variable-depth matrix's base depth), ``group`` 16, ``shape`` [out, in] of positive sizes,
``in_padded`` the next multiple of 16 at or above ``in``, ``pad`` = in_padded - in, ``mode``
one of the quantizer modes, the codebook endpoints as finite hex floats with 0 < lo <= hi,
the SHA-256 of both tensors; an optional ``variable_depth`` (a variable-depth matrix):
``stream_trits`` and ``groups_by_depth`` (depth + 1 counts, zero outside the depths the
base allows, summing to the matrix's groups and, at 4 + 16 k trits a group, to
``stream_trits``). The note (``model``) is the writer's, and open; the fields
tritforge reads in it are typed: ``source``, ``architecture``, ``config``, ``mode`` strings,
and ``weight_error`` one ``[sum err^2, sum w^2]`` pair of numbers >= 0 per matrix.

The tensors themselves are held to their roles by the reader (``codec.packfile``): the
trit stream ``<name>.trits`` is U8, one-dimensional, of exactly the bytes the entry's
geometry needs; the codebook ``<name>.codebook`` is U16 of shape [27]; no other tensor.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ..codec import layout
from ..codec.codebook import MANT_BITS, SHIFT_LIMIT
from .validation import Amount, Doc, Int, OpenDoc, Sha256, Str

MODES = ("tritllm-v2", "tritforge", "calibrated")
#: the largest matrix side a packed file holds (16 M rows or columns)
MAX_SIDE = 1 << 24


def _hex_float(s: str) -> str:
    try:
        v = float.fromhex(s)
    except (ValueError, OverflowError):
        raise ValueError(f"expected a hex float such as '0x1.8p-3', got {s[:40]!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"expected a finite positive value, got {s[:40]!r}")
    return s


HexFloat = Annotated[Str, AfterValidator(_hex_float)]
Side = Annotated[Int, Field(ge=1, le=MAX_SIDE)]


class CodebookMeta(Doc):
    lo: HexFloat
    hi: HexFloat
    mant_bits: Literal[MANT_BITS]
    shift_limit: Annotated[Int, Field(ge=0, le=SHIFT_LIMIT)]

    @model_validator(mode="after")
    def _order(self):
        if float.fromhex(self.lo) > float.fromhex(self.hi):
            raise ValueError(f"codebook lo {self.lo} is above hi {self.hi}")
        return self


class TensorSums(Doc):
    trits: Sha256
    codebook: Sha256


class VariableDepth(Doc):
    """A variable-depth matrix's stream (``codec.layout``): its trit count and its groups
    per depth 0..depth."""

    stream_trits: Annotated[Int, Field(ge=0, le=1 << 62)]
    groups_by_depth: Annotated[list[Annotated[Int, Field(ge=0, le=1 << 48)]],
                               Field(min_length=1, max_length=max(layout.DEPTHS) + 1)]


class PackedEntry(Doc):
    depth: Annotated[Int, Field(ge=min(layout.DEPTHS), le=max(layout.DEPTHS))]
    group: Literal[layout.GROUP]
    shape: Annotated[list[Side], Field(min_length=2, max_length=2)]
    in_padded: Annotated[Int, Field(ge=layout.GROUP, le=MAX_SIDE + layout.GROUP, multiple_of=layout.GROUP)]
    pad: Annotated[Int, Field(ge=0, lt=layout.GROUP)]
    mode: Literal[MODES]
    codebook: CodebookMeta
    sha256: TensorSums
    variable_depth: VariableDepth | None = None

    @model_validator(mode="after")
    def _geometry(self):
        n_in = self.shape[1]
        if not n_in <= self.in_padded < n_in + layout.GROUP:
            raise ValueError(f"in_padded {self.in_padded} does not fit shape {self.shape}")
        if self.pad != self.in_padded - n_in:
            raise ValueError(f"pad {self.pad} does not match shape {self.shape} and in_padded {self.in_padded}")
        v = self.variable_depth
        if v is not None:
            hist = v.groups_by_depth
            allowed = layout.var_depths(self.depth)
            groups = self.shape[0] * (self.in_padded // layout.GROUP)
            if len(hist) != self.depth + 1:
                raise ValueError(f"variable_depth: groups_by_depth has {len(hist)} entries, expected "
                                 f"{self.depth + 1} (depths 0..{self.depth})")
            if any(n for k, n in enumerate(hist) if k not in allowed):
                raise ValueError(f"variable_depth: groups at a depth outside {allowed}")
            if sum(hist) != groups:
                raise ValueError(f"variable_depth: {sum(hist)} groups, the shape has {groups}")
            if sum(n * layout.var_group_trits(k) for k, n in enumerate(hist)) != v.stream_trits:
                raise ValueError(f"variable_depth: stream_trits {v.stream_trits} does not match "
                                 f"groups_by_depth {hist}")
        return self


class ModelNote(OpenDoc):
    source: Str | None = None
    architecture: Str | None = None
    config: Str | None = None
    mode: Str | None = None
    weight_error: dict[str, Annotated[list[Amount], Field(min_length=2, max_length=2)]] | None = None


class PackedEntries(Doc):
    """The ``tensors`` metadata: matrix name -> entry."""

    entries: Annotated[dict[str, PackedEntry], Field(min_length=1)]
