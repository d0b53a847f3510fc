"""The engine behind a UART host link: what a board top instantiates (and what the tests
simulate at bit level).

``LinkTop(hw, divisor)``: ports ``rx`` (serial in), ``tx`` (serial out), ``busy``
(engine busy) and ``error`` (engine ``err`` or a link error). Inside: ``UartRx`` ->
``LinkCore`` -> ``GemvEngine`` (``hw.engine``, reset by the link's ``Z`` frame) ->
``LinkCore`` -> ``UartTx``.
"""
from __future__ import annotations

from amaranth import Module, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..hw.engine import GemvEngine
from ..hwconfig import HwConfig
from .linkcore import ENGINE_INPUTS, LinkCore
from .uart import UartRx, UartTx, check_divisor

#: a frame may pause this many bit times between two bytes before it is dropped
TIMEOUT_BITS = 2000


class LinkTop(wiring.Component):
    def __init__(self, hw: HwConfig, divisor: int, timeout_bits: int = TIMEOUT_BITS,
                 primitives: str = "generic"):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"LinkTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        self.divisor = check_divisor(divisor)
        self.engine = GemvEngine(hw, primitives=primitives)
        self.link = LinkCore(hw, self.engine.signature, self.divisor,
                             timeout=timeout_bits * self.divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1), "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.submodules.link = link = self.link
        engine = self.engine
        m.submodules.engine = ResetInserter(link.engine_reset)(engine)

        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     link.rx_error.eq(urx.overrun | urx.frame_error)]
        wiring.connect(m, urx.data, link.rx)
        wiring.connect(m, link.tx, utx.data)
        for name in ENGINE_INPUTS:
            wiring.connect(m, getattr(link, name), getattr(engine, name))
        wiring.connect(m, engine.res, link.res)
        m.d.comb += [link.err.eq(engine.err), self.busy.eq(engine.busy),
                     self.error.eq(engine.err | link.link_error)]
        return m
