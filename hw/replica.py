"""Replicated registers: one value held in several flip-flops, each with a share of the
fanout. This is the engine's one mechanism for cycle-neutral fan-out.

A clock enable such as the engine's global advance reaches thousands of flip-flops; from
one flip-flop that is one net spread over the chip, and its routing (not logic) limits the
clock. ``Replicas(n)`` is ``n`` flip-flops loaded with the same next value ``d``: the
block that owns a register computes its next value and drives the copies' ``d``, and each
group of loads takes its own copy. ``PointerReplicas`` does the same for a one-hot pointer
that steps on a condition: each copy computes its own next value from its own bits and its
own condition, so only the condition travels to it.

Every copy is a module of its own named ``KEEP_PREFIX<i>``: synthesis would merge
identical flip-flops of one module, so the flow marks these modules ``keep_hierarchy``
(``fpga.synth``) and nextpnr places every copy near its own loads. In simulation they are
ordinary registers holding equal values: behaviour and cycle timing do not change.
"""
from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int

#: submodule names of replica flip-flops (the synthesis flow keeps them apart by this prefix)
KEEP_PREFIX = "keep_"


class _FlipFlop(Elaboratable):
    def __init__(self, init: int):
        self.d = Signal()
        self.q = Signal(init=init)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m


class _Pointer(Elaboratable):
    def __init__(self, size: int):
        self.a = Signal()
        self.b = Signal()
        self.q = Signal(size, init=1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.a & self.b):
            m.d.sync += self.q.eq(self.q.rotate_left(1))
        return m


class _Register(Elaboratable):
    def __init__(self, width: int):
        self.d = Signal(width)
        self.en = Signal()
        self.q = Signal(width)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.q.eq(self.d)
        return m


class RegisterReplicas(wiring.Component):
    """``n`` copies of a ``width``-bit register loaded with ``d`` while its enable is high
    (synchronous reset to 0): ``q[i]`` is copy i, for a pipeline register whose value
    selects many multiplexers. With ``enables`` = k > 1, ``en`` is k bits (copies of one
    enable, so that none drives every copy) and copy i takes ``en[i * k // n]``."""

    def __new__(cls, width: int, n: int, *, enables: int = 1):
        check_int("RegisterReplicas", "width", width, 1)
        check_int("RegisterReplicas", "n", n, 1)
        check_int("RegisterReplicas", "enables", enables, 1)
        return super().__new__(cls)

    def __init__(self, width: int, n: int, *, enables: int = 1):
        self.width, self.n, self.enables = width, n, enables
        super().__init__({"d": In(width), "en": In(enables), "q": Out(data.ArrayLayout(width, n))})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.submodules[f"{KEEP_PREFIX}{i}"] = r = _Register(self.width)
            m.d.comb += [r.d.eq(self.d), r.en.eq(self.en[i * self.enables // self.n]), self.q[i].eq(r.q)]
        return m


class Replicas(wiring.Component):
    """``n`` flip-flops that take ``d`` every cycle (synchronous reset to ``init``): ``q[i]``
    is copy i. ``n = 0`` is allowed (no copies). With ``inputs`` = k > 1, ``d`` is k bits
    (k copies of the same value, each a flip-flop of the level before, for a tree of
    copies) and copy i takes ``d[i * k // n]``: consecutive copies share an input."""

    def __new__(cls, n: int, *, init: int = 0, inputs: int = 1):
        check_int("Replicas", "n", n)
        check_int("Replicas", "inputs", inputs, 1)
        if init not in (0, 1):
            raise ValueError(f"Replicas init must be 0 or 1, not {init!r}")
        return super().__new__(cls)

    def __init__(self, n: int, *, init: int = 0, inputs: int = 1):
        self.n, self.init, self.inputs = n, init, inputs
        super().__init__({"d": In(inputs), "q": Out(n)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.submodules[f"{KEEP_PREFIX}{i}"] = ff = _FlipFlop(self.init)
            m.d.comb += [ff.d.eq(self.d[i * self.inputs // self.n]), self.q[i].eq(ff.q)]
        return m


class PointerReplicas(wiring.Component):
    """``n`` copies of a one-hot pointer of ``size`` bits (bit 0 after reset); copy i rotates
    by one when ``a[i] & b[i]`` (the AND is the copy's own; equal conditions keep the copies
    equal)."""

    def __new__(cls, size: int, n: int):
        check_int("PointerReplicas", "n", n)
        check_int("PointerReplicas", "size", size, 1)
        return super().__new__(cls)

    def __init__(self, size: int, n: int):
        self.size, self.n = size, n
        super().__init__({"a": In(n), "b": In(n), "q": Out(data.ArrayLayout(size, n))})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.submodules[f"{KEEP_PREFIX}{i}"] = p = _Pointer(self.size)
            m.d.comb += [p.a.eq(self.a[i]), p.b.eq(self.b[i]), self.q[i].eq(p.q)]
        return m


def replicas(m: Module, name: str, d, n: int, *, init: int = 0) -> list:
    """``n`` copies of the register whose next value is ``d``, as submodule
    ``<name>_copies`` of ``m``; returns the copies' outputs. ``d`` may be a list of k
    one-bit signals holding the same value (copies of it): copy i then takes
    ``d[i * k // n]``. A value of several bits gets ``RegisterReplicas`` (init 0); one of
    no bits needs no register (its copies are ``d``)."""
    if not isinstance(d, (list, tuple)) and len(d) != 1:
        if len(d) == 0:
            return [d] * n
        if init:
            raise ValueError(f"replicas {name}: a value of {len(d)} bits starts at 0, not {init}")
        m.submodules[f"{name}_copies"] = r = RegisterReplicas(len(d), n)
        m.d.comb += [r.d.eq(d), r.en.eq(1)]
        return [r.q[i] for i in range(n)]
    ds = list(d) if isinstance(d, (list, tuple)) else [d]
    m.submodules[f"{name}_copies"] = r = Replicas(n, init=init, inputs=len(ds))
    m.d.comb += [r.d[i].eq(x) for i, x in enumerate(ds)]
    return [r.q[i] for i in range(n)]


def pointer_replicas(m: Module, name: str, size: int, steps: list) -> list:
    """One one-hot pointer copy per condition ``(a, b)`` of ``steps``, as submodule
    ``<name>_copies`` of ``m``; returns the copies' outputs."""
    m.submodules[f"{name}_copies"] = r = PointerReplicas(size, len(steps))
    m.d.comb += [x for i, (a, b) in enumerate(steps) for x in (r.a[i].eq(a), r.b[i].eq(b))]
    return [r.q[i] for i in range(len(steps))]
