"""Sequential restoring divider: unsigned ``quo = num // den``, ``rem = num % den``, one
quotient bit per cycle.

The quotient has ``quo_bits`` bits; the caller guarantees ``num < den · 2^quo_bits``
(always true with the default ``quo_bits = num_bits``). A narrower quotient is what makes
the divider short: the vector unit's int8 reciprocal R = floor(127 · 2^K / mu),
K = bitlen(mu) + B, has B + 8 bits whatever mu's width (codec/fixedpoint.quantize_int8),
and the attention unit's 1/l of a normalized l has RL + 2.

Registers: the partial remainder ``r`` (den_bits: r < den after every step) and a shift
register ``q`` of quo_bits that starts with the numerator's low quo_bits bits and ends with
the quotient (each step shifts a numerator bit out at the top, into r, and the new quotient
bit in at the bottom). On accepting a beat, r = num >> quo_bits and q = num's low bits;
each of the next quo_bits cycles does one restoring step

    t = 2 r + q[top];  if t >= den: r = t - den, bit = 1  else: r = t, bit = 0

and then the result stays on ``o`` until taken. ``den = 0`` gives quo = 2^quo_bits - 1
(every trial subtraction succeeds) and a meaningless remainder.

Ports (``tritforge.vectorports.divider_ports``): ``i`` stream of ``{num, den}``, ``o``
stream of ``{quo, rem}``. Timing: a beat accepted in cycle t is on ``o`` from cycle
t + ``latency`` (= quo_bits + 1); ``i.ready`` is high when the divider is idle or its
result is being taken, so back-to-back divisions start every quo_bits + 1 cycles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring

from ..vectorports import divider_ports
from .checks import check_int
from .signature import members


class RestoringDivider(wiring.Component):
    """Ports: ``i`` {num, den}; ``o`` {quo, rem}. Latency quo_bits + 1 cycles, one division
    at a time."""

    def __new__(cls, num_bits: int, den_bits: int, quo_bits: int | None = None):
        check_int("RestoringDivider", "num_bits", num_bits, 1)
        check_int("RestoringDivider", "den_bits", den_bits, 1)
        if quo_bits is not None:
            check_int("RestoringDivider", "quo_bits", quo_bits, 1)
            if quo_bits > num_bits:
                raise ValueError(f"RestoringDivider quo_bits must be at most num_bits={num_bits}, "
                                 f"not {quo_bits}")
        return super().__new__(cls)

    def __init__(self, num_bits: int, den_bits: int, quo_bits: int | None = None):
        self.num_bits, self.den_bits = num_bits, den_bits
        self.quo_bits = num_bits if quo_bits is None else quo_bits
        self.latency = self.quo_bits + 1
        super().__init__(members(divider_ports(num_bits, den_bits, self.quo_bits)))

    def elaborate(self, platform):
        m = Module()
        Q = self.quo_bits
        r = Signal(self.den_bits)
        den = Signal(self.den_bits)
        q = Signal(Q)
        left = Signal(range(Q + 1))          # steps still to do
        busy = Signal()                      # a division is in r, q (running or done)
        run = Signal()                       # busy and left != 0, registered
        done = Signal()                      # busy and left == 0, registered
        t = Signal(self.den_bits + 1)
        diff = Signal(self.den_bits + 2)     # t - den; its top bit is the borrow (t < den)
        ge = Signal()
        m.d.comb += [t.eq(Cat(q[-1], r)), diff.eq(t - den), ge.eq(~diff[-1]),
                     self.o.valid.eq(done), self.o.payload.quo.eq(q), self.o.payload.rem.eq(r),
                     self.i.ready.eq(~busy | done & self.o.ready)]
        with m.If(run):
            m.d.sync += [r.eq(Mux(ge, diff[:self.den_bits], t)), q.eq(Cat(ge, q[:-1])), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += [run.eq(0), done.eq(1)]
        with m.If(done & self.o.ready):
            m.d.sync += [busy.eq(0), done.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            num = self.i.payload.num
            m.d.sync += [r.eq(num[Q:]), q.eq(num[:Q]), left.eq(Q), busy.eq(1), run.eq(1),
                         den.eq(self.i.payload.den)]
        return m
