"""Valid/ready stream driver and monitor for Amaranth-style Verilog ports, and the cycle loop.

Ports are bound by the names Amaranth gives a ``lib.stream`` interface in Verilog: stream
``x`` is ``x__payload``, ``x__valid``, ``x__ready``. One cycle loop (:class:`Bench`) moves
every bound stream, so a bench knows the exact cycle of every transfer and can compare a
cycle model in every cycle:

* at the falling edge each :class:`StreamSource` decides whether it offers its next item
  this cycle (``valid``) and each :class:`StreamSink` whether it takes one (``ready``),
  from their seeded :class:`~.stalls.Stall` generators;
* in the ReadOnly phase that follows, the settled values of the cycle are sampled: a
  transfer happens at the next rising edge exactly when ``valid`` and ``ready`` are both
  high. Observers (e.g. :class:`~.model.ModelChecker`) run first, then the streams.

A source re-decides every cycle whether it offers its head item (a stalled cycle drops
``valid`` even after an earlier offer), which the engine's ports accept; a sink checks
the output rule: a valid beat not taken keeps its payload until it is.
"""
from __future__ import annotations

from collections import deque

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from ...stalls import Stall, stalled


class Pace:
    """A memory's pace on a source: ``rate`` beats per cycle on average (a bucket of credit
    filled by ``rate`` every cycle; at most ``burst`` beats are banked while the source is
    not taken), the first beat not before ``latency`` cycles after the start."""

    def __init__(self, rate: float, latency: int = 0, burst: float = 1.0):
        if not 0 < rate <= 1 or latency < 0 or burst < 1:
            raise ValueError(f"pace rate={rate} latency={latency} burst={burst}: expected 0 < rate <= 1, "
                             "latency >= 0, burst >= 1")
        self.rate, self.latency, self.burst = float(rate), int(latency), float(burst)
        self.restart()

    def restart(self) -> None:
        self.cycle, self.credit = 0, 0.0

    def ready(self) -> bool:
        return self.cycle >= self.latency and self.credit >= 1.0

    def tick(self, took: bool) -> None:
        if took:
            self.credit -= 1.0
        self.cycle += 1
        if self.cycle > self.latency:
            # the bank is capped before the cycle's fill, so a fractional rate is never lost
            self.credit = min(self.burst, self.credit) + self.rate


class StreamSource:
    """Drives ``<name>__valid``/``__payload`` from a queue of integers, honouring ``__ready``;
    a ``pace`` (``Pace``) limits how fast a memory serves it."""

    def __init__(self, dut, name: str, idle: Stall | None = None, pace: Pace | None = None):
        self.name = name
        self.pace = pace
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.width = len(self.payload)
        self.idle = idle
        self.queue: deque[int] = deque()
        self.accepted: list[int] = []       #: cycle of every accepted item
        self._offer = False
        self.valid.value = 0

    def send(self, items) -> None:
        """Queue payload integers (each must fit the port)."""
        items = [int(x) for x in items]
        for x in items:
            if not 0 <= x < 1 << self.width:
                raise ValueError(f"{self.name}: payload {x:#x} does not fit {self.width} bits")
        self.queue.extend(items)

    def drive(self, hold: bool = False) -> None:
        paced = self.pace is None or self.pace.ready()
        self._offer = bool(self.queue) and not stalled(self.idle) and not hold and paced
        if self._offer:
            self.payload.value = self.queue[0]
        self.valid.value = int(self._offer)

    def sample(self, cycle: int) -> bool:
        took = self._offer and bool(int(self.ready.value))
        if took:
            self.queue.popleft()
            self.accepted.append(cycle)
        if self.pace is not None:
            self.pace.tick(took)
        return took

    @property
    def offered(self) -> int | None:
        """The payload offered (valid high) in the current cycle, else None."""
        return self.queue[0] if self._offer and self.queue else None

    def flush(self) -> None:
        """Forget queued items (valid drops at the next cycle)."""
        self.queue.clear()
        self._offer = False


class StreamSink:
    """Takes ``<name>__payload`` beats while ``__valid``, with back-pressure on ``__ready``."""

    def __init__(self, dut, name: str, backpressure: Stall | None = None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.backpressure = backpressure
        self.items: deque[tuple[int, int]] = deque()   #: (cycle, payload) of each accepted beat
        self._take = True
        self._held: int | None = None        #: payload of a valid beat not taken last cycle
        self.ready.value = 0

    @property
    def taking(self) -> bool:
        """``ready`` as driven in the current cycle."""
        return self._take

    def drive(self) -> None:
        self._take = not stalled(self.backpressure)
        self.ready.value = int(self._take)

    def sample(self, cycle: int) -> bool:
        if not int(self.valid.value):
            self._held = None
            return False
        word = int(self.payload.value)
        if self._held is not None and word != self._held:
            raise AssertionError(f"{self.name}: cycle {cycle}: payload changed from {self._held:#x} "
                                 f"to {word:#x} while valid and not taken")
        if self._take:
            self.items.append((cycle, word))
            self._held = None
            return True
        self._held = word
        return False

    def forget(self) -> None:
        """Drop the held-payload check (after a reset, the beat may be gone)."""
        self._held = None


class Bench:
    """Clock, synchronous reset and the cycle loop over the bound streams of ``dut``.

    ``dut`` has ports ``clk`` and ``rst`` (active high, synchronous: Amaranth's defaults).
    """

    def __init__(self, dut, period_ns: int = 10, clk: str = "clk", rst: str = "rst"):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.rst = getattr(dut, rst)
        self.sources: list[StreamSource] = []
        self.sinks: list[StreamSink] = []
        self.cycle = 0                #: cycles stepped by :meth:`step`
        self.observers = []           #: callables(cycle) run in ReadOnly before sampling
        self.rst_pending = 0          #: cycles of synchronous reset still to drive
        self.rst_now = False          #: reset driven in the current cycle
        self.rst.value = 1
        Clock(self.clk, period_ns, unit="ns").start()

    def source(self, name: str, idle: Stall | None = None, pace: Pace | None = None) -> StreamSource:
        s = StreamSource(self.dut, name, idle, pace)
        self.sources.append(s)
        return s

    def sink(self, name: str, backpressure: Stall | None = None) -> StreamSink:
        s = StreamSink(self.dut, name, backpressure)
        self.sinks.append(s)
        return s

    async def reset(self, cycles: int = 2) -> None:
        """Power-on style reset outside the cycle loop (no observer sees these cycles)."""
        await FallingEdge(self.clk)
        self.rst.value = 1
        for s in self.sources:
            s.valid.value = 0
            s._offer = False
        for _ in range(cycles):
            await RisingEdge(self.clk)
        await FallingEdge(self.clk)
        self.rst.value = 0
        for s in self.sinks:
            s.forget()

    async def step(self) -> None:
        """One clock cycle: drive at the falling edge, sample settled values in ReadOnly.

        While ``rst_pending`` > 0 the cycle drives the synchronous reset; sources offer
        nothing then and sinks record no beat (a handshake in a reset cycle does not count,
        hw/ENGINE.md "Errors and reset")."""
        await FallingEdge(self.clk)
        self.rst_now = self.rst_pending > 0
        if self.rst_now:
            self.rst_pending -= 1
        self.rst.value = int(self.rst_now)
        for s in self.sources:
            s.drive(hold=self.rst_now)
        for s in self.sinks:
            s.drive()
        await ReadOnly()
        for obs in self.observers:
            obs(self.cycle)
        for s in self.sources:
            s.sample(self.cycle)
        for s in self.sinks:
            if self.rst_now:
                s.forget()
            else:
                s.sample(self.cycle)
        self.cycle += 1

    async def run_until(self, done, limit: int, what: str = "run") -> int:
        """Step until ``done()`` is true (checked before each cycle); fail after ``limit`` cycles."""
        start = self.cycle
        while not done():
            if self.cycle - start >= limit:
                raise AssertionError(f"{what}: not finished after {limit} cycles")
            await self.step()
        return self.cycle - start

    async def cycles(self, n: int) -> None:
        for _ in range(n):
            await self.step()
