"""Activation multiples: the 16 lanes' exact +-3**i x for the trit planes i < d.

The group dot (hw/groupdot.py) selects, per trit, one of these words instead of adding or
subtracting shifted activations, so all R rows share the arithmetic here. Two register
stages in all: a plain delay register first where the adder levels leave room (the block
RAM's output register then drives only it), then the adder levels, one per stage (``en``
advances both)::

    d <= 2, one level:  +x, -x = 0 - x, +3x = 2x + x, -3x = x - 4x
    d >= 3, two levels: x, -x, 3x = 2x + x, 9x = 8x + x, 5x = 4x + x; then
                        +-x, +3x, -3x = 2(-x) + (-x), +9x, -9x = 8(-x) + (-x),
                        +27x = 32x - 5x, -27x = 5x - 32x

(only the multiples depth d needs are built). Every register holds its value for every
int8 x, -128 included (``times_bits``). The engine runs it on the activation word
beside the trit decoder, so it adds no latency.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..errors import TritforgeError
from .checks import check_int
from .groupdot import ACT, act_layout, multiples_layout, times_bits
from .replica import replicas


class ActMultiples(wiring.Component):
    """Ports: ``x`` (16 int8 lanes), ``en``; ``mult`` (``multiples_layout(depth)``). With
    ``enable_copies`` = n > 0 the registers take their enable from n copies of it instead
    (hw/replica.py; lane j from copy ``j*n//16``), loaded from the ``adv_next`` port, which
    the caller drives with the value ``en`` will have in the next cycle (``en`` is then
    unused): every lane's registers on one enable are a net over the group dot's width."""

    latency = 2

    def __new__(cls, depth: int, *, enable_copies: int = 0):
        if depth not in layout.DEPTHS:
            raise TritforgeError(f"ActMultiples depth={depth!r}: expected one of {layout.DEPTHS}")
        check_int("ActMultiples", "enable_copies", enable_copies)
        return super().__new__(cls)

    def __init__(self, depth: int, *, enable_copies: int = 0):
        self.depth = depth
        self.enable_copies = enable_copies
        members = {"x": In(act_layout()), "en": In(1), "mult": Out(multiples_layout(depth))}
        if enable_copies:
            members["adv_next"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        d = self.depth
        m = Module()
        out = self.mult
        copies = self.enable_copies
        ens = replicas(m, "en", self.adv_next, copies, init=1) if copies else [self.en]
        # plain delay stages first (the block RAM's output only drives the first), then the
        # adder levels: one for d <= 2 (-x = 0 - x, 3x = 2x + x, -3x = x - 4x), two beyond
        levels = 1 if d <= 2 else 2
        for j in range(layout.GROUP):
            en = ens[j * len(ens) // layout.GROUP]
            x = self.x[j]
            for n in range(self.latency - levels):
                q = Signal(ACT, name=f"x{n}_{j}", reset_less=True)
                with m.If(en):
                    m.d.sync += q.eq(x)
                x = q
            if levels == 1:
                stage = [out.pos0[j].eq(x), out.neg0[j].eq(-x)]
                if d == 2:
                    stage += [out.pos1[j].eq((x << 1) + x), out.neg1[j].eq(x - (x << 2))]
                with m.If(en):
                    m.d.sync += stage
                continue
            x1 = Signal(ACT, name=f"x1_{j}", reset_less=True)
            n1 = Signal(signed(times_bits(1)), name=f"n1_{j}", reset_less=True)
            p3 = Signal(signed(times_bits(3)), name=f"p3_{j}", reset_less=True)
            p9 = Signal(signed(times_bits(9)), name=f"p9_{j}", reset_less=True)
            p5 = Signal(signed(times_bits(5)), name=f"p5_{j}", reset_less=True)
            stage1 = [x1.eq(x), n1.eq(-x), p3.eq((x << 1) + x), p9.eq((x << 3) + x)]
            if d >= 4:
                stage1.append(p5.eq((x << 2) + x))
            stage2 = [out.pos0[j].eq(x1), out.neg0[j].eq(n1),
                      out.pos1[j].eq(p3), out.neg1[j].eq((n1 << 1) + n1),
                      out.pos2[j].eq(p9), out.neg2[j].eq((n1 << 3) + n1)]
            if d >= 4:
                stage2 += [out.pos3[j].eq((x1 << 5) - p5), out.neg3[j].eq(p5 - (x1 << 5))]
            with m.If(en):
                m.d.sync += stage1 + stage2
        return m
