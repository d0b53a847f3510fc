"""Action counts of the GEMV engine: what the energy model multiplies by pJ per action.

The cycle models (``sim.fastmodel``; per matrix, per command) emit one :class:`Actions`;
the model driver sums them per layer and per token (``a + b``, ``sum(list, Actions())``)
and the estimator multiplies each counter by an energy per action (``to_dict()``).

Every counter is an exact integer count of work the engine of ``hw/ENGINE.md`` does. The
engine works on whole tiles (R rows) and whole commands (T vectors), so padded rows of the
last tile and the zero vectors that pad the last command are counted too: the hardware
spends the energy on them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import TritforgeError


@dataclass
class Actions:
    #: Clock cycles from command accept to the end cycle after the last result beat is
    #: accepted, before the engine is idle again (no stalls).
    cycles: int = 0
    #: Non-zero weight trits times activation vectors: the lane's term selects a stored
    #: multiple +-3**i x of its activation (the zero trits select 0).
    trit_addsub: int = 0
    #: Zero weight trits times activation vectors: the lane is skipped (gated to 0).
    trit_skip: int = 0
    #: Two-input adds of the group dot's adder tree over its 16*d terms: 16*d - 1 per
    #: (row, group, vector).
    tree_add: int = 0
    #: Adds forming the activation multiples +-3**i x, shared by the R rows of a beat:
    #: 16 lanes x (1, 3, 5, 8 for d = 1..4) per (tile, group, vector) and engine slice
    #: (``HwConfig.slices``: each slice forms its own).
    plane_add: int = 0
    #: Group scale multiplies: one F-bit mantissa x dot-product-width multiply per
    #: (row, group, vector).
    group_mul: int = 0
    #: Row accumulator updates (a wide add of the shifted group product): one per
    #: (row, group, vector).
    acc_add: int = 0
    #: Codebook (scale table) reads: one per (row, group) of each weight beat decoded.
    codebook_read: int = 0
    #: Activation-buffer read bits: one 128-bit group word per RUN cycle that uses a beat
    #: (tiles x groups x T per command), in every slice's buffer (``HwConfig.slices``).
    act_read_bits: int = 0
    #: Activation-buffer write bits: T x groups 128-bit words per command with load_act,
    #: into every slice's buffer.
    act_write_bits: int = 0
    #: Weight-stream bytes accepted (DRAM traffic): tiles x groups x beat_bytes per command.
    weight_bytes: int = 0
    #: Result-stream payload bits: R accumulators of acc_width bits per (tile, vector).
    result_bits: int = 0

    def __add__(self, other: "Actions") -> "Actions":
        if not isinstance(other, Actions):
            return NotImplemented
        return Actions(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                          for f in dataclasses.fields(self)})

    def __radd__(self, other):
        if other == 0:          # sum() starts from 0
            return self
        return self.__add__(other)

    def scaled(self, factor: int) -> "Actions":
        """These counts repeated ``factor`` times (an integer)."""
        return Actions(**{f.name: getattr(self, f.name) * int(factor)
                          for f in dataclasses.fields(self)})

    def to_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Actions":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TritforgeError(f"action counts: unknown counters {unknown}; expected some of {sorted(names)}")
        return cls(**{k: int(v) for k, v in data.items()})

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(Actions))
