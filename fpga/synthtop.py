"""The top that synthesis runs wrap the engine in: the engine's ports kept internal.

The engine's streams are hundreds of bits wide (a weight beat alone is
``8 * beat_bytes`` bits), far more than any package has pins, so ``SynthTop`` feeds it
the way the boards do: through the host-link core (``fpga.linkcore``), here with its
byte streams on pins instead of a UART (registered on both sides, so no path from a pin
limits Fmax). Pins: ``rx`` byte stream in (8 + valid), ``tx`` byte stream out
(8 + valid + ready), ``busy``, ``error``: 21 in all.

What the wrapper adds (counted apart: the flow keeps ``top.engine`` as its own module,
``fpga.synth`` ``keep``): the link core's receive shift register (8 x the largest frame
payload: the weight beat), its transmit register (one result frame), their byte
counters, the frame decoder and the pin registers. The engine's own cells are reported
under ``modules["top.engine"]``; the LUT-per-lane figures use those only.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec.errors import TritforgeError
from ..hw.engine import GemvEngine
from ..hwconfig import HwConfig
from .linkcore import ENGINE_INPUTS, LinkCore

#: clock cycles a frame may pause between two bytes (the synthesis top has no baud rate)
TIMEOUT = 1 << 16


class SynthTop(wiring.Component):
    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    busy: Out(1)
    error: Out(1)

    def __init__(self, hw: HwConfig):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"SynthTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        self.engine = GemvEngine(hw)
        self.link = LinkCore(hw, self.engine.signature, divisor=0, timeout=TIMEOUT)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.submodules.link = link = self.link
        for name in ENGINE_INPUTS:
            wiring.connect(m, getattr(link, name), getattr(engine, name))
        wiring.connect(m, engine.res, link.res)

        # pin registers: rx byte in, tx byte out (a one-deep register slice each way)
        with m.If(link.rx.ready | ~link.rx.valid):
            m.d.sync += [link.rx.valid.eq(self.rx.valid), link.rx.payload.eq(self.rx.payload)]
        m.d.comb += self.rx.ready.eq(link.rx.ready | ~link.rx.valid)
        with m.If(self.tx.ready | ~self.tx.valid):
            m.d.sync += [self.tx.valid.eq(link.tx.valid), self.tx.payload.eq(link.tx.payload)]
        m.d.comb += link.tx.ready.eq(self.tx.ready | ~self.tx.valid)
        m.d.sync += [link.err.eq(engine.err), self.busy.eq(engine.busy),
                     self.error.eq(engine.err | link.link_error)]
        return m
