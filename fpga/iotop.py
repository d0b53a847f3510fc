"""The registered-I/O harness that engine Fmax is measured in: every engine port bit
behind a flip-flop, nothing else in the clock domain that could limit it.

The engine's ports are hundreds of bits wide, more than any package has pins. ``IoTop``
drives every engine input bit (the ``cmd``, ``cb``, ``act``, ``w`` payloads and valids,
``res.ready``) from its own flip-flop of a shift chain (one per port, each fed by a pin
of ``si`` through ``PIN_STAGES`` flip-flops), and
registers every engine output bit (the readies, ``res`` valid and payload, ``err``,
``busy``) before folding them into one pin (``so``) through a tree of 4-input XORs with a
register after every level. So each input is an independent register Yosys cannot
constant-fold, each output bit is observable (an XOR tree loses none), and every path
outside the engine is one flip-flop to one flip-flop, or one LUT between two: the clock
domain's Fmax is the engine's. The ``rst`` pin (Amaranth's synchronous reset) is an
unregistered input, reported by nextpnr as an ``<async>`` path, not in Fmax (a board
pipelines or replicates its reset).

The host-link wrapper (``fpga.synthtop.SynthTop``, ``--wrapper link``) measures the engine
with the link core the boards use instead; its paths then count too.
"""

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..hw.engine import GemvEngine
from ..hw.foldtree import fold_registered
from .. import hwconfig
from ..hwconfig import HwConfig

#: engine input streams, in chain order
ENGINE_INPUTS = ("cmd", "cb", "act", "w")
#: inputs of one XOR level
FOLD = 4
#: flip-flops between each ``si`` pin and its chain: the chain's flip-flops are then free to
#: sit near the engine logic they drive (a chain of one bit, ``res.ready``, would otherwise
#: be held between its pin and its loads)
PIN_STAGES = 3


def fold_levels(bits: int) -> int:
    """Register levels of the XOR tree that folds ``bits`` output bits into one pin."""
    return hwconfig.fold_levels(bits, FOLD)


class IoTop(wiring.Component):
    si: In(len(ENGINE_INPUTS) + 1)     # one pin per input chain
    so: Out(1)

    def __init__(self, hw: HwConfig, decoder_style=None,
                 primitives: str = "generic"):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"IoTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        style = {} if decoder_style is None else {"decoder_style": decoder_style}
        self.engine = GemvEngine(hw, primitives=primitives, **style)
        self.decoder_style = self.engine.decoder_style
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        # one chain per port, each from a pin of its own (one chain through all ports would
        # tie their consumers together in placement; chains fed from one pin would be
        # identical, and Yosys would merge them into one)
        ports = [Cat(getattr(eng, name).valid, Value.cast(getattr(eng, name).payload))
                 for name in ENGINE_INPUTS] + [eng.res.ready]
        for i, value in enumerate(ports):
            pin = self.si[i]
            for n in range(PIN_STAGES):
                q = Signal(name=f"pin{i}_{n}")
                m.d.sync += q.eq(pin)
                pin = q
            chain = Signal(len(value), name=f"chain{i}")
            m.d.sync += chain.eq(Cat(pin, chain[:-1]))
            m.d.comb += value.eq(chain)

        outs = [getattr(eng, name).ready for name in ENGINE_INPUTS]
        outs += [eng.res.valid, Value.cast(eng.res.payload), eng.err, eng.busy]
        level = Signal(len(Cat(*outs)), name="oq")
        m.d.sync += level.eq(Cat(*outs))
        level = fold_registered(m, level, FOLD, "xor", "fold")
        m.d.comb += self.so.eq(level[0])
        return m
