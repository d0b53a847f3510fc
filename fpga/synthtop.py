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

import os

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..atomic import write_json
from ..errors import TritforgeError
from ..hw.engine import GemvEngine
from ..hwconfig import HwConfig
from . import synth
from .linkcore import ENGINE_INPUTS, LinkCore

#: clock cycles a frame may pause between two bytes (the synthesis top has no baud rate)
TIMEOUT = 1 << 16


class SynthTop(wiring.Component):
    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    busy: Out(1)
    error: Out(1)

    def __init__(self, hw: HwConfig, decoder_style: str | None = None,
                 primitives: str = "generic"):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"SynthTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        # None: the engine's own default decoder
        style = {} if decoder_style is None else {"decoder_style": decoder_style}
        self.engine = GemvEngine(hw, primitives=primitives, **style)
        self.decoder_style = self.engine.decoder_style
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


def engine_figures(report: dict, hw) -> dict:
    """The engine's own resources (without the wrapper) and LUT4 per trit-plane lane."""
    eng = report["modules"]["top.engine"]
    lanes = hw.rows * 16 * hw.depth
    return {"lanes": lanes, "engine_lut": eng["lut"], "engine_carry": eng["carry"],
            "engine_lut_equiv": eng["lut_equiv"], "engine_ff": eng["ff"],
            "engine_bram": eng["bram"], "engine_dsp": eng["dsp"],
            "lut_per_lane": round(eng["lut"] / lanes, 2),
            "lut_equiv_per_lane": round(eng["lut_equiv"] / lanes, 2)}


#: the harnesses the engine can be measured in: ``io`` (``fpga.iotop.IoTop``, registered
#: ports, the default: Fmax is the engine's) and ``link`` (``SynthTop``: the boards' link core)
WRAPPERS = {
    "io": "fpga.iotop.IoTop: every engine port bit registered (input shift chain, "
          "registered XOR fold of the outputs); engine kept as module top.engine",
    "link": "fpga.synthtop.SynthTop: host-link core with byte-stream pins; "
            "engine kept as module top.engine",
}


def synthesize_engine(hw: HwConfig, target: str, out: str, freq: float | None = None,
                      seed: int = 1, decoder_style: str | None = None,
                      wrapper: str = "io", pnr_timeout_s: float | None = None,
                      router: str = synth.ROUTERS[0], primitives: str | None = None,
                      place: bool = True, place_blocks: bool = False) -> dict:
    """Run the flow (``fpga.synth``) on the engine inside ``wrapper`` (``WRAPPERS``); the
    report gets an ``engine`` section: the engine module's own resources, LUT4 per lane and
    Fmax. ``primitives``: the engine's primitive set (hw/primitives.py; default the
    target's); ``place=False`` stops after Yosys; ``place_blocks`` fixes each engine's (each
    slice's) hard blocks to a region of its own (``fpga.placement``)."""
    from .iotop import IoTop

    if wrapper not in WRAPPERS:
        raise TritforgeError(f"wrapper {wrapper!r}: expected one of {sorted(WRAPPERS)}")
    top = {"io": IoTop, "link": SynthTop}[wrapper](hw, decoder_style,
                                                   primitives or synth.target(target).primitives)
    meta = {"hwconfig": hw.to_dict(), "derived": hw.derived(), "decoder": top.decoder_style,
            "primitives": top.engine.primitives, "wrapper": wrapper,
            "wrapper_text": WRAPPERS[wrapper]}
    report = synth.run_flow(top, target, out, keep=("engine",), freq_mhz=freq or hw.clock_mhz,
                            seed=seed, meta=meta, pnr_timeout_s=pnr_timeout_s, router=router,
                            place=place, place_blocks=place_blocks)
    report["engine"] = engine_figures(report, hw)
    report["engine"]["fmax_mhz"] = synth.fmax_mhz(report)
    path = os.path.join(out, "report.json")
    write_json(path, report)
    return report
