"""The engine's command front end: command latch, start cycle, LOAD, the pending command,
the commands in flight.

States (``tritforge.hwconfig.State``), one flip-flop each, so ``cmd.ready`` and
``act_ready`` are flip-flops: ``free`` -> ``start`` -> (``load``) -> ``ready`` -> ``free``.
The front end works ahead of the issue stage (hw/issue.py), which runs the command it
took last: while that command streams its beats, the next one is accepted, loads its
activation words and waits as the *pending* command, and the issue stage takes it with
the running command's last beat (hw/ENGINE.md "Back to back").

* ``free``: ``cmd.ready``. The command is registered as it arrives, in every free cycle,
  as the counters' reload values: ``last_group - 1``, ``last_group - 2``, ``last_tile - 1``
  (the port's payload reaches one decrement, nothing else), ``load_act`` and ``cb_bank``.
  ``accept`` is the handshake.
* ``start``: one cycle, in which LOAD's counters load. The command's activation bank is
  latched with it: a command that loads takes the bank the latest completed LOAD did not
  (``hwconfig.ACT_BANKS``), one that does not reads the latest completed LOAD's bank (a
  register without reset, like the buffer), so a command taken in its start cycle reads
  the right bank even after a reset.
* ``load``: ``act_ready``; word ``v * ng + g`` is written to the activation buffer at
  ``Cat(g, bank, v)`` (``HwConfig.act_stride``, a power of two: no adder). The group
  counter counts down one below the words left in a signed register, so "last group" is
  its sign bit; beside it ``ld_gc2 = ld_gc - 1`` (reloaded from ``last_group - 2``), so
  the sign of ``ld_gc``'s next value is a choice among flip-flops and "the next word ends
  LOAD" (``ld_done``) is a flip-flop of its own. After the last word the command is
  ``ready`` (``LOAD_OPEN_CYCLES``), so the act port's valid stays out of ``w.ready``'s
  logic.
* ``pend_valid`` = ``ready``, or ``start`` of a command without LOAD: the issue stage may
  take the command (``take``) at this edge; the front end is ``free`` after it.

``busy`` is a flip-flop: some command accepted and its last result not yet popped and
counted (``done``, the scale MAC's registered pop of a command's last result). ``err`` is
cleared by an accept only when no command is in flight (``clear``), so an error of a
command still streaming is never lost to the next one's accept.

The buffer's write enable and ``ld_done`` come from copies of their registers
(``hw.replica``), so the control's own flip-flops drive only the control.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import FIFO_DEPTH, HwConfig
from .checks import check_config
from .replica import replicas
from .signature import payload_layouts

def max_in_flight(cfg: HwConfig) -> int:
    """Commands in flight at most: the one in the front end, one per item the pipeline and
    the result FIFO can hold (a command's last result leaves after all its items, and under
    back-pressure commands of one beat can follow each other through every stage), one
    counted out a cycle after its last pop."""
    return 1 + cfg.pipeline_stages + FIFO_DEPTH + 1



def counter_shapes(cfg: HwConfig) -> tuple[int, int]:
    """Widths of the signed down counters of groups and tiles (one bit above the command's
    fields, so that -1 is their sign)."""
    cl = payload_layouts(cfg)["cmd"]
    return cl["last_group"].shape.width + 1, cl["last_tile"].shape.width + 1


def buffer_address_bits(cfg: HwConfig) -> int:
    """Bits of ``Cat(group, bank, vector)``."""
    return (payload_layouts(cfg)["cmd"]["last_group"].shape.width
            + max(1, (cfg.vectors - 1).bit_length()) + 1)


class CommandControl(wiring.Component):
    """Ports: ``cmd`` (the engine's command stream), ``act_valid``/``act_ready`` (LOAD's
    handshake), ``wr_en``/``wr_addr`` (the activation buffer's write port); the pending
    command to the issue stage: ``pend_valid``, ``last_group_m1``/``last_tile_m1`` (the
    counters' reload values), ``cb_bank``, ``act_bank``, and ``take`` (in: the issue stage
    takes it at this edge); ``accept``, ``clear`` (an accept with no command in flight:
    clears ``err``), ``done`` (in: a command's last result was popped), ``busy``.

    Its registers in the cycle-visible paths (the start cycle, the registered "ready after
    LOAD", ``busy`` one cycle after ``done``) are ``tritforge.hwconfig``'s
    ``CMD_ACCEPT_CYCLES``, ``LOAD_OPEN_CYCLES`` and ``END_CYCLES``; the engine's timing tests
    measure them on the RTL against those constants (tests/test_hw_engine.py,
    tests/test_engine_contract.py)."""

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
            "pend_valid": Out(1), "take": In(1),
            "last_group_m1": Out(signed(gw)), "last_tile_m1": Out(signed(tw)),
            "cb_bank": Out(1), "act_bank": Out(1),
            "accept": Out(1), "clear": Out(1), "done": In(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        T = self.cfg.vectors
        m = Module()
        free = Signal(init=1)
        start = Signal()
        load = Signal()
        ready = Signal()
        accept = Signal()
        m.d.comb += [self.cmd.ready.eq(free), self.act_ready.eq(load),
                     accept.eq(free & self.cmd.valid), self.accept.eq(accept)]

        # the commands in flight, busy a flip-flop of their next count
        in_flight = Signal(range(max_in_flight(self.cfg) + 1))
        in_flight_nxt = Signal.like(in_flight)
        busy = Signal()
        # busy = (in_flight != 0) in every cycle, so the clear is one gate after the port's
        # valid, and busy's next value is "an accept, more than one, or one not done"
        # (no adder between the port and it)
        m.d.comb += [in_flight_nxt.eq(in_flight + accept - self.done), self.busy.eq(busy),
                     self.clear.eq(accept & ~busy)]
        m.d.sync += [in_flight.eq(in_flight_nxt),
                     busy.eq(accept | (in_flight[1:] != 0) | (in_flight[0] & ~self.done))]

        # the command latch: the counters' reload values
        p = self.cmd.payload
        lg_m1, lt_m1 = self.last_group_m1, self.last_tile_m1
        lg_m2 = Signal(signed(len(lg_m1) + 1))
        load_act = Signal()
        # the activation bank of the latest completed LOAD (kept through reset, like the
        # buffer, so a command after a reset reuses the words loaded before it); the
        # command's bank, latched with it: the other one if it loads
        latest = Signal(reset_less=True)
        with m.If(free):
            m.d.sync += [lg_m1.eq(p.last_group - 1), lg_m2.eq(p.last_group - 2),
                         lt_m1.eq(p.last_tile - 1), load_act.eq(p.load_act),
                         self.cb_bank.eq(p.cb_bank), self.act_bank.eq(latest ^ p.load_act)]

        # LOAD's counters: group and vector of the next word, and the groups after it - 1
        ld_g = Signal(p.last_group.shape())
        ld_v = Signal(range(max(T, 2)))
        ld_gc = Signal.like(lg_m1)
        ld_g_last = ld_gc[-1]
        ld_v_last = Signal()                  # ld_v == T - 1
        m.d.comb += self.wr_addr.eq(Cat(ld_g, self.act_bank, ld_v))

        # the pending command: ready after LOAD (registered), or in start without LOAD
        m.d.comb += self.pend_valid.eq(ready | (start & ~load_act))
        with m.If(accept):
            m.d.sync += [free.eq(0), start.eq(1)]
        with m.If(free):
            m.d.sync += [ld_g.eq(0), ld_v.eq(0)]
        with m.If(start):
            m.d.sync += start.eq(0)
            with m.If(load_act):
                m.d.sync += load.eq(1)
            with m.Elif(self.take):
                m.d.sync += free.eq(1)
            with m.Else():
                m.d.sync += ready.eq(1)
        with m.If(ready & self.take):
            m.d.sync += [ready.eq(0), free.eq(1)]

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
        with m.If(free):
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
        with m.If(load & self.act_valid):
            with m.If(ld_done):
                m.d.sync += [load.eq(0), ready.eq(1), latest.eq(self.act_bank)]
            with m.If(ld_g_last):
                m.d.sync += ld_g.eq(0)
                with m.If(~ld_v_last):
                    m.d.sync += ld_v.eq(ld_v + 1)
                    m.d.comb += ld_v_last_nxt.eq(ld_v == T - 2)
            with m.Else():
                m.d.sync += ld_g.eq(ld_g + 1)
        return m
