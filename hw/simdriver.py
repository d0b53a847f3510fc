"""Drive components in Amaranth's Python simulator: one input record per cycle
(``PortSim``; ``EngineSim`` for the GEMV engine), or whole streams (``run_streams``).

A driver object gives each cycle's record and sees each cycle's outputs. Records are any
objects with the fields of ``sim.stepmodel.Inputs``; every cycle's outputs come back as a
dict with the fields of ``sim.stepmodel.Outputs`` (duck-typed, so ``hw`` does not import
``sim``). Both are named by the engine's port set (``tritforge.ports``), and so are the
values set here: every port's valid/ready and every payload field, set through the
payload's own layout (``ctx.set(port.payload, {field: value})``), never by bit positions.

The component runs inside a wrapper that owns the ``sync`` clock domain so a record can
assert the synchronous reset. Other components (the attention unit, ...) are driven the
same way by the records of their own port sets.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal, Value
from amaranth.sim import Simulator

from ..hwconfig import HwConfig
from ..ports import IN, OUT, engine_ports, record_fields
from ..stalls import Stall, port_seed
from .engine import GemvEngine

#: the names of every cycle's outputs (the same for every configuration)
OUTPUT_FIELDS = tuple(n for n, _ in record_fields(engine_ports(HwConfig()), OUT))


class _Top(Elaboratable):
    def __init__(self, dut):
        self.dut = dut
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += cd.rst.eq(self.rst)
        m.submodules.dut = self.dut
        return m


class PortSim:
    """One component under Amaranth's simulator, driven and observed by the records of its
    port set (``tritforge.ports``: ``record_fields``); :meth:`run` plays cycle records."""

    def __init__(self, component, ports):
        self.dut = component
        self.ports = ports

    def _drive(self, ctx, rec) -> None:
        e = self.dut
        for p in self.ports:
            if not p.stream:
                continue
            iface = getattr(e, p.name)
            if p.dir != IN:
                ctx.set(iface.ready, getattr(rec, f"{p.name}_ready"))
                continue
            ctx.set(iface.valid, getattr(rec, f"{p.name}_valid"))
            values = {f.name: getattr(rec, p.record(f)) for f in p.fields}
            if p.word:
                ctx.set(iface.payload, values[p.fields[0].name])
            else:
                # a field value wider than its field is cut to it, as the port's wires do
                mask = {f.name: (1 << f.width) - 1 for f in p.fields}
                ctx.set(iface.payload, {f.name: [int(x) & mask[f.name] for x in values[f.name]] if f.count
                                        else int(values[f.name]) & mask[f.name] for f in p.fields})

    def _observe(self, ctx) -> dict:
        e = self.dut
        out = {}
        for p in self.ports:
            iface = getattr(e, p.name)
            if not p.stream:
                out[p.name] = bool(ctx.get(iface))
            elif p.dir == IN:
                out[f"{p.name}_ready"] = bool(ctx.get(iface.ready))
            else:
                out[f"{p.name}_valid"] = bool(ctx.get(iface.valid))
                payload = ctx.get(iface.payload)
                for f in p.fields:
                    v = payload[f.name]
                    out[p.record(f)] = (tuple(int(x) for x in v) if f.count
                                        else bool(v) if f.flag else int(v))
        return out

    def run(self, driver, max_cycles: int, vcd: str | None = None) -> list[tuple]:
        """Play ``driver`` (``inputs()`` / ``observe(inputs, outputs)`` / ``done``, e.g.
        ``sim.stepmodel.JobDriver``) until it is done or ``max_cycles`` have passed.
        Returns ``(inputs, outputs)`` of every cycle."""
        top = _Top(self.dut)
        sim = Simulator(top)
        sim.add_clock(1e-8, domain="sync")
        trace: list[tuple] = []

        async def bench(ctx):
            while not driver.done and len(trace) < max_cycles:
                rec = driver.inputs()
                ctx.set(top.rst, rec.rst)
                self._drive(ctx, rec)
                out = self._observe(ctx)
                trace.append((rec, out))
                driver.observe(rec, out)
                await ctx.tick()

        sim.add_testbench(bench)
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()
        return trace


class EngineSim(PortSim):
    """One GEMV engine under Amaranth's simulator (its port set: ``engine_ports``)."""

    def __init__(self, engine: GemvEngine):
        super().__init__(engine, engine_ports(engine.cfg))
        self.engine = engine
        self.cfg = engine.cfg


def run_streams(component, inputs: dict, outputs: dict, *, seed: int = 0, p_valid: float = 1.0,
                p_ready: float = 1.0, burst: int = 1, setup=None, max_cycles: int = 100_000,
                drain: int = 16, min_cycles: int = 0, final: dict | None = None):
    """Feed several input streams of ``component`` and collect several output streams.

    ``inputs``: port name -> raw payload integers, offered in order; ``outputs``: port name
    -> the number of beats expected. Every cycle each input's ``valid`` is high with chance
    ``p_valid`` (while its items remain; its own ``tritforge.stalls.Stall`` per port, stalls
    of up to ``burst`` cycles) and each output's ``ready`` with chance ``p_ready``; payloads
    of idle input cycles are random garbage. Checks the stream rule on the way (a valid
    output stays valid and holds its payload until taken). ``setup(ctx)``, if given, runs first. Runs until every output has given its
    beats (and at least ``min_cycles`` cycles), then checks for ``drain`` cycles that no
    extra beat comes. ``final``, if given, names flag ports (e.g. ``{"err": None}``) whose
    values after the drain are filled in.

    Returns ``(beats, cycles)``: port name -> the accepted raw payloads in order, and port
    name -> the cycle of each accepted beat (counted from the first cycle after ``setup``),
    inputs and outputs alike, for cycle-count checks.
    """
    import random

    rng = random.Random(seed)             # garbage payloads of idle cycles
    idle = {n: Stall(port_seed(seed, n), 1.0 - p_valid, burst) for n in inputs}
    bp = {n: Stall(port_seed(seed, n), 1.0 - p_ready, burst) for n in outputs}
    sim = Simulator(component)
    sim.add_clock(1e-8)
    ins = {n: getattr(component, n) for n in inputs}
    outs = {n: getattr(component, n) for n in outputs}
    width = {n: len(Value.cast(p.payload)) for n, p in ins.items()}
    items = {n: list(v) for n, v in inputs.items()}
    got: dict = {n: [] for n in outputs}
    when: dict = {n: [] for n in list(inputs) + list(outputs)}

    async def bench(ctx):
        if setup is not None:
            await setup(ctx)
        pos = dict.fromkeys(inputs, 0)
        held = dict.fromkeys(outputs)
        for cycle in range(max_cycles):
            if cycle >= min_cycles and all(len(got[n]) == k for n, k in outputs.items()):
                break
            offered = {}
            for n, port in ins.items():
                offered[n] = pos[n] < len(items[n]) and not idle[n].next()
                ctx.set(port.valid, offered[n])
                ctx.set(Value.cast(port.payload), items[n][pos[n]] if offered[n] else rng.getrandbits(width[n]))
            for n, port in outs.items():
                ready = not bp[n].next()
                ctx.set(port.ready, ready)
                ov = ctx.get(port.valid)
                op = ctx.get(Value.cast(port.payload))
                if held[n] is not None and not ov:
                    raise AssertionError(f"{n}: a valid output beat withdrawn before it was taken")
                if held[n] is not None and op != held[n]:
                    raise AssertionError(f"{n}: output payload changed while valid and not taken")
                if ov and ready:
                    got[n].append(op)
                    when[n].append(cycle)
                    held[n] = None
                elif ov:
                    held[n] = op
            for n, port in ins.items():
                if offered[n] and ctx.get(port.ready):
                    pos[n] += 1
                    when[n].append(cycle)
            await ctx.tick()
        else:
            raise AssertionError(f"streams did not finish in {max_cycles} cycles ("
                                 + ", ".join(f"{n}: {len(got[n])} of {k}" for n, k in outputs.items()) + ")")
        # drain: nothing more may come out
        for port in ins.values():
            ctx.set(port.valid, 0)
        for port in outs.values():
            ctx.set(port.ready, 1)
        for _ in range(drain):
            for n, port in outs.items():
                if ctx.get(port.valid):
                    raise AssertionError(f"{n}: an output beat beyond the expected {outputs[n]}")
            await ctx.tick()
        for name in final or {}:
            final[name] = ctx.get(getattr(component, name))

    sim.add_testbench(bench)
    sim.run()
    return got, when


def run_stream(component, items, *, seed: int = 0, p_valid: float = 1.0, p_ready: float = 1.0,
               setup=None, n_out: int | None = None, max_cycles: int = 100_000) -> list[int]:
    """``run_streams`` for a component with one input ``i`` and one output ``o``: feeds the
    raw payload integers ``items`` and returns the accepted output payloads in order
    (``n_out`` of them, default one per item)."""
    items = list(items)
    got, _ = run_streams(component, {"i": items}, {"o": len(items) if n_out is None else n_out},
                         seed=seed, p_valid=p_valid, p_ready=p_ready, setup=setup, max_cycles=max_cycles)
    return got["o"]
