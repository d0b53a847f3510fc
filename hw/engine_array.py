"""An array of GEMV engines that share nothing but the clock (hw/ENGINE.md, "Organisation").

``HwConfig.organisation == "array"``: ``cfg.slices`` engines (``GemvEngine`` of
``SLICE_ROWS`` rows each, the last the rest, ``HwConfig.slice_config``), each with its own
weight stream ``w<e>`` and result stream ``res<e>`` (the port set: ``tritforge.ports``'
``array_ports``), as an HBM design gives one engine per memory channel. Engine e computes
rows ``first..first+rows-1`` of every tile of ``cfg.rows`` rows (the rows slice e of the
lockstep engine computes), from its own stream of their beats, packed as an engine of its
rows packs them.

The command, codebook and activation streams are broadcast (hw/broadcast.py): ``cmd`` and
``act`` through ``CreditBroadcast`` (registered trees into a queue beside each engine,
``cmd.ready`` / ``act.ready`` flip-flops that say every queue has room), ``cb`` (always
ready, as the engine's) through a ``RegisteredTree`` whose latency is below the command
queue's, so a codebook write reaches every engine before a command given after it.

Each engine runs on its own once its command is queued: its ``w`` and ``res`` handshakes
are its own, and so are its control, advance tree, buffer and result FIFO. ``err`` is the
OR of the engines' flags, ``busy`` is high while a command is queued for any engine or any
engine is busy; both registered twice (a flip-flop by each engine, one at the ports). Each
engine is exactly a ``GemvEngine`` (hw/ENGINE.md's contract at its own ports: the
stepping model ``sim.stepmodel.StepModel`` of its configuration holds for it cycle by
cycle); the array adds ``BROADCAST_LATENCY``-ish cycles between a port and the engines.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from .broadcast import CreditBroadcast, RegisteredTree, tree_levels
from .checks import check_config, check_int
from .decoder import DEFAULT_STYLE
from .engine import GemvEngine
from .replica import KEEP_PREFIX
from .signature import members
from ..ports import array_ports

#: entries of each engine's command and activation queues (a LOAD streams one word a
#: cycle through a round trip of the tree, the queue and the credit return)
CMD_QUEUE = 4
ACT_QUEUE = 8
#: copies per stage of the broadcast trees
FANOUT = 2


class EngineArray(wiring.Component):
    """``cfg.slices`` independent engines behind broadcast ``cmd``, ``cb``, ``act`` (module
    docstring); ``decoder_style`` and ``primitives`` as ``GemvEngine``'s."""

    def __new__(cls, cfg, *, decoder_style: str = DEFAULT_STYLE, primitives: str = "generic",
                fanout: int = FANOUT):
        check_config("EngineArray", cfg)
        if cfg.organisation != "array":
            raise ValueError(f"EngineArray cfg.organisation must be 'array', not "
                             f"{cfg.organisation!r}")
        check_int("EngineArray", "fanout", fanout, 2)
        return super().__new__(cls)

    def __init__(self, cfg, *, decoder_style: str = DEFAULT_STYLE, primitives: str = "generic",
                 fanout: int = FANOUT):
        self.cfg = cfg
        self.decoder_style, self.primitives = decoder_style, primitives
        self.ports = array_ports(cfg)
        #: (first row, engine) per engine
        self.engines = [(first, GemvEngine(cfg.slice_config(rows), decoder_style=decoder_style,
                                           primitives=primitives))
                        for first, rows in cfg.slices]
        super().__init__(wiring.Signature(members(self.ports)))
        n = len(self.engines)
        self.cmd_bc = CreditBroadcast(self.cmd.payload.shape(), n, CMD_QUEUE, fanout)
        self.act_bc = CreditBroadcast(self.act.payload.shape(), n, ACT_QUEUE, fanout)
        self.cb_tree = RegisteredTree(self.cb.payload.as_value().shape().width, n, fanout)
        assert self.cb_tree.levels < self.cmd_bc.latency
        assert broadcast_cycles(cfg) == {"cmd": self.cmd_bc.latency, "act": self.act_bc.latency,
                                         "cb": self.cb_tree.levels}

    def elaborate(self, platform):
        m = Module()
        m.submodules.cmd_bc = cmd_bc = self.cmd_bc
        m.submodules.act_bc = act_bc = self.act_bc
        m.submodules.cb_tree = cb_tree = self.cb_tree
        wiring.connect(m, wiring.flipped(self.cmd), cmd_bc.i)
        wiring.connect(m, wiring.flipped(self.act), act_bc.i)
        m.d.comb += [self.cb.ready.eq(1), cb_tree.i_valid.eq(self.cb.valid),
                     cb_tree.i.eq(self.cb.payload)]
        busy, err = [], []
        for e, (_, eng) in enumerate(self.engines):
            m.submodules[f"{KEEP_PREFIX}engine{e}"] = eng
            wiring.connect(m, cmd_bc.o[e], eng.cmd)
            wiring.connect(m, act_bc.o[e], eng.act)
            m.d.comb += [eng.cb.valid.eq(cb_tree.o_valid[e]), eng.cb.payload.eq(cb_tree.o[e])]
            wiring.connect(m, wiring.flipped(getattr(self, f"w{e}")), eng.w)
            wiring.connect(m, eng.res, wiring.flipped(getattr(self, f"res{e}")))
            b, x = Signal(name=f"busy{e}"), Signal(name=f"err{e}")
            m.d.sync += [b.eq(eng.busy), x.eq(eng.err)]
            busy.append(b)
            err.append(x)
        m.d.sync += [self.busy.eq(reduce(operator.or_, busy) | ~cmd_bc.idle),
                     self.err.eq(reduce(operator.or_, err))]
        return m


def broadcast_cycles(cfg) -> dict:
    """Cycles from an item taken at a broadcast port until every engine's port offers it
    (its queue empty): ``cmd`` and ``act`` (``CreditBroadcast.latency``), ``cb`` (the
    tree's registers)."""
    levels = tree_levels(len(cfg.slices), FANOUT)
    return {"cmd": levels + 2, "act": levels + 2, "cb": levels}


def build_engine(cfg, **kw):
    """The engine ``cfg`` describes: an ``EngineArray`` when ``cfg.organisation`` is
    "array", a ``VarDepthEngine`` (hw/varengine.py) for a variable-depth weight stream, else
    a ``GemvEngine`` (lockstep slices above ``SLICE_ROWS`` rows); ``kw`` as theirs. Its
    ports are ``tritforge.ports.ports_of(cfg)``."""
    if cfg.variable:
        from .varengine import VarDepthEngine
        return VarDepthEngine(cfg, **kw)
    return (EngineArray if cfg.organisation == "array" else GemvEngine)(cfg, **kw)
