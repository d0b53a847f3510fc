"""Lockstep of an RTL component and its per-cycle stepping model in Amaranth's simulator:
``StreamsDriver`` offers each input stream's items with seeded random idle cycles (random
payloads then) and random back-pressure, an optional reset in the middle; ``lockstep``
replays the same records into the model and compares every output of every cycle (a
payload only while its valid is high, and not where the model gives None: a payload the
unit's contract leaves undefined, such as the output of a job that raised ``err``). A model has ``ports`` (its port set) and
``Inputs`` (its input record type)."""
from __future__ import annotations

import random

from tritforge.hw.simdriver import PortSim
from tritforge.ports import IN, OUT


class StreamsDriver:
    """Offers each input port's items (field dicts) in order with random idle cycles
    (random payloads then) and random ready on each output, for ``cycles`` cycles; a reset
    in cycle ``reset_at`` starts every stream of ``restart`` (default: all) again from its
    first item."""

    def __init__(self, model, items, seed, p_valid=0.7, p_ready=0.6, reset_at=None, cycles=400,
                 restart=None):
        self.model, self.items = model, items
        self.restart = set(items) if restart is None else set(restart)
        self.ins = [p for p in model.ports if p.dir == IN]
        self.outs = [p for p in model.ports if p.dir == OUT and p.stream]
        self.pos = dict.fromkeys(items, 0)
        self.rng = random.Random(seed)
        self.p_valid, self.p_ready = p_valid, p_ready
        self.reset_at, self.cycle, self.cycles = reset_at, 0, cycles
        self.records = []

    @property
    def done(self):
        return self.cycle >= self.cycles

    def inputs(self):
        rec = self.model.Inputs(rst=self.cycle == self.reset_at)
        for port in self.ins:
            items = self.items[port.name]
            valid = self.pos[port.name] < len(items) and self.rng.random() < self.p_valid
            fields = items[self.pos[port.name]] if valid else port.unpack(self.rng.getrandbits(port.width))
            setattr(rec, f"{port.name}_valid", valid)
            for f in port.fields:
                setattr(rec, port.record(f), fields[f.name])
        for port in self.outs:
            setattr(rec, f"{port.name}_ready", self.rng.random() < self.p_ready)
        return rec

    def observe(self, rec, out):
        self.records.append((rec, out))
        self.cycle += 1
        for port in self.ins:
            if rec.rst and port.name in self.restart:
                self.pos[port.name] = 0
                continue
            if getattr(rec, f"{port.name}_valid") and out[f"{port.name}_ready"]:
                self.pos[port.name] += 1


def lockstep(dut, model, items, flags=None, **kw):
    """Runs ``dut`` under a StreamsDriver, then ``model`` on the same records; asserts
    equality in every cycle. Returns the output beats taken after the last reset, per
    output port; ``flags``, if given, is filled with the flag outputs of the last cycle."""
    drv = StreamsDriver(model, items, **kw)
    PortSim(dut, model.ports).run(drv, max_cycles=drv.cycles)
    outs = [p for p in model.ports if p.dir == OUT and p.stream]
    taken = dict.fromkeys((p.name for p in outs), 0)
    for n, (rec, rtl) in enumerate(drv.records):
        want = vars(model.step(rec))
        got = dict(rtl)
        for p in outs:
            if not got[f"{p.name}_valid"]:
                got.update({p.record(f): None for f in p.fields})
            got.update({p.record(f): None for f in p.fields if want[p.record(f)] is None})
        assert got == want, f"cycle {n}: " + ", ".join(
            f"{k}: rtl {got[k]} model {want[k]}" for k in want if got[k] != want[k])
        for p in outs:
            taken[p.name] = 0 if rec.rst else taken[p.name] + (rtl[f"{p.name}_valid"] and getattr(rec, f"{p.name}_ready"))
    if flags is not None and drv.records:
        last = drv.records[-1][1]
        flags.update({p.name: last[p.name] for p in model.ports if not p.stream})
    return taken
