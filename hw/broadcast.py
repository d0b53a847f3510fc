"""One stream to ``n`` consumers placed apart: registered fan-out trees, flow control by
credits. The engine array's (hw/engine_array.py) command, codebook and activation
streams reach its engines through these, so no net runs from a port to every engine and
no engine's ready reaches the port in the same cycle.

``RegisteredTree``: a value and its valid through ``levels`` register stages, each stage
``fanout`` times as many copies as the one before (the last stage one copy per consumer),
every copy a kept module (hw/replica.py's prefix, so synthesis does not merge them and
nextpnr places each between its source and its loads). No back-pressure: for a consumer
that is always ready (the engine's ``cb``).

``CreditBroadcast``: the input is taken when every consumer has a free entry in its queue
(``credits``); a taken item goes through a ``RegisteredTree`` into a queue of ``depth``
entries per consumer (``amaranth.lib.fifo.SyncFIFOBuffered``, beside the consumer), and a
pop returns that consumer's credit through ``RETURN_STAGES`` flip-flops. ``i.ready`` is a
flip-flop: the AND of "has a credit" over the consumers, computed from the counters' next
values. An item taken in cycle c is offered by every queue from cycle
c + ``levels`` + 2 (``latency``) on, each consumer taking it when it is ready.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Elaboratable, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .replica import KEEP_PREFIX

#: flip-flops that carry a consumer's pop back to its credit counter
RETURN_STAGES = 2


def tree_levels(n: int, fanout: int) -> int:
    """Register stages of a tree from one register to ``n`` copies, ``fanout`` per stage
    (at least one stage: the consumers' own copies)."""
    levels, copies = 1, fanout
    while copies < n:
        levels, copies = levels + 1, copies * fanout
    return levels


class _Copy(Elaboratable):
    def __init__(self, width: int):
        self.d_valid, self.d = Signal(), Signal(width)
        self.valid, self.q = Signal(), Signal(width)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.valid.eq(self.d_valid), self.q.eq(self.d)]
        return m


class RegisteredTree(wiring.Component):
    """``width`` bits and a valid to ``n`` copies through ``tree_levels(n, fanout)``
    register stages; copy j of the last stage feeds consumer j."""

    def __new__(cls, width: int, n: int, fanout: int = 2):
        check_int("RegisteredTree", "width", width, 1)
        check_int("RegisteredTree", "n", n, 1)
        check_int("RegisteredTree", "fanout", fanout, 2)
        return super().__new__(cls)

    def __init__(self, width: int, n: int, fanout: int = 2):
        self.width, self.n, self.fanout = width, n, fanout
        self.levels = tree_levels(n, fanout)
        super().__init__({"i_valid": In(1), "i": In(width),
                          "o_valid": Out(n), "o": Out(width).array(n)})

    def elaborate(self, platform):
        m = Module()
        # stage k has ceil(n / fanout^(levels-1-k)) copies; copy j feeds copies
        # j*fanout .. j*fanout+fanout-1 of the next stage
        prev = [(self.i_valid, self.i)]
        for k in range(self.levels):
            count = -(-self.n // self.fanout ** (self.levels - 1 - k))
            stage = []
            for j in range(count):
                m.submodules[f"{KEEP_PREFIX}s{k}_{j}"] = c = _Copy(self.width)
                src_valid, src = prev[j // self.fanout if k else 0]
                m.d.comb += [c.d_valid.eq(src_valid), c.d.eq(src)]
                stage.append((c.valid, c.q))
            prev = stage
        for j, (valid, q) in enumerate(prev):
            m.d.comb += [self.o_valid[j].eq(valid), self.o[j].eq(q)]
        return m


class CreditBroadcast(wiring.Component):
    """Stream ``i`` (payload ``shape``) to the ``n`` streams ``o[j]``; each consumer takes
    every item in order when it is ready (module docstring)."""

    def __new__(cls, shape, n: int, depth: int, fanout: int = 2):
        check_int("CreditBroadcast", "n", n, 1)
        check_int("CreditBroadcast", "depth", depth, 2)
        check_int("CreditBroadcast", "fanout", fanout, 2)
        return super().__new__(cls)

    def __init__(self, shape, n: int, depth: int, fanout: int = 2):
        self.shape, self.n, self.depth = shape, n, depth
        self.tree = RegisteredTree(Shape.cast(shape).width, n, fanout)
        self.queues = [SyncFIFOBuffered(width=self.tree.width, depth=depth) for _ in range(n)]
        super().__init__({"i": In(stream.Signature(shape)),
                          "o": Out(stream.Signature(shape)).array(n),
                          "idle": Out(1)})

    @property
    def latency(self) -> int:
        """Cycles from an item taken at ``i`` until every queue offers it (when empty)."""
        return self.tree.levels + 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.tree = tree = self.tree
        take = self.i.valid & self.i.ready
        m.d.comb += [tree.i_valid.eq(take), tree.i.eq(self.i.payload)]

        has_credit, full = [], []
        for j, q in enumerate(self.queues):
            m.submodules[f"queue{j}"] = q
            m.d.comb += [q.w_en.eq(tree.o_valid[j]), q.w_data.eq(tree.o[j]),
                         self.o[j].valid.eq(q.r_rdy), self.o[j].payload.eq(q.r_data),
                         q.r_en.eq(self.o[j].ready)]
            ret = q.r_rdy & q.r_en
            for k in range(RETURN_STAGES):
                r = Signal(name=f"ret{j}_{k}")
                m.d.sync += r.eq(ret)
                ret = r
            count = Signal(range(self.depth + 1), init=self.depth, name=f"credits{j}")
            nxt = count - take + ret
            m.d.sync += count.eq(nxt)
            has_credit.append(nxt != 0)
            full.append(nxt == self.depth)
        ready = Signal(init=1, name="ready")
        idle = Signal(init=1, name="idle_q")
        m.d.sync += [ready.eq(reduce(operator.and_, has_credit)),
                     idle.eq(reduce(operator.and_, full))]
        m.d.comb += [self.i.ready.eq(ready), self.idle.eq(idle)]
        return m
