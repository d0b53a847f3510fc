"""The engine's command control: command latch, start cycle, LOAD, end of RUN.

States (``tritforge.hwconfig.State``), one flip-flop each but RUN (so ``cmd.ready``,
``act_ready`` and ``busy`` are flip-flops): ``idle`` -> ``start`` -> (``load``) -> RUN ->
``idle``.

* ``idle``: ``cmd.ready``. The command is registered as it arrives, in every idle cycle,
  as the counters' reload values: ``last_group - 1``, ``last_group - 2``, ``last_tile - 1``
  (the port's payload reaches one decrement, nothing else) and ``load_act``. ``accept``
  is the handshake (it clears the engine's ``err``).
* ``start``: one cycle, in which the issue stage's counters load from the latched command
  (``start`` out). Then LOAD if ``load_act``, else RUN, which opens for beats at once
  (``run_open``).
* ``load``: ``act_ready``; word ``v * ng + g`` is written to the activation buffer at
  ``Cat(g, v)`` (``HwConfig.act_stride``, a power of two: no adder). The group counter
  counts down one below the words left in a signed register, so "last group" is its sign
  bit; beside it ``ld_gc2 = ld_gc - 1`` (reloaded from ``last_group - 2``), so the sign of
  ``ld_gc``'s next value is a choice among flip-flops and "the next word ends LOAD"
  (``ld_done``) is a flip-flop of its own. After the last word "RUN opens" is registered
  first, then ``run_open`` (``LOAD_OPEN_CYCLES``), so the act port's valid stays out of
  ``w.ready``'s logic.
* RUN ends when the scale MAC's ``done`` (its registered pop of the command's last result)
  is high: ``idle`` again one cycle later (``END_CYCLES``).

The buffer's write enable and ``ld_done`` come from copies of their registers
(``hw.replica``), so the control's own flip-flops drive only the control.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import HwConfig
from .checks import check_config
from .replica import replicas
from .signature import payload_layouts


def counter_shapes(cfg: HwConfig) -> tuple[int, int]:
    """Widths of the signed down counters of groups and tiles (one bit above the command's
    fields, so that -1 is their sign)."""
    cl = payload_layouts(cfg)["cmd"]
    return cl["last_group"].shape.width + 1, cl["last_tile"].shape.width + 1


def buffer_address_bits(cfg: HwConfig) -> int:
    """Bits of ``Cat(group, vector)``."""
    return payload_layouts(cfg)["cmd"]["last_group"].shape.width + max(1, (cfg.vectors - 1).bit_length())


class CommandControl(wiring.Component):
    """Ports: ``cmd`` (the engine's command stream), ``act_valid``/``act_ready`` (LOAD's
    handshake), ``wr_en``/``wr_addr`` (the activation buffer's write port), ``start``,
    ``run_open``, ``last_group_m1``/``last_tile_m1`` (the counters' reload values, to the
    issue stage), ``accept``, ``done`` (in: RUN's last result was popped), ``busy``.

    Its registers in the cycle-visible paths (the start cycle, the registered "RUN opens",
    idle one cycle after ``done``) are ``tritforge.hwconfig``'s ``CMD_ACCEPT_CYCLES``,
    ``LOAD_OPEN_CYCLES`` and ``END_CYCLES``; the engine's timing tests measure them on the
    RTL against those constants (tests/test_hw_engine.py, tests/test_engine_contract.py)."""

    def __new__(cls, cfg: HwConfig):
        check_config("CommandControl", cfg)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        gw, tw = counter_shapes(cfg)
        super().__init__({
            "cmd": In(stream.Signature(payload_layouts(cfg)["cmd"])),
            "act_valid": In(1), "act_ready": Out(1),
            "wr_en": Out(1), "wr_addr": Out(buffer_address_bits(cfg)),
            "start": Out(1), "run_open": Out(1),
            "last_group_m1": Out(signed(gw)), "last_tile_m1": Out(signed(tw)),
            "accept": Out(1), "done": In(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        T = self.cfg.vectors
        m = Module()
        idle = Signal(init=1)
        start = Signal()
        load = Signal()
        m.d.comb += [self.cmd.ready.eq(idle), self.busy.eq(~idle), self.act_ready.eq(load),
                     self.accept.eq(idle & self.cmd.valid), self.start.eq(start)]

        # the command latch: the counters' reload values
        p = self.cmd.payload
        lg_m1, lt_m1 = self.last_group_m1, self.last_tile_m1
        lg_m2 = Signal(signed(len(lg_m1) + 1))
        load_act = Signal()
        with m.If(idle):
            m.d.sync += [lg_m1.eq(p.last_group - 1), lg_m2.eq(p.last_group - 2),
                         lt_m1.eq(p.last_tile - 1), load_act.eq(p.load_act)]

        # LOAD's counters: group and vector of the next word, and the groups after it - 1
        ld_g = Signal(p.last_group.shape())
        ld_v = Signal(range(max(T, 2)))
        ld_gc = Signal.like(lg_m1)
        ld_g_last = ld_gc[-1]
        ld_v_last = Signal()                  # ld_v == T - 1
        m.d.comb += self.wr_addr.eq(Cat(ld_g, ld_v))

        # RUN opens after LOAD's last word (registered), or right after start without LOAD
        open_set = Signal()
        open_q = Signal()
        m.d.sync += open_q.eq(open_set)
        m.d.comb += self.run_open.eq(open_q | (start & ~load_act))

        with m.If(idle):
            m.d.sync += [ld_g.eq(0), ld_v.eq(0)]
            with m.If(self.cmd.valid):
                m.d.sync += [idle.eq(0), start.eq(1)]
        with m.If(start):
            m.d.sync += start.eq(0)
            with m.If(load_act):
                m.d.sync += load.eq(1)

        # the LOAD counters through their next values, so that ld_done is a flip-flop
        ld_gc_nxt = Signal.like(ld_gc)
        ld_v_last_nxt = Signal()
        m.d.comb += [ld_gc_nxt.eq(ld_gc), ld_v_last_nxt.eq(ld_v_last)]
        m.d.sync += [ld_gc.eq(ld_gc_nxt), ld_v_last.eq(ld_v_last_nxt)]
        ld_gc2 = Signal.like(lg_m2)
        ld_step = Signal()
        gc_neg_nxt = Signal()
        m.d.comb += [ld_step.eq(load & self.act_valid),
                     gc_neg_nxt.eq(Mux(ld_step, Mux(ld_g_last, lg_m1[-1], ld_gc2[-1]),
                                       ld_gc[-1]))]
        with m.If(start | ld_step):
            m.d.comb += ld_gc_nxt.eq(Mux(start | ld_g_last, lg_m1, ld_gc - 1))
            m.d.sync += ld_gc2.eq(Mux(start | ld_g_last, lg_m2, ld_gc2 - 1))
        with m.If(idle):
            m.d.comb += ld_v_last_nxt.eq(T == 1)
        # at the last word of the last vector: the next word ends LOAD
        load_nxt = Signal()
        ld_done_nxt = Signal()
        ld_done, = replicas(m, "ld_done", ld_done_nxt, 1)
        load_copy, = replicas(m, "load", load_nxt, 1)
        m.d.comb += [self.wr_en.eq(self.act_valid & load_copy),
                     load_nxt.eq(Mux(start, load_act, load & ~(self.act_valid & ld_done))),
                     ld_done_nxt.eq(Mux(start, load_act & lg_m1[-1] & (T == 1),
                                        load_nxt & gc_neg_nxt & ld_v_last_nxt))]
        with m.If(self.act_valid & ld_done):
            m.d.comb += open_set.eq(1)
        with m.If(load & self.act_valid):
            with m.If(ld_done):
                m.d.sync += load.eq(0)
            with m.If(ld_g_last):
                m.d.sync += ld_g.eq(0)
                with m.If(~ld_v_last):
                    m.d.sync += ld_v.eq(ld_v + 1)
                    m.d.comb += ld_v_last_nxt.eq(ld_v == T - 2)
            with m.Else():
                m.d.sync += ld_g.eq(ld_g + 1)

        with m.If(self.done):
            m.d.sync += idle.eq(1)
        return m
