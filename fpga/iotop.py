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
from ..hw.engine_array import build_engine
from ..hw.foldtree import fold_registered
from .. import hwconfig
from ..hwconfig import HwConfig
from ..ports import IN, OUT, ports_of

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
    """The engine ``hw`` describes (``hw.engine_array.build_engine``: one engine or an array
    of engines) behind registered I/O; its port set is ``tritforge.ports.ports_of(hw)``: a
    chain and a pin per input stream and per output stream's ready (``si``), every output
    folded into ``so``."""

    def __init__(self, hw: HwConfig, decoder_style=None,
                 primitives: str = "generic"):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"IoTop hw={hw!r}: expected a HwConfig")
        self.hw = hw
        style = {} if decoder_style is None else {"decoder_style": decoder_style}
        self.engine = build_engine(hw, primitives=primitives, **style)
        self.decoder_style = self.engine.decoder_style
        self.ports = ports_of(hw)
        chains = sum(1 for p in self.ports if p.stream)
        super().__init__({"si": In(chains), "so": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        # one chain per port, each from a pin of its own (one chain through all ports would
        # tie their consumers together in placement; chains fed from one pin would be
        # identical, and Yosys would merge them into one)
        streams = [(p, getattr(eng, p.name)) for p in self.ports if p.stream]
        ports = [Cat(s.valid, Value.cast(s.payload)) for p, s in streams if p.dir == IN]
        ports += [s.ready for p, s in streams if p.dir == OUT]
        for i, value in enumerate(ports):
            pin = self.si[i]
            for n in range(PIN_STAGES):
                q = Signal(name=f"pin{i}_{n}")
                m.d.sync += q.eq(pin)
                pin = q
            chain = Signal(len(value), name=f"chain{i}")
            m.d.sync += chain.eq(Cat(pin, chain[:-1]))
            m.d.comb += value.eq(chain)

        outs = [s.ready for p, s in streams if p.dir == IN]
        outs += [x for p, s in streams if p.dir == OUT for x in (s.valid, Value.cast(s.payload))]
        outs += [getattr(eng, p.name) for p in self.ports if not p.stream]
        level = Signal(len(Cat(*outs)), name="oq")
        m.d.sync += level.eq(Cat(*outs))
        level = fold_registered(m, level, FOLD, "xor", "fold")
        m.d.comb += self.so.eq(level[0])
        return m
