"""The stepping models' form of the vector unit's element pipelines (hw/elementpipe.py,
hw/VECTOR.md "Timing"), their per-cycle records and the integer helpers they share.

``ElementPipe(stages)`` is a chain of ``stages`` slots that advance together: a slot holds
the element (any Python value: the stage-by-stage arithmetic of a unit is done when the
element enters, with the values the RTL's registers hold at that point) or ``None`` for
a bubble. The last slot is the output stream's valid and payload; the chain advances when
that slot is empty or being taken (``advance(ready)``, the input's ready), and then the
first slot takes the element entering in that cycle (or a bubble). So an element entering
in cycle t is on the output in cycle t + stages while the output is ready, and every slot
holds while it is not. A synchronous reset empties every slot.

``CreditPipe(stages)`` is the credit pipeline (hw/elementpipe.CreditFifo): ``stages`` - 1
slots that advance every cycle, then an output FIFO; an element issues only while a credit
is held, and the output's ready moves only the FIFO.

``records(ports)``: the ``Inputs`` / ``Outputs`` dataclasses of a port set
(``tritforge.ports.record_fields``; ``rst`` first). A payload field of an output is
``None`` in a cycle where its stream's valid is low: the stream rule leaves it undefined
and the RTL shows whatever its last registers hold (tests/test_vectorstep.py compares
payloads in the cycles their valid is high, every valid and ready in every cycle).
"""
from __future__ import annotations

from collections import deque
from dataclasses import field, make_dataclass
from functools import lru_cache

from ..ports import IN, OUT, record_fields
from ..vectortiming import CREDIT_FIFO_DEPTH


class ElementPipe:
    """``stages`` registers that advance together (hw/elementpipe.advance)."""

    def __init__(self, stages: int):
        self.stages = stages
        self.clear()

    def clear(self) -> None:
        self.slots = [None] * self.stages

    @property
    def valid(self) -> bool:
        return self.slots[-1] is not None

    @property
    def head(self):
        """The element on the output (``None`` when not valid)."""
        return self.slots[-1]

    @property
    def empty(self) -> bool:
        """No element in any stage (every valid bit low)."""
        return all(s is None for s in self.slots)

    def advance(self, ready: bool) -> bool:
        """Every stage's enable: the last stage is empty or being taken."""
        return not self.valid or bool(ready)

    def clock(self, adv: bool, entering=None) -> None:
        """The clock edge: with ``adv``, ``entering`` (or a bubble) into the first stage."""
        if adv:
            self.slots = [entering] + self.slots[:-1]


class CreditPipe:
    """A credit pipeline of ``stages`` (hw/elementpipe.CreditFifo): ``stages`` - 1 slots that
    advance every cycle, then a FIFO of ``depth`` entries (the last stage) that the output
    stream takes from; an element issues only while a credit is held (``can_issue``:
    ``depth`` minus the elements issued and not yet taken, counted at the last edge)."""

    def __init__(self, stages: int, depth: int = CREDIT_FIFO_DEPTH):
        self.stages, self.depth = stages, depth
        self.clear()

    def clear(self) -> None:
        self.slots = [None] * (self.stages - 1)
        self.fifo = deque()
        self.credit = self.depth

    @property
    def valid(self) -> bool:
        return bool(self.fifo)

    @property
    def head(self):
        """The element on the output (``None`` when not valid)."""
        return self.fifo[0] if self.fifo else None

    @property
    def can_issue(self) -> bool:
        return self.credit > 0

    @property
    def idle(self) -> bool:
        """No element in a slot or the FIFO."""
        return self.credit == self.depth

    def clock(self, entering, ready: bool) -> None:
        """The clock edge: the head taken if valid and ``ready``, the last slot's element
        written, ``entering`` (or a bubble; only while ``can_issue``) into the first slot."""
        take = self.valid and bool(ready)
        if take:
            self.fifo.popleft()
        if self.slots[-1] is not None:
            self.fifo.append(self.slots[-1])
        self.slots = [entering] + self.slots[:-1]
        self.credit += int(take) - int(entering is not None)


@lru_cache(maxsize=None)
def records(ports: tuple) -> tuple[type, type]:
    """The per-cycle ``Inputs`` and ``Outputs`` record classes of a port set."""
    name = "".join(p.name.capitalize() for p in ports)
    ins = make_dataclass(f"{name}Inputs", [(n, t, field(default_factory=t)) for n, t in record_fields(ports, IN)])
    outs = make_dataclass(f"{name}Outputs", record_fields(ports, OUT))
    return ins, outs


def wrap(value: int, bits: int, signed: bool = True) -> int:
    """``value`` in a register of ``bits`` bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


def rshift_round(x: int, s: int) -> int:
    """codec.fixedpoint.rshift_round in Python integers (exact at every width): a right
    shift with rounding half up for s > 0, a left shift for s < 0."""
    return x << -s if s < 0 else x if s == 0 else (x + (1 << (s - 1))) >> s


def saturate(x: int, bits: int) -> int:
    hi = (1 << (bits - 1)) - 1
    return max(-hi - 1, min(hi, x))


def lanes_of(value) -> tuple:
    """A beat's element field as a tuple of lanes (a plain int for one lane)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def beat_field(elems, lanes: int):
    """The record value of a beat's element field: an int for one lane, a tuple for more."""
    elems = tuple(int(e) for e in elems)
    return elems[0] if lanes == 1 else elems
