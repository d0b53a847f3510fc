"""The engine's result FIFO and its one global advance (hw/ENGINE.md "Timing").

``FIFO_DEPTH`` result beats, written in turn at a write pointer and read at a read
pointer; ``o`` is the engine's ``res`` stream: ``o.payload`` is the entry at the read
pointer in every cycle, ``o.valid`` = "not empty" (a flip-flop from the next count).

The advance ``adv`` (every pipeline stage's clock enable) is a flip-flop decided three
cycles ahead: flip-flops ``adv2`` and ``adv3`` hold the advances of the next two cycles
(``adv(n+1) = adv2(n)``, ``adv2(n+1) = adv3(n)``) and ``adv3(n+1)`` is high when a push in
cycle n+3 fits even if nothing is popped before: ``count(n) + push(n) + adv2(n) + adv3(n)
<= FIFO_DEPTH - 1`` (a push in cycles n+1 and n+2 whenever they advance; as compares of
the count with constants, no adder). So ``o.ready`` (the pop) reaches only the read
pointer's copies, the count, and the flip-flop that registers the pop of a command's
last beat (``done``, which counts the command out of those in flight): no advance.

Fan-out (``hw.replica``, cycle-neutral): ``adv_next`` (= ``adv2``) is what ``adv`` will be
in the next cycle, for registers outside computed from their next state; ``adv_copies``
are flip-flops loaded from ``adv3``, for the advance's copies in the other blocks (a tree
of flip-flops). Every row (and the vector and last fields) has its own copy of the push
(a flip-flop loaded from its next value) and of the one-hot write pointer stepped by it,
and each entry's write enable is a flip-flop of its own loaded from their next values,
and its own copy of the read pointer, which selects its field by an AND-OR of the
entries.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import FIFO_DEPTH, HwConfig
from .checks import check_config, check_int
from .replica import pointer_replicas, replicas
from .signature import payload_layouts


class ResultFifo(wiring.Component):
    """Ports: ``entry`` (the result beat at the pipeline's end), ``final`` (that beat is
    complete this cycle: pushed when ``adv``), ``final_next`` (the same for the next
    cycle); ``o`` (the result stream), ``adv``, ``adv_next``, ``adv_copies``, ``done``."""

    def __new__(cls, cfg: HwConfig, *, adv_copies: int = 0):
        check_config("ResultFifo", cfg)
        check_int("ResultFifo", "adv_copies", adv_copies)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig, *, adv_copies: int = 0):
        self.cfg = cfg
        res = payload_layouts(cfg)["res"]
        super().__init__({
            "entry": In(res), "final": In(1), "final_next": In(1),
            "o": Out(stream.Signature(res)),
            "adv": Out(1, init=1), "adv_next": Out(1, init=1), "adv_copies": Out(adv_copies),
            "done": Out(1),
        })

    def elaborate(self, platform):
        R, D = self.cfg.rows, FIFO_DEPTH
        m = Module()
        entries = [Signal(self.o.payload.shape(), name=f"fifo{e}") for e in range(D)]
        cnt = Signal(range(D + 1))
        cnt_nxt = Signal(range(D + 1))
        adv, adv2 = self.adv, self.adv_next
        adv3 = Signal(init=1)
        push = Signal()
        pop = Signal()
        m.d.comb += [push.eq(adv & self.final), pop.eq(self.o.valid & self.o.ready),
                     cnt_nxt.eq(cnt + push - pop)]
        m.d.sync += [cnt.eq(cnt_nxt), adv.eq(adv2), self.o.valid.eq(cnt_nxt != 0)]

        # the advance three cycles ahead
        ahead = [push, adv2, adv3]
        with m.Switch(Cat(*ahead)):
            for bits in range(1 << len(ahead)):
                with m.Case(bits):
                    m.d.sync += adv3.eq(cnt <= D - 1 - bin(bits).count("1"))
        m.d.sync += adv2.eq(adv3)
        for i, q in enumerate(replicas(m, "adv2", adv3, len(self.adv_copies), init=1)):
            m.d.comb += self.adv_copies[i].eq(q)

        # the pop of a command's last beat (the head's ``last``: the entries and a copy of
        # the read pointer, flip-flops), registered as ``done``; the FIFO may hold the next
        # command's beats behind it
        m.d.sync += self.done.eq(pop & self.o.payload.last)

        # read: per row (and one for vector and last) a copy of the one-hot read pointer
        rps = pointer_replicas(m, "rp", D, [(self.o.valid, self.o.ready)] * (R + 1))
        out = self.o.payload
        fields = [(out.acc[r], [x.acc[r] for x in entries], rps[r]) for r in range(R)]
        fields += [(out.vector, [x.vector for x in entries], rps[R]),
                   (out.last, [x.last for x in entries], rps[R])]
        for value, ins, sel in fields:
            m.d.comb += value.eq(reduce(operator.or_, [Mux(sel[e], ins[e], 0) for e in range(D)]))

        # write: per row (and one for vector and last) a copy of the push and of the
        # one-hot write pointer stepped by it, and the entries' write enables as flip-flops
        # of their own (from the push's and the pointer's next values), so an entry's
        # clock enable is a flip-flop
        push_nxt = Signal()
        m.d.comb += push_nxt.eq(adv2 & self.final_next)
        pushes = replicas(m, "push", push_nxt, R + 1)
        wps = pointer_replicas(m, "wp", D, [(p, 1) for p in pushes])
        wes = []
        for c in range(R + 1):
            wp_nxt = Mux(pushes[c], wps[c].rotate_left(1), wps[c])
            wes.append(replicas(m, f"we{c}", [push_nxt & wp_nxt[e] for e in range(D)], D))
        for e in range(D):
            with m.If(wes[R][e]):
                m.d.sync += [entries[e].vector.eq(self.entry.vector),
                             entries[e].last.eq(self.entry.last)]
            for r in range(R):
                with m.If(wes[r][e]):
                    m.d.sync += entries[e].acc[r].eq(self.entry.acc[r])
        return m
