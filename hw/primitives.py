"""Primitive sets: how the engine's hard blocks (scale multipliers, activation buffer,
accumulator carry chains) are built. Every set gives the same ports, latencies and cycle behaviour (hw/ENGINE.md), so
simulation, cycle model and tests do not depend on it.

* ``"generic"``: plain Amaranth (``*``, ``lib.memory``), inferred by any synthesis tool
  and run by every simulator;
* ``"ecp5"``: Lattice ECP5 primitives instantiated directly: ``MULT18X18D`` and ``DP16KD``
  with the internal registers Yosys's inference leaves unused (hw/multiplier.py,
  hw/actbuffer.py say which and why), and ``CCU2C`` carry chains that take the scale MAC's
  "tile starts at 0" gate into their own LUTs (hw/gatedadd.py).
"""
from __future__ import annotations

from ..errors import TritforgeError

PRIMITIVES = ("generic", "ecp5")


def check_primitives(name: str, what: str) -> str:
    if name not in PRIMITIVES:
        raise TritforgeError(f"{what} primitives {name!r}: expected one of {PRIMITIVES}")
    return name
