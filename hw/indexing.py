"""Registers and constants selected by a variable index, written so that every value the
index can take is covered (Verilator's lint reports an incomplete case otherwise)."""
from __future__ import annotations

from amaranth.hdl import Array


def pick(items, index):
    """items[index] for a variable index: a multiplexer over every value the index can take
    (the last item repeated past the end, so no case is left uncovered)."""
    full = 1 << len(index)
    return Array(list(items) + [items[-1]] * (full - len(items)))[index]


def write(m, targets, index, value) -> None:
    """targets[index] <= value: a register write at a variable index, as one enable per
    target (every index covered, no incomplete case)."""
    for i, t in enumerate(targets):
        with m.If(index == i):
            m.d.sync += t.eq(value)
