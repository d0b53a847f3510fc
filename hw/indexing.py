"""Registers and constants selected by a variable index, written so that every value the
index can take is covered (Verilator's lint reports an incomplete case otherwise), and
the counter pairs that walk them."""
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


def step(m, inner, outer, inner_last, outer_last):
    """Advance a pair of counters: ``inner`` to ``inner_last``, then ``outer`` by one, both
    wrapping to 0 after ``outer_last``. Returns the condition under which both wrap."""
    m.d.sync += inner.eq(inner + 1)
    with m.If(inner == inner_last):
        m.d.sync += [inner.eq(0), outer.eq(outer + 1)]
        with m.If(outer == outer_last):
            m.d.sync += outer.eq(0)
    return (inner == inner_last) & (outer == outer_last)
