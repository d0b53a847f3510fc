"""The variable-depth engine: the uniform depth-D engine behind a word FIFO and a gearbox
(hw/ENGINE.md "Variable-depth stream").

Ports (``tritforge.ports.var_engine_ports``): the engine's, with ``mem`` (the
variable-depth column stream, ``cfg.mem_bytes`` bytes a beat with a ``count``) in place of
``w``. ``Gearbox`` (hw/gearbox.py) turns the columns into depth-D beats for the engine's
issue stage, which takes them exactly as it takes a uniform stream's beats; everything
else (the command front end, LOAD, codebook banks, results, ``busy``) is ``GemvEngine``'s.

``err``: the engine's, or'd with the gearbox's own sticky flag, which a beat flagged
``bad`` sets from the cycle after the issue stage accepts it; a command accepted while no
command is in flight clears both (the clear wins over a set in the same cycle). The
re-packed beats hold only trit bytes, so the engine's own check never fires on them.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from ..hwconfig import HwConfig
from .checks import check_config
from .decoder import DEFAULT_STYLE
from .engine import GemvEngine
from .gearbox import Gearbox
from .signature import members
from ..ports import var_engine_ports


class VarDepthEngine(wiring.Component):
    """The variable-depth engine of ``cfg`` (``cfg.weight_stream == "variable"``);
    ``decoder_style`` and ``primitives`` are the inner engine's."""

    def __new__(cls, cfg: HwConfig, *, decoder_style: str = DEFAULT_STYLE,
                primitives: str = "generic"):
        check_config("VarDepthEngine", cfg)
        if not cfg.variable:
            raise ValueError(f"VarDepthEngine cfg.weight_stream must be 'variable', not "
                             f"{cfg.weight_stream!r}")
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig, *, decoder_style: str = DEFAULT_STYLE,
                 primitives: str = "generic"):
        self.cfg = cfg
        self.decoder_style, self.primitives = decoder_style, primitives
        self.gearbox = Gearbox(cfg)
        self.engine = GemvEngine(cfg, decoder_style=decoder_style, primitives=primitives)
        super().__init__(wiring.Signature(members(var_engine_ports(cfg))))

    @property
    def latency(self) -> int:
        return self.cfg.pipeline_stages

    def elaborate(self, platform):
        m = Module()
        m.submodules.gearbox = gb = self.gearbox
        m.submodules.engine = eng = self.engine
        wiring.connect(m, wiring.flipped(self.mem), gb.mem)
        for name in ("cmd", "cb", "act"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(eng, name))
        wiring.connect(m, eng.res, wiring.flipped(self.res))
        m.d.comb += [eng.w.valid.eq(gb.o.valid), eng.w.payload.eq(gb.o.payload.beat),
                     gb.o.ready.eq(eng.w.ready), self.busy.eq(eng.busy)]
        bad = Signal()
        with m.If(gb.o.valid & eng.w.ready & gb.o.payload.bad):
            m.d.sync += bad.eq(1)
        with m.If(self.cmd.valid & self.cmd.ready & ~eng.busy):
            m.d.sync += bad.eq(0)
        m.d.comb += self.err.eq(eng.err | bad)
        return m
