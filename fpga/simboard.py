"""A simulated board: ``LinkTop`` in the Amaranth simulator behind a pyserial-like port.

``SimSerial(hw, divisor)`` runs the simulation in a background thread. Its ``write()``
queues bytes that a bit-level UART model drives onto the design's ``rx`` line (start bit,
8 data bits LSB first, stop bit, ``divisor`` clock cycles each); a second model samples
the ``tx`` line in the middle of every bit and queues the bytes it decodes for
``read()``. So the host code (``fpga.hostlink``) runs unchanged against the simulated
gateware, exactly as against a serial port: this is how the host link is tested without
a board (``tests/test_hostlink.py``, ``tritforge board run --sim``).
"""
from __future__ import annotations

import queue
import threading
import time

from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .linktop import LinkTop


class SimSerial:
    """pyserial-like ``write``/``read``/``close`` on a simulated ``LinkTop``."""

    def __init__(self, hw: HwConfig, divisor: int = 4, timeout: float = 120.0,
                 timeout_bits: int = 64, clock_hz: float = 1e6):
        self.top = LinkTop(hw, divisor, timeout_bits=timeout_bits)
        self.divisor = self.top.divisor
        self.timeout = timeout
        self.clock_hz = clock_hz
        self.cycles = 0
        self._tx_q: queue.Queue[int] = queue.Queue()     # host -> board
        self._rx_q: queue.Queue[int] = queue.Queue()     # board -> host
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simboard", daemon=True)
        self._thread.start()

    # --- pyserial-like ----------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        self._check()
        for b in bytes(data):
            self._tx_q.put(b)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(out) < n:
            self._check()
            try:
                out.append(self._rx_q.get(timeout=min(0.05, max(0.0, deadline - time.monotonic()))))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break
        return bytes(out)

    def reset_input_buffer(self) -> None:
        while True:
            try:
                self._rx_q.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._check()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise TritforgeError(f"simulated board failed: {err!r}") from err

    # --- the simulation --------------------------------------------------------------------
    def _run(self):
        try:
            self._simulate()
        except BaseException as exc:   # reported to the host thread by its next call
            self._error = exc

    def _simulate(self):
        from amaranth.sim import Simulator

        top, div = self.top, self.divisor
        sim = Simulator(top)
        sim.add_clock(1 / self.clock_hz)

        async def host_to_board(ctx):
            ctx.set(top.rx, 1)
            while not self._stop.is_set():
                try:
                    byte = self._tx_q.get_nowait()
                except queue.Empty:
                    await ctx.tick().repeat(div)
                    self.cycles += div
                    continue
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(top.rx, bit)
                    await ctx.tick().repeat(div)
                self.cycles += 10 * div

        async def board_to_host(ctx):
            while True:
                while ctx.get(top.tx):                        # wait for a start bit
                    await ctx.tick()
                await ctx.tick().repeat(div // 2)
                if ctx.get(top.tx):
                    continue                                  # glitch
                value = 0
                for i in range(8):
                    await ctx.tick().repeat(div)
                    value |= ctx.get(top.tx) << i
                await ctx.tick().repeat(div)
                if not ctx.get(top.tx):
                    raise AssertionError("UART model: stop bit from the board is low")
                self._rx_q.put(value)

        sim.add_testbench(host_to_board)
        sim.add_testbench(board_to_host, background=True)
        sim.run()
