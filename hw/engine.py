"""GEMV engine top, exactly per hw/ENGINE.md.

Streams ``cmd``, ``cb``, ``act``, ``w`` in, ``res`` out; ``err`` and ``busy`` flags (the
port set: ``tritforge.ports``). The engine is wiring of components:

* ``CommandControl`` (hw/control.py): the command latch, the start cycle, LOAD into the
  activation buffer, the end of RUN;
* ``IssueStage`` (hw/issue.py): weight-beat acceptance, the issue register and its T uses,
  ``w.ready``, the buffer's read address;
* ``InvalidByteCheck`` (hw/errcheck.py): the sticky ``err``;
* the datapath: ``ActivationBuffer`` (hw/actbuffer.py) and ``ActMultiples``
  (hw/actmultiples.py) beside ``TritDecoder`` (hw/decoder.py), then ``GroupDot``
  (hw/groupdot.py) and ``ScaleMac`` (hw/scalemac.py, ending in the result FIFO).

One global advance: a flip-flop of the scale MAC decided three cycles ahead from its
result FIFO's occupancy, so ``res.ready`` only pops that FIFO. Every block's clock enables
are copies of it (``hw.replica``, the one fan-out mechanism): the scale MAC gives copies of
its next value, flip-flops themselves (the tree's first level): the issue stage's own (its
next-state logic), one from which the activation multiples make theirs
(``MULTIPLES_COPIES``) and the engine four more (the issue stage's, the decoder's and the
group dot's control registers', the activation read's), and one per row for the decoder's
and one per row for the group dot's copies (each loads the copies of its row's share).
From beat acceptance
to the result FIFO there are ``HwConfig.pipeline_stages`` register stages (the issue
register, the decoder, the group dot, the scale MAC), which the constructor asserts; the
activation path (buffer read one cycle ahead, then the multiples) meets the decoder's
output.

With weights always valid and no back-pressure, the first beat accepted at cycle c0, a RUN
of N = tiles*ng beats has its last result valid at cycle c0 + N*T + pipeline_stages - 1
(N*T + pipeline_stages cycles, counted inclusively).

Slices: an engine of more than ``SLICE_ROWS`` rows is ``HwConfig.slices`` engines of at most
``SLICE_ROWS`` rows each (``HwConfig.slice_config``), in lockstep: every slice takes the
same ``cmd``, ``cb``, ``act`` and ``res.ready``, the ``w`` valid and its own bytes of each
beat (``codec.layout.beat_window``; a byte holding trits of two slices goes to both), and
computes its rows. Having the same inputs since reset, the slices' control states are equal
in every cycle, so the ports' ready/valid flags and ``busy`` come from slice 0, ``res``
carries every slice's accumulators, and ``err`` is the OR of the slices' flags (each
slice's err check delayed to ``HwConfig.err_latency``). Each slice has its own control,
advance tree, activation buffer, multiples and result FIFO: no net but the ports' spans
the whole engine, and the placer can put each slice in a region of its own. The behaviour
and timing are those of one engine (hw/ENGINE.md).
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Module
from amaranth.lib import data, wiring

from ..codec import layout
from ..hwconfig import ISSUE_STAGES, HwConfig
from .actbuffer import ActivationBuffer
from .actmultiples import ActMultiples
from .checks import check_config
from .control import CommandControl
from .decoder import DEFAULT_STYLE, TritDecoder
from .errcheck import InvalidByteCheck
from .groupdot import GroupDot
from .issue import IssueStage, item_tag_layout
from .primitives import check_primitives
from .replica import KEEP_PREFIX, replicas
from .scalemac import ScaleMac
from .signature import engine_signature

#: rows per copy of the advance in the decoder and the group dot (hw/replica.py)
ENABLE_ROWS = 1
#: copies of the advance in the activation multiples (two lanes each)
MULTIPLES_COPIES = 8
#: the scale MAC's copies of the advance's next value (the advance tree's first level) for
#: the issue stage and for the multiples and the engine's own copies; beside them one per
#: row for the decoder's and one per row for the group dot's copies
ADV_OWN_COPIES = 2


class GemvEngine(wiring.Component):
    """The GEMV engine (hw/ENGINE.md). ``decoder_style`` picks the byte decoder,
    ``primitives`` how the multipliers and the activation buffer are built
    (hw/primitives.py; the same cycle behaviour with every set). ``window`` and
    ``err_latency`` are set by an engine for its slices (see the module docstring): the
    slice's bytes of the beat as (bytes, trit offset of its row 0) and the whole engine's
    ``err_latency``."""

    def __new__(cls, cfg: HwConfig, *, decoder_style: str = DEFAULT_STYLE,
                primitives: str = "generic", window: tuple[int, int] | None = None,
                err_latency: int | None = None):
        check_config("GemvEngine", cfg)
        if cfg.organisation != "lockstep":
            raise ValueError(f"GemvEngine cfg.organisation must be 'lockstep' (an array of "
                             f"engines is hw.engine_array.EngineArray), not {cfg.organisation!r}")
        TritDecoder.check_style(decoder_style)
        check_primitives(primitives, "engine")
        ScaleMac.check(cfg, primitives)
        ActivationBuffer.check(cfg.act_buffer_words, layout.ACT_WORD_BITS, primitives)
        cls.check_structure(cfg)
        return super().__new__(cls)

    @staticmethod
    def check_structure(cfg: HwConfig) -> None:
        """The blocks' register stages from beat acceptance to the result FIFO equal
        ``HwConfig.pipeline_stages`` (the models' figure), and the activation path (the
        buffer read one cycle ahead, its first stage beside the issue register, then the
        multiples) meets the decoder's output."""
        stages = (ISSUE_STAGES + TritDecoder.latency + GroupDot.stages(cfg.depth)
                  + ScaleMac.latency)
        act_path = ActivationBuffer.latency - 1 + ActMultiples.latency
        if stages != cfg.pipeline_stages or act_path != ISSUE_STAGES - 1 + TritDecoder.latency:
            raise AssertionError(f"engine pipeline of {stages} stages (activation path "
                                 f"{act_path}) but HwConfig.pipeline_stages = "
                                 f"{cfg.pipeline_stages}")

    def __init__(self, cfg: HwConfig, *, decoder_style: str = DEFAULT_STYLE,
                 primitives: str = "generic", window: tuple[int, int] | None = None,
                 err_latency: int | None = None):
        self.cfg = cfg
        self.decoder_style = decoder_style
        self.primitives = primitives
        self.beat_bytes, offset = window or (cfg.beat_bytes, 0)
        self.err_latency = err_latency or cfg.err_latency
        #: (first row, first byte, engine) per slice, or none (an engine of its own)
        self.slices = []
        if window is None and len(cfg.slices) > 1:
            for first, rows in cfg.slices:
                byte0, nbytes, off = layout.beat_window(cfg.depth, first, rows)
                self.slices.append((first, byte0, GemvEngine(
                    cfg.slice_config(rows), decoder_style=decoder_style, primitives=primitives,
                    window=(nbytes, off), err_latency=self.err_latency)))
            super().__init__(engine_signature(cfg))
            return
        copies = max(1, cfg.rows // ENABLE_ROWS)
        self.control = CommandControl(cfg)
        self.issue = IssueStage(cfg, self.beat_bytes)
        self.errcheck = InvalidByteCheck(self.beat_bytes, self.err_latency)
        self.decoder = TritDecoder(cfg, style=decoder_style, tag_shape=item_tag_layout(cfg),
                                   enable_copies=copies, window=(self.beat_bytes, offset),
                                   adv_inputs=max(1, cfg.rows))
        self.groupdot = GroupDot(cfg, tag_shape=data.StructLayout(
            {"k": self.decoder.out_layout["k"].shape, "item": item_tag_layout(cfg)}),
            enable_copies=copies, adv_inputs=max(1, cfg.rows))
        self.mac = ScaleMac(cfg, primitives=primitives,
                            adv_copies=ADV_OWN_COPIES + 2 * max(1, cfg.rows))
        self.actbuf = ActivationBuffer(cfg.act_buffer_words, layout.ACT_WORD_BITS,
                                       primitives=primitives)
        self.multiples = ActMultiples(cfg.depth, enable_copies=MULTIPLES_COPIES)
        super().__init__(engine_signature(cfg, self.beat_bytes))

    @property
    def latency(self) -> int:
        """Register stages from weight-beat acceptance to the result FIFO."""
        return self.cfg.pipeline_stages

    def _elaborate_slices(self) -> Module:
        """The slices in lockstep (module docstring), kept apart by the synthesis flow
        (their equal control would otherwise be merged into one)."""
        m = Module()
        for c, (first, byte0, sl) in enumerate(self.slices):
            m.submodules[f"{KEEP_PREFIX}slice{c}"] = sl
            m.d.comb += [sl.cmd.valid.eq(self.cmd.valid), sl.cmd.payload.eq(self.cmd.payload),
                         sl.cb.valid.eq(self.cb.valid), sl.cb.payload.eq(self.cb.payload),
                         sl.act.valid.eq(self.act.valid), sl.act.payload.eq(self.act.payload),
                         sl.w.valid.eq(self.w.valid),
                         sl.w.payload.eq(self.w.payload[8 * byte0:8 * (byte0 + sl.beat_bytes)]),
                         sl.res.ready.eq(self.res.ready)]
            m.d.comb += [self.res.payload.acc[first + r].eq(sl.res.payload.acc[r])
                         for r in range(sl.cfg.rows)]
        lead = self.slices[0][2]
        m.d.comb += [self.cmd.ready.eq(lead.cmd.ready), self.cb.ready.eq(lead.cb.ready),
                     self.act.ready.eq(lead.act.ready), self.w.ready.eq(lead.w.ready),
                     self.res.valid.eq(lead.res.valid),
                     self.res.payload.vector.eq(lead.res.payload.vector),
                     self.res.payload.last.eq(lead.res.payload.last),
                     self.busy.eq(lead.busy),
                     self.err.eq(reduce(operator.or_, (sl.err for _, _, sl in self.slices)))]
        return m

    def elaborate(self, platform):
        if self.slices:
            return self._elaborate_slices()
        m = Module()
        m.submodules.control = ctl = self.control
        m.submodules.issue = iss = self.issue
        m.submodules.errcheck = chk = self.errcheck
        m.submodules.actbuf = buf = self.actbuf
        m.submodules.multiples = mult = self.multiples
        m.submodules.decoder = dec = self.decoder
        m.submodules.groupdot = gd = self.groupdot
        m.submodules.mac = mac = self.mac

        # the advance tree: the MAC's copies of its next value (flip-flops loaded from the
        # advance two cycles ahead) are the issue stage's (its next-state logic), one for
        # the multiples' copies and four here (the issue stage's, the decoder's and the
        # group dot's control registers', the activation read's), one per row's share of
        # the decoder's copies and one per row's share of the group dot's
        k = max(1, self.cfg.rows)
        adv_issue, adv_misc = mac.adv_copies[0], mac.adv_copies[1]
        adv_dec_in = mac.adv_copies[ADV_OWN_COPIES:ADV_OWN_COPIES + k]
        adv_gd_in = mac.adv_copies[ADV_OWN_COPIES + k:ADV_OWN_COPIES + 2 * k]
        adv, adv_dec, adv_gd, adv_act = replicas(m, "advance", adv_misc, 4, init=1)
        m.d.comb += [dec.adv_next.eq(adv_dec_in), gd.adv_next.eq(adv_gd_in)]

        # control and LOAD
        wiring.connect(m, wiring.flipped(self.cmd), ctl.cmd)
        m.d.comb += [self.busy.eq(ctl.busy), self.act.ready.eq(ctl.act_ready),
                     ctl.act_valid.eq(self.act.valid), ctl.done.eq(mac.done),
                     buf.w_en.eq(ctl.wr_en), buf.w_addr.eq(ctl.wr_addr),
                     buf.w_data.eq(self.act.payload)]
        # RUN: beats into the issue stage, its items into the decoder
        wiring.connect(m, wiring.flipped(self.w), iss.w)
        m.d.comb += [iss.pend_valid.eq(ctl.pend_valid), ctl.take.eq(iss.take_pend),
                     iss.last_group_m1.eq(ctl.last_group_m1),
                     iss.last_tile_m1.eq(ctl.last_tile_m1),
                     iss.cb_bank.eq(ctl.cb_bank), iss.act_bank.eq(ctl.act_bank),
                     iss.adv.eq(adv), iss.adv_next.eq(adv_issue)]
        wiring.connect(m, iss.o, dec.i)
        m.d.comb += [chk.beat.eq(iss.o.payload.beat), chk.take.eq(iss.take),
                     chk.clear.eq(ctl.clear), self.err.eq(chk.err)]
        # the activation word, read one cycle ahead, and its multiples beside the decoder
        m.d.comb += [buf.r_addr.eq(iss.rd_addr), buf.r_en.eq(adv_act),
                     mult.x.eq(buf.r_data), mult.adv_next.eq(adv_misc)]
        # decoder and multiples -> group dot -> scale MAC -> res
        m.d.comb += [gd.i.valid.eq(dec.o.valid), gd.i.payload.planes.eq(dec.o.payload.planes),
                     gd.i.payload.mult.eq(mult.mult),
                     gd.i.payload.tag.k.eq(dec.o.payload.k),
                     gd.i.payload.tag.item.eq(dec.o.payload.tag),
                     dec.o.ready.eq(adv_dec)]
        m.d.comb += [mac.i.valid.eq(gd.o.valid), mac.i.payload.p.eq(gd.o.payload.p),
                     mac.i.payload.k.eq(gd.o.payload.tag.k),
                     mac.i.payload.tag.eq(gd.o.payload.tag.item),
                     gd.o.ready.eq(adv_gd)]
        wiring.connect(m, wiring.flipped(self.cb), mac.cb)
        wiring.connect(m, mac.o, wiring.flipped(self.res))
        return m
