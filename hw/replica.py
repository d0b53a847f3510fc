"""Replicated flip-flops: one register value driven from several flip-flops, each with a
share of the fanout.

A clock enable such as the engine's global advance reaches thousands of flip-flops; from
one flip-flop that is one net spread over the chip, and its routing (not logic) limits the
clock. ``replicate`` builds ``n`` flip-flops loaded with the same next value, each in a
module of its own named ``KEEP_PREFIX...``: synthesis would merge identical flip-flops of
one module, so the flow marks these modules ``keep_hierarchy`` (``fpga.synth``) and
nextpnr places every copy near its own loads. In simulation they are ordinary registers
holding equal values: behaviour and cycle timing do not change.
"""
from amaranth.hdl import Elaboratable, Module, Signal

#: submodule names of replica flip-flops (the synthesis flow keeps them apart by this prefix)
KEEP_PREFIX = "keep_"


class ReplicaFF(Elaboratable):
    """One flip-flop: ``q`` takes ``d`` every cycle (synchronous reset to ``init``)."""

    def __init__(self, init: int = 0):
        self.d = Signal()
        self.q = Signal(init=init)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m


def replicate(m: Module, name: str, d, n: int, init: int = 0) -> list:
    """``n`` flip-flops that take ``d`` every cycle, as submodules ``keep_<name><i>`` of
    ``m``; returns their outputs."""
    outs = []
    for i in range(n):
        ff = ReplicaFF(init)
        m.submodules[f"{KEEP_PREFIX}{name}{i}"] = ff
        m.d.comb += ff.d.eq(d)
        outs.append(ff.q)
    return outs


class ReplicaRing(Elaboratable):
    """A one-hot pointer ``q`` of ``size`` bits (bit 0 after reset) that rotates by one when
    ``a & b``: one copy of a pointer, with its own step logic beside it."""

    def __init__(self, size: int):
        self.a = Signal()
        self.b = Signal()
        self.q = Signal(size, init=1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.a & self.b):
            m.d.sync += self.q.eq(self.q.rotate_left(1))
        return m


def replicate_ring(m: Module, name: str, size: int, steps: list) -> list:
    """One-hot pointers of ``size`` bits, one per ``(a, b)`` of ``steps``, each rotating when
    its ``a & b`` (equal conditions keep the copies equal), as submodules
    ``keep_<name><i>`` of ``m``; each computes its own next value, so only ``a`` and ``b``
    travel to the copies. Returns their outputs."""
    outs = []
    for i, (a, b) in enumerate(steps):
        c = ReplicaRing(size)
        m.submodules[f"{KEEP_PREFIX}{name}{i}"] = c
        m.d.comb += [c.a.eq(a), c.b.eq(b)]
        outs.append(c.q)
    return outs
