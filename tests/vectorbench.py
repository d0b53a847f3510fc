"""A stream bench for the vector unit's components in Amaranth's simulator: several input
and output streams, seeded random idle cycles and back-pressure (``tritforge.stalls``),
payloads packed and unpacked through the port descriptions of ``tritforge.vectorports``,
and the cycle count from the first accepted input beat to the last output beat."""
from __future__ import annotations

import random
from dataclasses import dataclass

from amaranth.sim import Simulator

from tritforge.ports import by_name
from tritforge.stalls import Stall, port_seed


@dataclass
class BenchResult:
    out: dict            # port name -> list of unpacked payload dicts
    first_in: int        # cycle of the first accepted beat on a timed input port
    last_out: int        # cycle of the last output beat

    @property
    def cycles(self) -> int:
        """Cycles from the first accepted input beat to the last output beat, both counted."""
        return self.last_out - self.first_in + 1


def run_ports(dut, ports, feeds: dict, sinks: dict, *, seed: int = 0, p_valid: float = 1.0,
              p_ready: float = 1.0, burst: int = 3, preload: dict | None = None,
              max_cycles: int = 200_000) -> BenchResult:
    """Play ``feeds`` (port name -> list of field dicts) into ``dut`` and collect ``sinks``
    (port name -> number of beats). ``preload`` (port name -> list of field dicts) is fed
    first, at full rate and untimed (e.g. a weight memory). Checks the stream rule on every
    output (a valid beat holds its payload until taken) and that nothing more comes out."""
    rng = random.Random(seed)
    P = by_name(ports)
    for name in list(feeds) + list(sinks) + list(preload or {}):
        assert name in P, name
    idle = {n: Stall(port_seed(seed, n), 1.0 - p_valid, burst) for n in feeds}
    bp = {n: Stall(port_seed(seed, n), 1.0 - p_ready, burst) for n in sinks}
    words = {n: [P[n].pack(v) for v in vs] for n, vs in feeds.items()}
    got: dict = {n: [] for n in sinks}
    res = BenchResult(got, -1, -1)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for name, values in (preload or {}).items():
            iface = getattr(dut, name)
            for v in values:
                ctx.set(iface.valid, 1)
                ctx.set(iface.payload.as_value(), P[name].pack(v))
                assert ctx.get(iface.ready), f"{name}: not ready while preloading"
                await ctx.tick()
            ctx.set(iface.valid, 0)
        pos = {n: 0 for n in feeds}
        held: dict = {n: None for n in sinks}
        for cycle in range(max_cycles):
            if all(len(got[n]) == k for n, k in sinks.items()):
                break
            offered = {}
            for n, ws in words.items():
                iface = getattr(dut, n)
                valid = pos[n] < len(ws) and not idle[n].next()
                offered[n] = valid
                ctx.set(iface.valid, valid)
                ctx.set(iface.payload.as_value(),
                        ws[pos[n]] if valid else rng.getrandbits(P[n].width))
            readies = {}
            for n in sinks:
                readies[n] = not bp[n].next()
                ctx.set(getattr(dut, n).ready, readies[n])
            for n in sinks:
                iface = getattr(dut, n)
                ov, op = ctx.get(iface.valid), ctx.get(iface.payload.as_value())
                if held[n] is not None and ov == 0:
                    raise AssertionError(f"{n}: valid beat withdrawn before it was taken")
                if held[n] is not None and op != held[n]:
                    raise AssertionError(f"{n}: payload changed while valid and not taken")
                if ov and readies[n]:
                    got[n].append(P[n].unpack(op))
                    res.last_out = cycle
                    held[n] = None
                elif ov:
                    held[n] = op
            for n in words:
                if offered[n] and ctx.get(getattr(dut, n).ready):
                    pos[n] += 1
                    if res.first_in < 0:
                        res.first_in = cycle
            await ctx.tick()
        else:
            raise AssertionError(f"not finished in {max_cycles} cycles: "
                                 f"{ {n: len(v) for n, v in got.items()} } of {sinks}")
        for n in words:
            ctx.set(getattr(dut, n).valid, 0)
        for n in sinks:
            ctx.set(getattr(dut, n).ready, 1)
        for _ in range(24):
            for n in sinks:
                if ctx.get(getattr(dut, n).valid):
                    raise AssertionError(f"{n}: a beat beyond the expected {sinks[n]}")
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return res


def convert(dut, ports) -> str:
    """The component's Verilog (amaranth.back.verilog), its stream ports named."""
    from amaranth.back import verilog
    text = verilog.convert(dut, name="top")
    for p in ports:
        assert f"{p.name}__valid" in text and f"{p.name}__ready" in text, p.name
    return text


def to_beats(elements: list, lanes: int, lane_fields) -> list:
    """Per-element field dicts -> beats of ``lanes`` elements: the lane fields become
    sequences, every other field is the group's first element's (one lane: unchanged)."""
    if lanes == 1:
        return list(elements)
    assert len(elements) % lanes == 0
    out = []
    for b in range(0, len(elements), lanes):
        group = elements[b:b + lanes]
        beat = dict(group[-1])
        for f in lane_fields:
            beat[f] = [e[f] for e in group]
        out.append(beat)
    return out


def from_beats(beats: list, lanes: int, lane_fields) -> list:
    """The inverse of ``to_beats``: one dict per element, the beat's other fields repeated."""
    if lanes == 1:
        return list(beats)
    out = []
    for beat in beats:
        for k in range(lanes):
            e = dict(beat)
            for f in lane_fields:
                e[f] = beat[f][k]
            out.append(e)
    return out
