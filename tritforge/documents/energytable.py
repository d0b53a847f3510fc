"""The energy-table document: an action-energy table (``sim/data/energy/*.toml``), read by
``tritforge.sim.energy``. It owns every rule on a table; ``EnergyTable.from_dict`` builds the
table from a validated ``EnergyTableDoc``. (The table's layout and the meaning of each
``op`` are described in ``tritforge.sim.energy``.)

Rules beyond the field types: every row and primitive has a non-empty ``source``; a
primitive's points are lists of equal, non-zero length with positive, increasing x and
energies >= 0 (SRAM's > 0: they are interpolated log-log); ``[actions]`` has a row for
every counter of ``sim.actions.Actions`` and no other, ``[units]`` (optional) one for every
``UNIT_ACTIONS``; a row is either a fixed ``pj`` or an ``op`` with that op's fields only;
an ``add``, ``mult`` or ``sram`` row needs its ``[primitives.<op>]``; ``clock`` prices only
``actions.cycles``.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import BeforeValidator, Field, PlainValidator, field_validator, model_validator

from ..sim.actions import Actions
from .validation import Amount, Doc, Num, Str, Text

OPS = ("add", "mult", "sram", "memory", "clock")
#: actions of the attention unit, the vector unit, and of weight formats other than the codec's
#: (counted by ``sim.unitcycles`` and ``sim.estimate``), priced by a table's [units] rows
UNIT_ACTIONS = ("qk_mac", "pv_mac", "unit_acc_add", "exp_lut", "vec_mul", "vec_add", "vec_lut",
                "unit_sram_bits", "lm_head_mac", "mac_int4", "mac_int8", "mac_ternary",
                "kv_read_bytes", "kv_write_bytes", "lm_head_bytes", "other_read_bytes", "out_write_bytes")
#: widths an action may name instead of a number (``sim.energy.hw_widths``)
WIDTH_NAMES = ("act", "tree", "dot", "mant", "product", "acc", "codebook_word")
#: array sizes an SRAM action may name instead of bytes (``sim.energy.hw_sizes``)
SIZE_NAMES = ("act_buffer", "codebook")
#: the widest operand and the largest array a row may give as a number
MAX_WIDTH = 4096
MAX_SIZE = 1 << 40


def _number_or_name(names: tuple, what: str, top: float):
    def check(v):
        if isinstance(v, str) and v in names:
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= top:
            return v
        raise ValueError(f"expected {what} in (0, {top}] or one of {list(names)}, got {v!r}")
    return PlainValidator(check)


Width = Annotated[object, _number_or_name(WIDTH_NAMES, "a width", MAX_WIDTH)]
Size = Annotated[object, _number_or_name(SIZE_NAMES, "bytes", MAX_SIZE)]
Point = Annotated[Num, Field(gt=0, le=1e30)]


def _as_list(v):
    return v if isinstance(v, list) else [v]


class _Curve(Doc):
    """A primitive's points: ``X`` -> ``Y`` (names of the two lists), and their source."""

    X: ClassVar[str] = "bits"
    Y: ClassVar[str] = "pj"
    source: Text

    @model_validator(mode="after")
    def _points(self):
        xs, ys = getattr(self, self.X), getattr(self, self.Y)
        if len(xs) != len(ys):
            raise ValueError(f"expected lists '{self.X}' and '{self.Y}' of equal length, got {len(xs)} and {len(ys)}")
        if any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"'{self.X}' must be increasing, got {xs}")
        return self


class WidthCurve(_Curve):
    bits: Annotated[list[Annotated[Point, Field(le=MAX_WIDTH)]], Field(min_length=1)]
    pj: Annotated[list[Amount], Field(min_length=1)]


class SramCurve(_Curve):
    X: ClassVar[str] = "kbytes"
    Y: ClassVar[str] = "pj_per_64bit"
    kbytes: Annotated[list[Annotated[Point, Field(le=MAX_SIZE / 1024)]], Field(min_length=1)]
    pj_per_64bit: Annotated[list[Point], Field(min_length=1)]


class Primitives(Doc):
    add: Optional[WidthCurve] = None
    mult: Optional[WidthCurve] = None
    sram: Optional[SramCurve] = None


class MemoryRowDoc(Doc):
    pj_per_bit: Amount
    source: Text


#: the fields each op takes besides ``op`` and ``source`` (a fixed row: ``pj`` only)
OP_FIELDS = {None: ("pj",), "add": ("bits",), "mult": ("bits",), "sram": ("size", "bits"),
             "memory": ("unit",), "clock": ("share",)}


class ActionRowDoc(Doc):
    source: Text
    op: Optional[Literal[OPS]] = None
    pj: Optional[Amount] = None
    bits: Optional[Annotated[list[Width], BeforeValidator(_as_list)]] = None
    size: Optional[Size] = None
    unit: Optional[Literal["bit", "byte"]] = None
    share: Optional[Annotated[Num, Field(gt=0, lt=1)]] = None

    @model_validator(mode="after")
    def _form(self):
        given = {k for k in ("pj", "bits", "size", "unit", "share") if getattr(self, k) is not None}
        if self.op is None and "pj" not in given:
            raise ValueError(f"needs 'pj' or 'op' (one of {list(OPS)})")
        if self.op is not None and "pj" in given:
            raise ValueError("give either 'pj' or 'op', not both")
        stray = sorted(given - set(OP_FIELDS[self.op]))
        if stray:
            raise ValueError(f"'{stray[0]}' does not apply to {f'op {self.op!r}' if self.op else 'a fixed pj'}")
        n = len(self.bits or ())
        if self.op == "add" and n != 1:
            raise ValueError("op 'add' needs one width in 'bits'")
        if self.op == "mult" and n != 2:
            raise ValueError("op 'mult' needs two widths in 'bits'")
        if self.op == "sram" and (n > 1 or self.size is None):
            raise ValueError(f"op 'sram' needs 'size' (bytes or one of {list(SIZE_NAMES)}) and at most one "
                             "width in 'bits'")
        if self.op == "clock" and self.share is None:
            raise ValueError("op 'clock' needs 'share', a fraction in (0, 1)")
        return self


def _rows_for(names, what: str):
    def check(rows: dict) -> dict:
        unknown = sorted(set(rows) - set(names))
        if unknown:
            raise ValueError(f"unknown {what} {unknown}; expected {list(names)}")
        missing = [n for n in names if n not in rows]
        if missing:
            raise ValueError(f"missing {what} {missing} (every one needs a row)")
        return rows
    return check


class EnergyTableDoc(Doc):
    name: Text
    version: Text
    description: Str = ""
    primitives: Primitives = Primitives()
    memory: dict[Str, MemoryRowDoc]
    actions: dict[Str, ActionRowDoc]
    units: Optional[dict[Str, ActionRowDoc]] = None

    @field_validator("actions")
    @classmethod
    def _every_counter(cls, rows):
        return _rows_for(Actions.names(), "actions")(rows)

    @field_validator("units")
    @classmethod
    def _every_unit_action(cls, rows):
        return rows if rows is None else _rows_for(UNIT_ACTIONS, "unit actions")(rows)

    @model_validator(mode="after")
    def _ops(self):
        for section, rows in (("actions", self.actions), ("units", self.units or {})):
            for name, row in rows.items():
                if row.op in ("add", "mult", "sram") and getattr(self.primitives, row.op) is None:
                    raise ValueError(f"{section}.{name}: op {row.op!r} needs a [primitives.{row.op}] table")
                if row.op == "clock" and (section, name) != ("actions", "cycles"):
                    raise ValueError(f"{section}.{name}: op 'clock' prices only actions.cycles")
        return self
