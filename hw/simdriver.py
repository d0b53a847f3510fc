"""Drive ``GemvEngine`` in Amaranth's Python simulator, one input record per cycle.

A driver object gives each cycle's record and sees each cycle's outputs. Records are any
objects with the fields of ``sim.stepmodel.Inputs``; every cycle's outputs come back as a
dict with the fields of ``sim.stepmodel.Outputs`` (duck-typed, so ``hw`` does not import
``sim``). Both are named by the engine's port set (``tritforge.ports``), and so are the
values set here: every port's valid/ready and every payload field, set through the
payload's own layout (``ctx.set(port.payload, {field: value})``), never by bit positions.

The engine runs inside a wrapper that owns the ``sync`` clock domain so a record can
assert the synchronous reset.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from ..hwconfig import HwConfig
from ..ports import IN, OUT, engine_ports, record_fields
from ..stalls import Stall, port_seed
from .engine import GemvEngine

#: the names of every cycle's outputs (the same for every configuration)
OUTPUT_FIELDS = tuple(n for n, _ in record_fields(engine_ports(HwConfig()), OUT))


class _Top(Elaboratable):
    def __init__(self, engine: GemvEngine):
        self.engine = engine
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += cd.rst.eq(self.rst)
        m.submodules.engine = self.engine
        return m


class EngineSim:
    """One engine under Amaranth's simulator; :meth:`run` plays a list of cycle records."""

    def __init__(self, engine: GemvEngine):
        self.engine = engine
        self.cfg = engine.cfg
        self.ports = engine_ports(self.cfg)

    def _drive(self, ctx, rec) -> None:
        e = self.engine
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
                ctx.set(iface.payload, {f.name: int(values[f.name]) & ((1 << f.width) - 1)
                                        for f in p.fields})

    def _observe(self, ctx) -> dict:
        e = self.engine
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
        top = _Top(self.engine)
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


def run_stream(component, items, *, seed: int = 0, p_valid: float = 1.0, p_ready: float = 1.0,
               setup=None, n_out: int | None = None, max_cycles: int = 100_000) -> list[int]:
    """Feed raw payload integers ``items`` into ``component.i`` and collect ``component.o``.

    Every cycle ``i.valid`` is high with chance ``p_valid`` (while items remain) and
    ``o.ready`` with chance ``p_ready`` (``tritforge.stalls.Stall``); payloads of idle input cycles are random garbage.
    Checks the stream rule on the way (a valid output holds its payload until taken).
    ``setup(ctx)``, if given, runs first (e.g. codebook writes). Runs until ``n_out``
    output beats (default: one per item) were taken, then checks no extra beat is pending.
    Returns the raw payload integers of the accepted output beats, in order.
    """
    import random

    rng = random.Random(seed)             # garbage payloads of idle cycles
    idle = Stall(port_seed(seed, "i"), 1.0 - p_valid)
    bp = Stall(port_seed(seed, "o"), 1.0 - p_ready)
    sim = Simulator(component)
    sim.add_clock(1e-8)
    width = len(component.i.payload.as_value())
    got: list[int] = []
    items = list(items)
    want = len(items) if n_out is None else n_out

    async def bench(ctx):
        if setup is not None:
            await setup(ctx)
        n = 0
        held = None
        for _ in range(max_cycles):
            if len(got) == want:
                break
            valid = n < len(items) and not idle.next()
            ctx.set(component.i.valid, valid)
            ctx.set(component.i.payload.as_value(), items[n] if valid else rng.getrandbits(width))
            ready = not bp.next()
            ctx.set(component.o.ready, ready)
            ov = ctx.get(component.o.valid)
            op = ctx.get(component.o.payload.as_value())
            if held is not None and ov and op != held:
                raise AssertionError("output payload changed while valid and not taken")
            if ov and ready:
                got.append(op)
                held = None
            elif ov:
                held = op
            if valid and ctx.get(component.i.ready):
                n += 1
            await ctx.tick()
        else:
            raise AssertionError(f"stream did not finish in {max_cycles} cycles "
                                 f"({len(got)} of {want} outputs)")
        # drain: nothing more may come out
        ctx.set(component.i.valid, 0)
        ctx.set(component.o.ready, 1)
        for _ in range(16):
            if ctx.get(component.o.valid):
                raise AssertionError(f"an output beat beyond the expected {want}")
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return got
