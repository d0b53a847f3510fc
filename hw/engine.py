"""GEMV engine top, exactly per hw/ENGINE.md.

Streams ``cmd``, ``cb``, ``act``, ``w`` in, ``res`` out; ``err`` and ``busy`` flags.

Structure (one global advance ``adv``, decided three cycles ahead from the 5-beat result
FIFO's occupancy, a flip-flop in ``ScaleMac`` with copies for the pipeline blocks' clock
enables loaded from its next value, itself a flip-flop (hw/replica.py); ``res.ready`` only
pops that FIFO, whose last beat's pop, registered, ends RUN):

* control: IDLE -> START -> (LOAD) -> RUN -> IDLE (a flip-flop per state but RUN); the command
  register loads while idle and the counters from it in START; group and tile counters
  count down one below the items left, so each "last" flag is a counter's sign bit; the
  last result's pop is registered by the scale MAC before it ends RUN;
* activation buffer (``hw.actbuffer``) of ``T * max_groups`` 128-bit words (at least 2, so
  the address is never zero-width): one registered write port for LOAD, one read port for
  RUN with three register stages (a fabric address register, block RAM with its output
  register);
* issue register: the accepted weight beat, used T times (vector 0..T-1, one per
  advancing cycle); ``w.ready`` is high when the engine still needs beats, the pipeline
  advances and the issue register is empty or issuing its last use;
* pipeline after the issue register: ``TritDecoder`` (4 stages; beside it the activation
  word leaves the buffer and ``ActMultiples`` forms its multiples) ->
  ``GroupDot`` (terms, then one stage per adder level) -> ``ScaleMac`` (8, ending in the
  5-beat result FIFO, whose occupancy and pushes alone give the advance). That is
  ``HwConfig.pipeline_stages`` register stages from beat acceptance to the result FIFO
  (hw/ENGINE.md), which the constructor asserts.

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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..codec import layout
from ..errors import TritforgeError
from ..hwconfig import ERR_FOLD, ERR_PAIR, ISSUE_STAGES, HwConfig
from ..hwconfig import err_latency as err_latency_of
from .actbuffer import ActivationBuffer
from .actmultiples import ActMultiples
from .decoder import TritDecoder, byte_invalid_parts
from .foldtree import fold_registered
from .groupdot import GroupDot
from .replica import KEEP_PREFIX, replicate
from .scalemac import ScaleMac, codebook_layout, item_tag_layout, result_layout

ACT_WORD_BITS = layout.GROUP * 8
#: rows per copy of the advance in the decoder and the group dot (hw/replica.py)
ENABLE_ROWS = 1


def cmd_layout(cfg: HwConfig) -> data.StructLayout:
    # at least 1 bit each, so that no port or register is zero-width
    return data.StructLayout({"last_group": unsigned(max(1, ceil_log2(cfg.max_groups))),
                              "last_tile": unsigned(max(1, ceil_log2(cfg.tiles_max))),
                              "load_act": 1})


def port_layouts(cfg: HwConfig) -> dict:
    """Payload layouts of every stream port, by port name."""
    return {"cmd": cmd_layout(cfg), "cb": codebook_layout(cfg),
            "act": unsigned(ACT_WORD_BITS), "w": unsigned(8 * cfg.beat_bytes),
            "res": result_layout(cfg)}


class GemvEngine(wiring.Component):
    """The GEMV engine (hw/ENGINE.md). ``decoder_style`` picks the byte decoder,
    ``primitives`` how the multipliers and the activation buffer are built
    (hw/primitives.py; the same cycle behaviour with every set). ``window`` and
    ``err_latency`` are set by an engine for its slices (see the module docstring): the
    slice's bytes of the beat as (bytes, trit offset of its row 0) and the whole engine's
    ``err_latency``."""

    def __init__(self, cfg: HwConfig, *, decoder_style: str = "nibble",
                 primitives: str = "generic", window: tuple[int, int] | None = None,
                 err_latency: int | None = None):
        if not isinstance(cfg, HwConfig):
            self._MustUse__silence = True   # refused: no unused-elaboratable warning
            raise TritforgeError(f"GemvEngine cfg={cfg!r}: expected a HwConfig")
        self.cfg = cfg
        self.decoder_style = decoder_style
        self.primitives = primitives
        self.beat_bytes, offset = window or (cfg.beat_bytes, 0)
        self.err_latency = err_latency or cfg.err_latency
        lay = port_layouts(cfg)
        ports = {"cmd": In(stream.Signature(lay["cmd"])), "cb": In(stream.Signature(lay["cb"])),
                 "act": In(stream.Signature(lay["act"])),
                 "w": In(stream.Signature(unsigned(8 * self.beat_bytes))),
                 "res": Out(stream.Signature(lay["res"])), "err": Out(1), "busy": Out(1)}
        #: (first row, first byte, engine) per slice, or none (an engine of its own)
        self.slices = []
        if window is None and len(cfg.slices) > 1:
            for first, rows in cfg.slices:
                byte0, nbytes, off = layout.beat_window(cfg.depth, first, rows)
                self.slices.append((first, byte0, GemvEngine(
                    cfg.slice_config(rows), decoder_style=decoder_style, primitives=primitives,
                    window=(nbytes, off), err_latency=self.err_latency)))
            super().__init__(ports)
            return
        self.tag_layout = item_tag_layout(cfg)
        # copies of the global advance for the decoder's and the group dot's registers
        # (hw/replica.py): one per group of ENABLE_ROWS rows and per stage
        copies = max(1, cfg.rows // ENABLE_ROWS)
        self.decoder = TritDecoder(cfg, style=decoder_style, tag_shape=self.tag_layout,
                                   enable_copies=copies, window=(self.beat_bytes, offset))
        self.dot_tag_layout = data.StructLayout({"k": self.decoder.out_layout["k"].shape,
                                                 "item": self.tag_layout})
        self.groupdot = GroupDot(cfg, tag_shape=self.dot_tag_layout, enable_copies=copies)
        self.mac = ScaleMac(cfg, primitives=primitives, adv_copies=3)
        self.actbuf = ActivationBuffer(cfg.act_buffer_words, ACT_WORD_BITS, primitives=primitives)
        self.multiples = ActMultiples(cfg.depth)
        stages = self.latency
        # the buffer is read one cycle ahead (its first stage beside the issue register), so
        # its word and then the multiples meet the decoder's output
        act_path = self.actbuf.latency - 1 + self.multiples.latency
        if stages != cfg.pipeline_stages or act_path != ISSUE_STAGES - 1 + self.decoder.latency:
            for part in (self, self.decoder, self.groupdot, self.mac, self.actbuf, self.multiples):
                part._MustUse__silence = True   # refused: no unused-elaboratable warning
            raise TritforgeError(f"GemvEngine: pipeline has {stages} stages (activation path "
                                 f"{act_path}, decoder {self.decoder.latency}) but "
                                 f"HwConfig.pipeline_stages = {cfg.pipeline_stages}")
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Register stages from weight-beat acceptance to the result register."""
        if self.slices:
            return self.slices[0][2].latency
        return ISSUE_STAGES + self.decoder.latency + self.groupdot.latency + self.mac.latency

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
        cfg = self.cfg
        T = cfg.vectors
        m = Module()
        m.submodules.decoder = dec = self.decoder
        m.submodules.groupdot = gd = self.groupdot
        m.submodules.mac = mac = self.mac
        m.submodules.actbuf = buf = self.actbuf

        cl = cmd_layout(cfg)
        # state, one-hot: one flip-flop each (RUN is none of them), so cmd.ready, act.ready
        # and busy are flip-flops; ``starting`` is the one cycle after a command is accepted,
        # in which the counters load from the registered command
        idle = Signal(init=1)
        starting = Signal()
        loading = Signal()
        gshape = cl["last_group"].shape

        # --- command, flags ----------------------------------------------------------------
        m.d.comb += [self.cmd.ready.eq(idle), self.busy.eq(~idle), self.act.ready.eq(loading)]
        wiring.connect(m, wiring.flipped(self.cb), mac.cb)

        # --- counters -----------------------------------------------------------------------
        # Every counter that ends a sequence counts down in a signed register one below the
        # items left, so "last" is its sign bit (a flip-flop, straight out of the decrement's
        # carry chain; no compare). The command is registered as it arrives, in every idle
        # cycle: ``lg_m1 = last_group - 1``, ``lt_m1 = last_tile - 1`` (the port's payload
        # reaches one decrement, nothing else) and ``load_act``; the counters load from them
        # while ``starting``, and lg_m1 reloads the group counters.
        gw = gshape.width + 1
        tw = cl["last_tile"].shape.width + 1
        p = self.cmd.payload
        lg_m1 = Signal(signed(gw))
        lg_m2 = Signal(signed(gw + 1))
        lt_m1 = Signal(signed(tw))
        load_act = Signal()
        with m.If(idle):
            m.d.sync += [lg_m1.eq(p.last_group - 1), lg_m2.eq(p.last_group - 2),
                         lt_m1.eq(p.last_tile - 1),
                         load_act.eq(p.load_act)]

        # --- LOAD -----------------------------------------------------------------------------
        # buffer address of a word: Cat(group, vector) (HwConfig.act_stride, a power of two)
        ld_g = Signal(gshape)                 # group of the next word
        ld_v = Signal(range(max(T, 2)))
        ld_gc = Signal(signed(gw))            # words of this vector after the current one, - 1
        ld_g_last = Signal()                  # the vector's last word: ld_gc's sign
        ld_v_last = Signal()                  # ld_v == T - 1, a flip-flop
        m.d.comb += [ld_g_last.eq(ld_gc[-1]),
                     buf.w_addr.eq(Cat(ld_g, ld_v)), buf.w_data.eq(self.act.payload)]

        # --- RUN: beat acceptance and issue register ----------------------------------------
        # copies of the advance (hw/replica.py): the issue control's own, and the clock
        # enables of the decoder's and the group dot's outputs and of the activation read and
        # multiples (the MAC's flip-flop stays with the MAC). These, the decoder's and the
        # group dot's copies load from a copy each of the MAC's next advance: a tree of
        # flip-flops.
        adv, adv_dec, adv_gd, adv_act = replicate(m, "adv", mac.adv_nexts[2], 4, init=1)
        m.d.comb += [dec.adv_next.eq(mac.adv_nexts[0]), gd.adv_next.eq(mac.adv_nexts[1])]
        acc_g = Signal(gshape)       # group of the next beat to accept
        gc = Signal(signed(gw))               # groups after the one being accepted, - 1
        tc = Signal(signed(tw))               # tiles after the one being accepted, - 1
        w_open = Signal()                     # RUN and beats still expected
        h_valid = Signal()
        h_beat = Signal(8 * self.beat_bytes, reset_less=True)
        h_v = Signal(range(max(T, 2)))
        # "vector v is the beat's last use": always at T = 1 (a constant, so that no next
        # value below depends on the issue register's vector bit)
        is_last_use = (lambda v: Const(1, 1)) if T == 1 else (lambda v: v == T - 1)
        h_g = Signal(gshape)
        h_first = Signal()
        h_final = Signal()
        h_lasttile = Signal()
        last_use = Signal()
        take = Signal()
        # w.ready = can_take & adv, can_take = w_open & (issue register empty | last use), is
        # a flip-flop computed from the next values of the registers it is made of (adv's
        # next value is a flip-flop of the scale MAC)
        w_ready = Signal()
        g_last = Signal()                     # the beat being accepted is its tile's last: gc < 0
        t_last = Signal()                     # ... of the last tile: tc < 0
        g_first = Signal()                    # acc_g == 0, a flip-flop
        m.d.comb += [last_use.eq(is_last_use(h_v)), g_last.eq(gc[-1]), t_last.eq(tc[-1]),
                     self.w.ready.eq(w_ready),
                     take.eq(self.w.valid & w_ready)]

        # pipeline input: decoder + activation read, aligned (both one register stage)
        tag = dec.i.payload.tag
        m.d.comb += [dec.i.valid.eq(h_valid), dec.i.payload.beat.eq(h_beat),
                     tag.vector.eq(h_v), tag.first.eq(h_first), tag.final.eq(h_final),
                     tag.last.eq(h_lasttile & h_final & last_use),
                     buf.r_en.eq(adv_act)]
        # The buffer is read one cycle ahead, with the address of the item the issue
        # register will hold after this edge; its second register stage (the block RAM's
        # output register with the ECP5 primitives) takes the word with the decoder's first
        # stage, so the RAM's slow read clock-to-out only drives that register.
        with m.If(h_valid & ~last_use):
            m.d.comb += buf.r_addr.eq(Cat(h_g, h_v + 1))
        with m.Else():
            m.d.comb += buf.r_addr.eq(Cat(acc_g, Const(0, len(h_v))))
        # then its multiples for the group dot, beside the decoder's further stages
        m.submodules.multiples = mult = self.multiples
        m.d.comb += [mult.x.eq(buf.r_data), mult.en.eq(adv_act)]
        m.d.comb += [gd.i.valid.eq(dec.o.valid), gd.i.payload.planes.eq(dec.o.payload.planes),
                     gd.i.payload.mult.eq(mult.mult),
                     gd.i.payload.tag.k.eq(dec.o.payload.k),
                     gd.i.payload.tag.item.eq(dec.o.payload.tag),
                     dec.o.ready.eq(adv_dec)]
        m.d.comb += [mac.i.valid.eq(gd.o.valid), mac.i.payload.p.eq(gd.o.payload.p),
                     mac.i.payload.k.eq(gd.o.payload.tag.k),
                     mac.i.payload.tag.eq(gd.o.payload.tag.item),
                     gd.o.ready.eq(adv_gd)]
        wiring.connect(m, mac.o, wiring.flipped(self.res))

        # err: sticky, set by an accepted beat holding a byte >= 243. The bytes are checked
        # from the beat register (which holds the accepted beat in the next cycle) in
        # registered steps of one LUT each: per byte its two nibble flags, the OR of
        # ERR_PAIR bytes, ERR_FOLD-input ORs down to at most 3 bits, then err
        # (``HwConfig.err_latency`` cycles after acceptance; the input port's payload reaches
        # no logic but the beat register; a slice with fewer bytes than the widest slice
        # delays its folded flags by the difference)
        # The steps check whatever the beat register holds; "a beat was accepted" runs
        # beside them in a chain of flip-flops and gates only the last step (one gate, not
        # one per byte).
        new_beat = Signal()
        m.d.sync += new_beat.eq(take)
        nb = self.beat_bytes
        nib_hi = Signal(nb)
        nib_lo = Signal(nb)
        for b in range(nb):
            hi, lo = byte_invalid_parts(h_beat[8 * b:8 * b + 8])
            m.d.sync += [nib_hi[b].eq(hi), nib_lo[b].eq(lo)]
        level = Signal(-(-nb // ERR_PAIR), name="bad_pairs")
        for i in range(len(level)):
            bad = 0
            for b in range(ERR_PAIR * i, min(ERR_PAIR * i + ERR_PAIR, nb)):
                bad = bad | (nib_hi[b] & nib_lo[b])
            m.d.sync += level[i].eq(bad)
        checked = new_beat
        for n in range(self.err_latency - 2):   # the beat's flag beside the steps above
            q = Signal(name=f"checked{n + 1}")
            m.d.sync += q.eq(checked)
            checked = q
        level = fold_registered(m, level, ERR_FOLD, "any", "bad_or", until=3)
        for n in range(self.err_latency - err_latency_of(nb)):
            q = Signal.like(level, name=f"bad_delay{n}")
            m.d.sync += q.eq(level)
            level = q
        with m.If(checked & level.any()):
            m.d.sync += self.err.eq(1)

        # next values of the registers w.ready is made of
        h_valid_nxt = Signal()
        h_v_nxt = Signal.like(h_v)
        w_open_nxt = Signal()
        m.d.comb += [h_valid_nxt.eq(h_valid), h_v_nxt.eq(h_v), w_open_nxt.eq(w_open)]
        can_take_nxt = Signal()
        m.d.comb += can_take_nxt.eq(w_open_nxt & (~h_valid_nxt | is_last_use(h_v_nxt)))
        m.d.sync += [h_valid.eq(h_valid_nxt), h_v.eq(h_v_nxt), w_open.eq(w_open_nxt),
                     w_ready.eq(can_take_nxt & mac.adv_next)]
        # copies of w.ready (hw/replica.py), one "take" per group of counters it steps
        # (group counters, tile counter), each one gate from w.valid and a flip-flop beside
        # them
        w_ready_g, w_ready_t = replicate(m, "w_ready", can_take_nxt & mac.adv_next, 2)
        take_g, take_t = (Signal(name=f"take_{n}") for n in "gt")
        m.d.comb += [take_g.eq(self.w.valid & w_ready_g), take_t.eq(self.w.valid & w_ready_t)]
        # The beat register and the issue register's tags load whenever the issue register
        # is free at this edge (it advances and is empty or issuing its last use): a superset
        # of take that does not wait for RUN or the port's valid, so its enables (copies of
        # it, loaded from its next value) depend on no input. Without a take the issue
        # register is empty next cycle and the loaded values are unused (the err check is
        # gated by take on its own).
        free_nxt = Signal()
        m.d.comb += free_nxt.eq(mac.adv_next & (~h_valid_nxt | is_last_use(h_v_nxt)))
        # (copies: one per row's share of the beat's bytes, one for the tags)
        *free_beat, free_tag = replicate(m, "free", free_nxt, cfg.rows + 1, init=1)
        for b in range(nb):
            with m.If(free_beat[b * cfg.rows // nb]):
                m.d.sync += h_beat[8 * b:8 * b + 8].eq(self.w.payload[8 * b:8 * b + 8])
        with m.If(free_tag):
            m.d.sync += [h_g.eq(acc_g), h_first.eq(g_first), h_final.eq(g_last),
                         h_lasttile.eq(t_last)]
        # take implies adv and an issue register that is empty or issuing its last use
        # (can_take)
        with m.If(adv & h_valid & ~last_use):
            m.d.comb += h_v_nxt.eq(h_v + 1)
        with m.Elif(take):
            m.d.comb += [h_valid_nxt.eq(1), h_v_nxt.eq(0)]
        with m.Elif(adv):
            m.d.comb += h_valid_nxt.eq(0)
        with m.If(take & g_last & t_last):
            m.d.comb += w_open_nxt.eq(0)
        # after LOAD's last word RUN opens for beats one cycle later: the condition is
        # registered first (open_q), so the act port's valid stays out of w.ready's
        # next-value logic (without LOAD it opens as ``starting`` ends)
        open_set = Signal()
        open_q = Signal()
        m.d.sync += open_q.eq(open_set)
        with m.If(open_q):
            m.d.comb += w_open_nxt.eq(1)
        # the accept-side counters: loaded while starting, stepped by take
        with m.If(starting | take_g):
            m.d.sync += [acc_g.eq(Mux(starting | g_last, 0, acc_g + 1)),
                         g_first.eq(starting | g_last),
                         gc.eq(Mux(starting | g_last, lg_m1, gc - 1))]
        with m.If(starting | (take_t & g_last)):
            m.d.sync += tc.eq(Mux(starting, lt_m1, tc - 1))

        # --- control ------------------------------------------------------------------------
        with m.If(idle):
            m.d.sync += [ld_g.eq(0), ld_v.eq(0)]
            with m.If(self.cmd.valid):
                m.d.sync += [self.err.eq(0), idle.eq(0), starting.eq(1)]
        with m.If(starting):
            m.d.sync += starting.eq(0)
            with m.If(load_act):
                m.d.sync += loading.eq(1)
            with m.Else():
                m.d.comb += w_open_nxt.eq(1)
        # the LOAD counters through their next values, so that "this word ends LOAD"
        # (ld_done: the last word of the last vector) is a flip-flop of its own, near the
        # issue control it feeds
        ld_gc_nxt = Signal.like(ld_gc)
        ld_v_last_nxt = Signal()
        m.d.comb += [ld_gc_nxt.eq(ld_gc), ld_v_last_nxt.eq(ld_v_last)]
        m.d.sync += [ld_gc.eq(ld_gc_nxt), ld_v_last.eq(ld_v_last_nxt)]
        # beside ld_gc, ld_gc2 = ld_gc - 1 (reloaded from lg_m2 = last_group - 2): the sign
        # of ld_gc's next value is then a choice among flip-flops (lg_m1's, ld_gc2's,
        # ld_gc's sign), no decrement before ld_done
        ld_gc2 = Signal(signed(gw + 1))
        ld_step = Signal()
        gc_neg_nxt = Signal()
        m.d.comb += [ld_step.eq(loading & self.act.valid),
                     gc_neg_nxt.eq(Mux(ld_step, Mux(ld_g_last, lg_m1[-1], ld_gc2[-1]),
                                       ld_gc[-1]))]
        with m.If(starting | ld_step):
            m.d.comb += ld_gc_nxt.eq(Mux(starting | ld_g_last, lg_m1, ld_gc - 1))
            m.d.sync += ld_gc2.eq(Mux(starting | ld_g_last, lg_m2, ld_gc2 - 1))
        with m.If(idle):
            m.d.comb += ld_v_last_nxt.eq(T == 1)
        # loading and at the last word of the last vector: the next word ends LOAD
        loading_nxt = Signal()
        ld_done_nxt = Signal()
        ld_done, = replicate(m, "ld_done", ld_done_nxt, 1)
        # the buffer's write enable from a copy of ``loading`` (hw/replica.py), so the LOAD
        # control's own flip-flop drives only the control
        ld_copy, = replicate(m, "loading", loading_nxt, 1)
        m.d.comb += buf.w_en.eq(self.act.valid & ld_copy)
        m.d.comb += [loading_nxt.eq(Mux(starting, load_act,
                                        loading & ~(self.act.valid & ld_done))),
                     ld_done_nxt.eq(Mux(starting, load_act & lg_m1[-1] & (T == 1),
                                        loading_nxt & gc_neg_nxt & ld_v_last_nxt))]
        with m.If(self.act.valid & ld_done):
            m.d.comb += open_set.eq(1)
        with m.If(loading):
            with m.If(self.act.valid):
                with m.If(ld_done):
                    m.d.sync += loading.eq(0)
                with m.If(ld_g_last):
                    m.d.sync += ld_g.eq(0)
                    with m.If(~ld_v_last):
                        m.d.sync += ld_v.eq(ld_v + 1)
                        m.d.comb += ld_v_last_nxt.eq(ld_v == T - 2)
                with m.Else():
                    m.d.sync += ld_g.eq(ld_g + 1)
        # RUN ends when its last result beat is popped: the scale MAC registers that pop
        # next to the FIFO (``mac.done``), so res.ready reaches the state one cycle later
        # and the engine is idle two cycles after that pop
        with m.If(mac.done):
            m.d.sync += idle.eq(1)
        return m
