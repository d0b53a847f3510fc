"""cocotb testbench building blocks shared by the per-unit benches (tests/cocotb/<unit>/).

One cycle loop drives every stream of a design, so the bench knows the exact cycle of
every transfer (and can compare a cycle model every cycle):

* at the falling edge, each :class:`StreamSource` decides whether it offers its next item
  (``valid``) this cycle and each :class:`StreamSink` whether it takes one (``ready``),
  from seeded random idle / back-pressure generators;
* in the ReadOnly phase that follows, the settled ``valid``/``ready`` of the cycle are
  sampled: a transfer happens at the next rising edge exactly when both are high.

Ports are bound by Amaranth's Verilog names: stream ``x`` is ``x__payload``,
``x__valid``, ``x__ready``; structured payloads are flat vectors, laid out by the
component's own ``amaranth.lib.data`` layouts (:func:`pack`, :func:`unpack`).
"""
from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


class Pattern:
    """A seeded per-cycle on/off generator: ``next()`` is True when the cycle is *blocked*.

    ``p`` is the probability that a cycle is blocked; ``burst`` > 1 makes blocked cycles
    come in runs of up to that length (random idle and back-pressure of both kinds).
    """

    def __init__(self, seed: int, p: float = 0.0, burst: int = 1):
        self.rng = random.Random(seed)
        self.p = float(p)
        self.burst = max(1, int(burst))
        self._run = 0

    def next(self) -> bool:
        if self._run > 0:
            self._run -= 1
            return True
        if self.p > 0 and self.rng.random() < self.p:
            self._run = self.rng.randint(1, self.burst) - 1
            return True
        return False

    def describe(self) -> dict:
        return {"p": self.p, "burst": self.burst}


NEVER = None   # a pattern argument of None never blocks


def _blocked(pattern: Pattern | None) -> bool:
    return pattern.next() if pattern is not None else False


def value(handle) -> int:
    return int(handle.value)


class StreamSource:
    """Drives ``<name>__valid``/``__payload`` from a queue of integers, honouring ``__ready``."""

    def __init__(self, dut, name: str, idle: Pattern | None = None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.idle = idle
        self.queue: deque[int] = deque()
        self.accepted: list[int] = []       #: cycle of every accepted item
        self._offer = False
        self.valid.value = 0

    def send(self, items) -> None:
        self.queue.extend(int(x) for x in items)

    def drive(self, cycle: int, hold: bool = False) -> None:
        self._offer = bool(self.queue) and not _blocked(self.idle) and not hold
        if self._offer:
            self.payload.value = self.queue[0]
        self.valid.value = int(self._offer)

    def sample(self, cycle: int) -> bool:
        if self._offer and value(self.ready):
            self.queue.popleft()
            self.accepted.append(cycle)
            return True
        return False

    @property
    def offered(self) -> int | None:
        """The payload offered (valid high) in the current cycle, else None."""
        return self.queue[0] if self._offer and self.queue else None

    @property
    def offering(self) -> bool:
        return self._offer

    def flush(self) -> None:
        """Forget queued items (valid drops at the next drive or reset)."""
        self.queue.clear()
        self._offer = False


class StreamSink:
    """Takes ``<name>__payload`` beats when ``__valid``, with back-pressure on ``__ready``."""

    def __init__(self, dut, name: str, backpressure: Pattern | None = None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.backpressure = backpressure
        self.items: deque[tuple[int, int]] = deque()   #: (cycle, payload) of each accepted beat
        self._take = True
        self.ready.value = 0

    def drive(self, cycle: int) -> None:
        self._take = not _blocked(self.backpressure)
        self.ready.value = int(self._take)

    def sample(self, cycle: int) -> bool:
        if self._take and value(self.valid):
            self.items.append((cycle, int(self.payload.value)))
            return True
        return False


class TB:
    """Clock, reset and the cycle loop over the bound streams."""

    def __init__(self, dut, period_ns: int = 10):
        self.dut = dut
        self.sources: list[StreamSource] = []
        self.sinks: list[StreamSink] = []
        self.cycle = 0
        self.observers = []          #: callables(cycle) run in ReadOnly before sampling
        self.rst_pending = 0         #: cycles of synchronous reset still to drive
        self.rst_now = False         #: reset driven in the current cycle
        self.log = dut._log
        dut.rst.value = 1
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())

    def source(self, name: str, idle: Pattern | None = None) -> StreamSource:
        s = StreamSource(self.dut, name, idle)
        self.sources.append(s)
        return s

    def sink(self, name: str, backpressure: Pattern | None = None) -> StreamSink:
        s = StreamSink(self.dut, name, backpressure)
        self.sinks.append(s)
        return s

    async def reset(self, cycles: int = 2) -> None:
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 1
        for s in self.sources:
            s.valid.value = 0
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def step(self) -> None:
        """One clock cycle: drive at the falling edge, sample settled values in ReadOnly."""
        await FallingEdge(self.dut.clk)
        self.rst_now = self.rst_pending > 0
        if self.rst_now:
            self.rst_pending -= 1
        self.dut.rst.value = int(self.rst_now)
        for s in self.sources:        # sources hold back while reset is asserted
            s.drive(self.cycle, hold=self.rst_now)
        for s in self.sinks:
            s.drive(self.cycle)
        await ReadOnly()
        for obs in self.observers:
            obs(self.cycle)
        for s in self.sources:
            s.sample(self.cycle)
        if not self.rst_now:          # a result beat offered in a reset cycle is dropped
            for s in self.sinks:
                s.sample(self.cycle)
        self.cycle += 1

    async def run_until(self, done, limit: int, what: str = "run") -> int:
        """Step until ``done()`` is true (checked after each cycle); fail after ``limit`` cycles."""
        start = self.cycle
        while not done():
            if self.cycle - start >= limit:
                raise AssertionError(f"{what}: not finished after {limit} cycles")
            await self.step()
        return self.cycle - start


# --- payload layouts ---------------------------------------------------------------------

def pack(layout, fields: dict) -> int:
    """A Python dict/list value of an ``amaranth.lib.data`` layout as one unsigned integer."""
    return layout.const(fields).as_value().value


def unpack(layout, bits: int):
    """An integer payload as an ``amaranth.lib.data.Const`` (index it like the RTL view)."""
    from amaranth.lib import data
    return data.Const(layout, bits)


class Payload:
    """Pack / unpack one port's payload from the generated Verilog's JSON sidecar.

    ``port`` is an entry of the sidecar's ``ports`` (hw/verilog.py): ``width`` and, for
    structs, ``fields`` with ``offset``/``width``/``signed`` and, for arrays, ``count``,
    ``stride`` and ``elem_signed``. The bench thus reads bit positions from the file that
    ships with the Verilog instead of repeating them.
    """

    def __init__(self, port: dict):
        self.name = port["name"]
        self.width = int(port["width"])
        self.fields = {f["name"]: f for f in port.get("fields") or []}

    @staticmethod
    def _signed(v: int, bits: int) -> int:
        return v - (1 << bits) if bits and v >> (bits - 1) & 1 else v

    def pack(self, values: dict) -> int:
        unknown = set(values) - set(self.fields)
        if unknown:
            raise KeyError(f"{self.name}: no fields {sorted(unknown)}")
        word = 0
        for name, f in self.fields.items():
            v = values.get(name, 0)
            if "count" in f:
                mask = (1 << f["stride"]) - 1
                for i, e in enumerate(v):
                    word |= (int(e) & mask) << (f["offset"] + i * f["stride"])
            else:
                word |= (int(v) & ((1 << f["width"]) - 1)) << f["offset"]
        return word

    def unpack(self, word: int) -> dict:
        out = {}
        for name, f in self.fields.items():
            if "count" in f:
                mask = (1 << f["stride"]) - 1
                vals = [(word >> (f["offset"] + i * f["stride"])) & mask for i in range(f["count"])]
                out[name] = tuple(self._signed(v, f["stride"]) if f.get("elem_signed") else v
                                  for v in vals)
            else:
                v = (word >> f["offset"]) & ((1 << f["width"]) - 1)
                out[name] = self._signed(v, f["width"]) if f.get("signed") else v
        return out


def sidecar_payloads(sidecar: dict) -> dict[str, Payload]:
    """``{stream name: Payload}`` for every ``<stream>__payload`` port of a sidecar."""
    return {p["name"][:-len("__payload")]: Payload(p) for p in sidecar["ports"]
            if p["name"].endswith("__payload")}
