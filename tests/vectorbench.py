"""The vector unit's components in Amaranth's simulator through ``hw.simdriver.run_streams``
(several streams, seeded idle cycles and back-pressure): payloads packed and unpacked
through the port descriptions of ``tritforge.vectorports``, and the cycle count from the
first accepted input beat to the last output beat."""
from __future__ import annotations

from dataclasses import dataclass

from tritforge.hw.simdriver import run_streams
from tritforge.ports import by_name


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
    """``hw.simdriver.run_streams`` with field dicts: play ``feeds`` (port name -> list of
    field dicts) into ``dut`` and collect ``sinks`` (port name -> number of beats).
    ``preload`` (port name -> list of field dicts) is fed first, at full rate and untimed
    (e.g. a weight memory)."""
    P = by_name(ports)
    for name in list(feeds) + list(sinks) + list(preload or {}):
        assert name in P, name

    async def setup(ctx):
        for name, values in (preload or {}).items():
            iface = getattr(dut, name)
            for v in values:
                ctx.set(iface.valid, 1)
                ctx.set(iface.payload.as_value(), P[name].pack(v))
                assert ctx.get(iface.ready), f"{name}: not ready while preloading"
                await ctx.tick()
            ctx.set(iface.valid, 0)

    got, when = run_streams(dut, {n: [P[n].pack(v) for v in vs] for n, vs in feeds.items()}, sinks,
                            seed=seed, p_valid=p_valid, p_ready=p_ready, burst=burst, setup=setup,
                            max_cycles=max_cycles, drain=24)
    firsts = [when[n][0] for n in feeds if when[n]]
    lasts = [when[n][-1] for n in sinks if when[n]]
    return BenchResult({n: [P[n].unpack(w) for w in got[n]] for n in sinks},
                       min(firsts) if firsts else -1, max(lasts) if lasts else -1)


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
