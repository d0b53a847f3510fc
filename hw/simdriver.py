"""Drive ``GemvEngine`` in Amaranth's Python simulator, one input record per cycle.

A driver object gives each cycle's record and sees each cycle's outputs. Records are any objects with the attributes of ``sim.stepmodel.Inputs`` (``rst``,
``cmd_valid``, ``last_group``, ``last_tile``, ``load_act``, ``cb_valid``, ``cb_index``,
``cb_mantissa``, ``cb_shift``, ``act_valid``, ``act_word``, ``w_valid``, ``w_beat``,
``res_ready``); every cycle's outputs come back as a dict with the field names of
``sim.stepmodel.Outputs``. (Duck-typed, so ``hw`` does not import ``sim``.)

The engine runs inside a wrapper that owns the ``sync`` clock domain so a record can
assert the synchronous reset. Payloads are packed and unpacked with the ports' own
``data`` layouts, never by hand-counted bit positions.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from .engine import GemvEngine, port_layouts

OUTPUT_FIELDS = ("cmd_ready", "cb_ready", "act_ready", "w_ready", "res_valid", "res_acc",
                 "res_vector", "res_last", "err", "busy")


def _field(layout, name):
    f = layout[name]
    return f.offset, f.width


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


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
        lay = port_layouts(self.cfg)
        self.cmd_fields = {n: _field(lay["cmd"], n) for n in ("last_group", "last_tile", "load_act")}
        self.cb_fields = {n: _field(lay["cb"], n) for n in ("index", "mantissa", "shift")}
        res = lay["res"]
        acc_off, _ = _field(res, "acc")
        self.acc_bits = self.cfg.widths.acc
        self.acc_offsets = [acc_off + r * self.acc_bits for r in range(self.cfg.rows)]
        self.res_vector = _field(res, "vector")
        self.res_last = _field(res, "last")

    def pack(self, fields: dict, values: dict) -> int:
        word = 0
        for name, (off, width) in fields.items():
            word |= (int(values[name]) & ((1 << width) - 1)) << off
        return word

    def unpack_res(self, word: int) -> dict:
        mask = (1 << self.acc_bits) - 1
        acc = tuple(_signed((word >> off) & mask, self.acc_bits) for off in self.acc_offsets)
        voff, vw = self.res_vector
        loff, _ = self.res_last
        return {"res_acc": acc, "res_vector": (word >> voff) & ((1 << vw) - 1),
                "res_last": bool((word >> loff) & 1)}

    def run(self, driver, max_cycles: int, vcd: str | None = None) -> list[tuple]:
        """Play ``driver`` (``inputs()`` / ``observe(inputs, outputs)`` / ``done``, e.g.
        ``sim.stepmodel.JobDriver``) until it is done or ``max_cycles`` have passed.
        Returns ``(inputs, outputs)`` of every cycle."""
        top = _Top(self.engine)
        e = self.engine
        sim = Simulator(top)
        sim.add_clock(1e-8, domain="sync")
        trace: list[tuple] = []

        async def bench(ctx):
            while not driver.done and len(trace) < max_cycles:
                rec = driver.inputs()
                ctx.set(top.rst, rec.rst)
                ctx.set(e.cmd.valid, rec.cmd_valid)
                ctx.set(e.cmd.payload.as_value(), self.pack(self.cmd_fields, {
                    "last_group": rec.last_group, "last_tile": rec.last_tile,
                    "load_act": rec.load_act}))
                ctx.set(e.cb.valid, rec.cb_valid)
                ctx.set(e.cb.payload.as_value(), self.pack(self.cb_fields, {
                    "index": rec.cb_index, "mantissa": rec.cb_mantissa, "shift": rec.cb_shift}))
                ctx.set(e.act.valid, rec.act_valid)
                ctx.set(e.act.payload, rec.act_word)
                ctx.set(e.w.valid, rec.w_valid)
                ctx.set(e.w.payload, rec.w_beat)
                ctx.set(e.res.ready, rec.res_ready)
                out = {"cmd_ready": bool(ctx.get(e.cmd.ready)), "cb_ready": bool(ctx.get(e.cb.ready)),
                       "act_ready": bool(ctx.get(e.act.ready)), "w_ready": bool(ctx.get(e.w.ready)),
                       "res_valid": bool(ctx.get(e.res.valid)), "err": bool(ctx.get(e.err)),
                       "busy": bool(ctx.get(e.busy))}
                out.update(self.unpack_res(ctx.get(e.res.payload.as_value())))
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
    ``o.ready`` with chance ``p_ready``; payloads of idle input cycles are random garbage.
    Checks the stream rule on the way (a valid output holds its payload until taken).
    ``setup(ctx)``, if given, runs first (e.g. codebook writes). Runs until ``n_out``
    output beats (default: one per item) were taken, then checks no extra beat is pending.
    Returns the raw payload integers of the accepted output beats, in order.
    """
    import random

    rng = random.Random(seed)
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
            valid = n < len(items) and rng.random() < p_valid
            ctx.set(component.i.valid, valid)
            ctx.set(component.i.payload.as_value(), items[n] if valid else rng.getrandbits(width))
            ready = rng.random() < p_ready
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
