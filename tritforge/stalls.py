"""Seeded stall generators: random idle cycles on a source, back-pressure on a sink.

One generator, :class:`Stall`, serves every stream of every bench (the cocotb verification
IP ``hw.verif``, the stepping model's ``JobDriver``, ``hw.simdriver.run_stream``): ``next()`` is called once
per cycle and is True when that cycle is stalled (a source offers nothing, a sink is not
ready). ``p`` is the chance that a cycle starts a stall, ``burst`` the longest run of
stalled cycles one start makes (its length is drawn from 1..burst). The sequence depends
only on the seed and the parameters, so a failing run replays exactly.

A whole bench is described by one dict, the form vector sets store (``codec.vectors``
``VectorCase.stalls``): ``{"idle": p, "bp": p, "burst": n}`` (idle for the sources,
back-pressure for the sinks, the same burst for both; missing keys are 0, 0 and 1).
:func:`stalls_for` turns it into one :class:`Stall` per port, each seeded from the bench
seed and the port's name.
"""
from __future__ import annotations

import random
import zlib

#: the keys of a bench's stall description
STALL_KEYS = ("idle", "bp", "burst")


class Stall:
    """A seeded per-cycle stall generator; ``next()`` is True when the cycle is stalled."""

    def __init__(self, seed: int = 0, p: float = 0.0, burst: int = 1):
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"stall probability p={p}: expected 0 <= p <= 1 (1: never moves)")
        if int(burst) != burst or burst < 1:
            raise ValueError(f"stall burst={burst!r}: expected an integer >= 1")
        self.seed = int(seed)
        self.p = p
        self.burst = int(burst)
        self._rng = random.Random(self.seed)
        self._left = 0

    def next(self) -> bool:
        if self._left > 0:
            self._left -= 1
            return True
        if self.p > 0 and self._rng.random() < self.p:
            self._left = self._rng.randint(1, self.burst) - 1
            return True
        return False

    def describe(self) -> dict:
        return {"seed": self.seed, "p": self.p, "burst": self.burst}

    @classmethod
    def from_dict(cls, d: dict) -> "Stall":
        return cls(d.get("seed", 0), d.get("p", 0.0), d.get("burst", 1))

    def __repr__(self) -> str:
        return f"Stall(seed={self.seed}, p={self.p}, burst={self.burst})"


def port_seed(seed: int, port: str) -> int:
    """The seed of one port's generator: the bench seed mixed with the port's name."""
    return (int(seed) * 1_000_003 + zlib.crc32(port.encode())) & 0xFFFF_FFFF


def check_stalls(stalls: dict | None) -> dict:
    """A bench stall description with its defaults filled in (unknown keys refused)."""
    stalls = dict(stalls or {})
    unknown = sorted(set(stalls) - set(STALL_KEYS))
    if unknown:
        raise ValueError(f"stall description {stalls}: unknown keys {unknown}, expected {STALL_KEYS}")
    return {"idle": float(stalls.get("idle", 0.0)), "bp": float(stalls.get("bp", 0.0)),
            "burst": stalls.get("burst", 1)}


def stalls_for(stalls: dict | None, seed: int, sources=(), sinks=()) -> dict[str, Stall | None]:
    """``{port: Stall or None}``: idle for every source, back-pressure for every sink.

    A port whose probability is 0 gets None (never stalls)."""
    s = check_stalls(stalls)
    out: dict[str, Stall | None] = {}
    for names, p in ((sources, s["idle"]), (sinks, s["bp"])):
        for name in names:
            out[name] = Stall(port_seed(seed, name), p, s["burst"]) if p else None
    # a zero probability still checks the burst
    Stall(0, 0.0, s["burst"])
    return out


def stalled(stall: Stall | None) -> bool:
    """One cycle of ``stall`` (None never stalls)."""
    return stall.next() if stall is not None else False
