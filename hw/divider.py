"""Sequential divider: unsigned ``quo = num // den``, ``rem = num % den``, one quotient bit
per cycle by non-restoring steps.

The quotient has ``quo_bits`` bits; the caller guarantees ``num < den · 2^quo_bits``
(always true with the default ``quo_bits = num_bits``). A narrower quotient is what makes
the divider short: the vector unit's int8 reciprocal R = floor(127 · 2^K / mu),
K = bitlen(mu) + B, has B + 8 bits whatever mu's width (codec/fixedpoint.quantize_int8),
and the attention unit's 1/l of a normalized l has RL + 2.

Registers: the partial remainder ``r`` (signed, den_bits + 1: -den <= r < den after every
step) and a shift register ``q`` of quo_bits that starts with the numerator's low quo_bits
bits and ends with the quotient (each step shifts a numerator bit out at the top, into r,
and the new quotient bit in at the bottom). On accepting a beat, r = num >> quo_bits and
q = num's low bits; each of the next quo_bits cycles does one non-restoring step

    t = 2 r + q[top];  r = t - den if r >= 0 else t + den;  bit = (r >= 0)

(r kept to den_bits + 1 bits), and then the result stays on ``o`` until taken, with
rem = r + den where r < 0. The quotient bits are those of the restoring division (whose
remainder is r where r >= 0 and r + den where r < 0, after every step). A step is one
carry chain (``hw.addsub.add_sub``) that adds den or subtracts it as r's sign, a register,
says; with ``primitives="ecp5"`` the sign enters the chain's own LUTs, so the chain's
inputs are registers (t's bits, den, the sign) and its sums reach r through one LUT, the
multiplexer that loads r. Each quotient bit is the sign of the remainder it made, so q
shifts in the previous step's bit (from the sign register) and the output's last bit is
r's sign. The sign is held in ``COPIES`` registers (``SignCopies``) and ``run`` too
(``hw.replica``), each driving a share of the chain's positions and of r's and q's
multiplexers. ``den = 0`` gives quo = 2^quo_bits - 1 (a flag registered with den forces
every bit) and a meaningless remainder.

den follows the input while the divider is free (idle, or its result being taken:
``i.ready``), and r and q take the input while no step runs and they are not held for a
result, so an accepted beat only starts the count (``run``; ``last``, left == 1,
registered beside the step count).

Ports (``tritforge.vectorports.divider_ports``): ``i`` stream of ``{num, den}``, ``o``
stream of ``{quo, rem}``. Timing: a beat accepted in cycle t is on ``o`` from cycle
t + ``latency`` (= quo_bits + 1); ``i.ready`` is high when the divider is idle or its
result is being taken, so back-to-back divisions start every quo_bits + 1 cycles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..vectorports import divider_ports
from .addsub import add_sub
from .checks import check_int
from .primitives import check_primitives
from .replica import KEEP_PREFIX, replicas
from .signature import members

#: copies of the registers that select the chain's operands (``hw.replica``)
COPIES = 4


class _SignCopy(Elaboratable):
    def __init__(self):
        self.d, self.run, self.q = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        with m.If(self.run):
            m.d.sync += self.q.eq(self.d)
        with m.Else():
            m.d.sync += self.q.eq(0)
        return m


class SignCopies(wiring.Component):
    """``n`` copies of the partial remainder's sign: each takes ``d`` (the chain's top
    sum) while ``run`` and is cleared otherwise (r then takes num >> Q, which is
    non-negative), so the chain's output reaches the copies' data inputs directly and
    ``run`` their synchronous reset. Modules named like ``hw.replica``'s copies, which the
    synthesis flow keeps apart."""

    def __init__(self, n: int):
        self.n = n
        super().__init__({"d": In(1), "run": In(1), "q": Out(n)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.submodules[f"{KEEP_PREFIX}{i}"] = c = _SignCopy()
            m.d.comb += [c.d.eq(self.d), c.run.eq(self.run), self.q[i].eq(c.q)]
        return m


class Divider(wiring.Component):
    """Ports: ``i`` {num, den}; ``o`` {quo, rem}. Latency quo_bits + 1 cycles, one division
    at a time. ``primitives`` (hw/primitives.py) builds the step's add/sub chain
    (``hw.addsub``); the behaviour and the cycles are the same with every set."""

    def __new__(cls, num_bits: int, den_bits: int, quo_bits: int | None = None, *,
                primitives: str = "generic"):
        check_int("Divider", "num_bits", num_bits, 1)
        check_int("Divider", "den_bits", den_bits, 1)
        if quo_bits is not None:
            check_int("Divider", "quo_bits", quo_bits, 1)
            if quo_bits > num_bits:
                raise ValueError(f"Divider quo_bits must be at most num_bits={num_bits}, not {quo_bits}")
        check_primitives(primitives, "Divider")
        return super().__new__(cls)

    def __init__(self, num_bits: int, den_bits: int, quo_bits: int | None = None, *,
                 primitives: str = "generic"):
        self.num_bits, self.den_bits, self.primitives = num_bits, den_bits, primitives
        self.quo_bits = num_bits if quo_bits is None else quo_bits
        self.latency = self.quo_bits + 1
        super().__init__(members(divider_ports(num_bits, den_bits, self.quo_bits)))

    def elaborate(self, platform):
        m = Module()
        Q, D = self.quo_bits, self.den_bits
        num = self.i.payload.num
        r = Signal(D + 1)                    # the partial remainder, two's complement
        den = Signal(D)
        dz = Signal()                        # den == 0
        q = Signal(Q)
        left = Signal(range(Q + 1))          # steps still to do
        last = Signal()                      # left == 1 while running, registered
        run = Signal()                       # a division's steps are running
        done = Signal()                      # its result is on o
        free = Signal()                      # r and q are not held for a result
        accept = Signal()
        run_next = Signal()
        m.d.comb += [free.eq(~done | self.o.ready), self.i.ready.eq(~run & free),
                     accept.eq(self.i.valid & self.i.ready), run_next.eq(accept | run & ~last)]
        # copies of run and of r's sign, each selecting a share of the chain's positions
        # (and of r's and q's multiplexers), so no one register drives them all
        runs = replicas(m, "run", run_next, COPIES)
        m.submodules.sign_copies = signs = SignCopies(COPIES)
        signs_q = [signs.q[k] for k in range(COPIES)]

        def copy(i, n):
            return runs[i * COPIES // n]

        # the step: t = 2 r + q[top], then t + den where r < 0 and t - den where r >= 0 (one
        # chain, hw.addsub: with the ECP5 primitives the sign goes into the chain's LUTs);
        # with no step running r takes num >> Q (and its sign 0)
        t = Cat(q[-1], r[:D])
        s = add_sub(m, "step", t, den, signs_q, D + 1, primitives=self.primitives)
        nhi = num[Q:Q + D]
        r_next = Cat(*[Mux(copy(i, D + 1), s[i], nhi[i] if i < len(nhi) else 0) for i in range(D + 1)])
        m.d.comb += [signs.d.eq(s[D]), signs.run.eq(runs[-1])]
        bit = ~signs_q[0] | dz               # the quotient bit of the step that made r
        shifted = Cat(bit, q[:-1])
        m.d.comb += [self.o.valid.eq(done), self.o.payload.quo.eq(Cat(~r[D] | dz, q[:-1])),
                     self.o.payload.rem.eq(Mux(r[D], r + den, r)[:D])]
        with m.If(free):
            m.d.sync += [r.eq(r_next), q.eq(Cat(*[Mux(copy(i, Q), shifted[i], num[i]) for i in range(Q)]))]
        # den and dz take the input while i.ready, each share of den enabled through its own
        # run copy
        for g in range(COPIES):
            lo, hi = g * D // COPIES, (g + 1) * D // COPIES
            if hi > lo:
                with m.If(~runs[g] & free):
                    m.d.sync += den[lo:hi].eq(self.i.payload.den[lo:hi])
        with m.If(~runs[-1] & free):
            m.d.sync += dz.eq(self.i.payload.den == 0)
        m.d.sync += [left.eq(Mux(run, left - 1, Q)), last.eq(Mux(run, left == 2, accept & (Q == 1))),
                     run.eq(run_next)]
        with m.If(run & last):
            m.d.sync += done.eq(1)
        with m.If(done & self.o.ready):
            m.d.sync += done.eq(0)
        return m
