"""The board document: one board description (``sim/data/boards/*.toml``), read by
``tritforge.sim.boards``. It owns every rule on a board file; ``board_from_dict`` builds the
``Board`` from a validated ``BoardDoc``.

A board file holds its name and title, the board-level figures (``BOARD_FIGURES``), a
``[memory]`` table with the memory's figures (``MEMORY_FIGURES``) and, optionally, a
``[host]`` table: the processor that runs a host-side lm_head (``HostDoc``). Every figure has a
source: a non-empty ``<figure>_source`` string beside it, or an entry of the same name in a
``[source]`` table of the same level. The engine's figures take the ranges the engine's
``HwConfigDoc`` gives them, except ``rows``, whose hint says how to describe a larger array
(``engines`` engines of R rows). Unknown keys are refused.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..sim.memory import MEMORY_TYPES
from .hwconfig import HwConfigDoc
from .validation import Amount, Bool, Doc, Int, Num, Str, Text

#: the most rows one engine has (the HwConfig's limit)
MAX_ROWS = 256


def _engine(name: str, base):
    """The type of the engine's field ``name`` in ``HwConfigDoc`` (one owner of its range)."""
    return Annotated[(base, *HwConfigDoc.model_fields[name].metadata)]


Positive = Annotated[Num, Field(gt=0, le=1e30)]
Whole = Annotated[Int, Field(ge=1, le=(1 << 63) - 1)]


class _Figures(Doc):
    """A level of a board file whose figures each need a source (``FIGURES``; an
    ``OPTIONAL`` figure may be left out, but one that is given needs a source too)."""

    FIGURES: ClassVar[tuple] = ()
    OPTIONAL: ClassVar[tuple] = ()

    def _given(self) -> tuple:
        return self.FIGURES + tuple(k for k in self.OPTIONAL if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _sourced(self):
        table = self.source or {}
        for key in self._given():
            if getattr(self, f"{key}_source") is None and key not in table:
                raise ValueError(f"figure '{key}' has no source (add '{key}_source' or [source].{key})")
        unknown = sorted(set(table) - set(self._given()))
        if unknown:
            raise ValueError(f"[source].{unknown[0]}: not a figure; expected some of {sorted(self._given())}")
        return self

    def sources(self, prefix: str = "") -> dict[str, str]:
        """figure -> its source, in ``FIGURES`` order (then the optional figures given)."""
        table = self.source or {}
        return {prefix + k: getattr(self, f"{k}_source") or table[k] for k in self._given()}


class MemoryDoc(_Figures):
    """The ``[memory]`` table: the fields of ``tritforge.sim.memory.MemorySystem``."""

    FIGURES: ClassVar[tuple] = ("type", "data_rate_mts", "bus_bits", "channels", "row_bytes", "capacity_bytes", "background_w")

    type: Literal[tuple(MEMORY_TYPES)]
    type_source: Optional[Text] = None
    data_rate_mts: Positive
    data_rate_mts_source: Optional[Text] = None
    bus_bits: Annotated[Int, Field(ge=1, le=1 << 16)]
    bus_bits_source: Optional[Text] = None
    channels: Annotated[Int, Field(ge=1, le=1 << 16)]
    channels_source: Optional[Text] = None
    row_bytes: Whole
    row_bytes_source: Optional[Text] = None
    capacity_bytes: Whole
    capacity_bytes_source: Optional[Text] = None
    background_w: Amount
    background_w_source: Optional[Text] = None
    source: Optional[dict[Str, Text]] = None


class HostDoc(_Figures):
    """The optional ``[host]`` table: the processor that runs a host-side lm_head
    ("host-fp16") from the board's shared memory (``host_shares_memory``). Its time is
    max(bytes / read rate, MACs / (cores x clock x MACs per cycle)); ``read_gbs``, the
    host's own sustained read rate from that memory, may be left out when no figure is
    known (the host then reads at the memory's sustained rate, a lower bound on its time)."""

    FIGURES: ClassVar[tuple] = ("cores", "clock_mhz", "macs_per_cycle")
    OPTIONAL: ClassVar[tuple] = ("read_gbs",)

    cores: Annotated[Int, Field(ge=1, le=1 << 16)]
    cores_source: Optional[Text] = None
    clock_mhz: Positive
    clock_mhz_source: Optional[Text] = None
    macs_per_cycle: Positive
    macs_per_cycle_source: Optional[Text] = None
    read_gbs: Optional[Positive] = None
    read_gbs_source: Optional[Text] = None
    source: Optional[dict[Str, Text]] = None


class BoardDoc(_Figures):
    FIGURES: ClassVar[tuple] = ("clock_mhz", "rows", "engines", "vectors", "max_in_features", "static_w", "host_shares_memory")

    name: Text
    title: Text
    notes: Str = ""
    energy_table: Text = "horowitz-45nm.toml"
    clock_mhz: _engine("clock_mhz", Num)
    clock_mhz_source: Optional[Text] = None
    rows: Annotated[Int, Field(ge=1)]
    rows_source: Optional[Text] = None
    engines: Annotated[Int, Field(ge=1, le=1 << 16)]
    engines_source: Optional[Text] = None
    vectors: _engine("vectors", Int)
    vectors_source: Optional[Text] = None
    max_in_features: _engine("max_in_features", Int)
    max_in_features_source: Optional[Text] = None
    static_w: Amount
    static_w_source: Optional[Text] = None
    host_shares_memory: Bool
    host_shares_memory_source: Optional[Text] = None
    source: Optional[dict[Str, Text]] = None
    memory: MemoryDoc
    host: Optional[HostDoc] = None

    @field_validator("rows")
    @classmethod
    def _one_engine(cls, rows: int) -> int:
        if rows > MAX_ROWS:
            raise ValueError(f"{rows}: one engine has at most {MAX_ROWS} rows; describe a larger array as "
                             "'engines' engines of R rows")
        return rows

    def sources(self, prefix: str = "") -> dict[str, str]:
        """Every figure's source: the board's, then ``memory.<figure>``, then ``host.<figure>``."""
        host = self.host.sources(prefix + "host.") if self.host is not None else {}
        return {**super().sources(prefix), **self.memory.sources(prefix + "memory."), **host}
