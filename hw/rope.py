"""Rotary position embedding of one head, exactly ``codec.introtary.apply_rope``: the
head's head_dim elements x (|x| < 2^x_bits) in natural order and the position's cos/sin row
-> the rotated elements, saturated to x_bits + 2 signed bits, in natural order.

Pairing is the Hugging Face models' half split, element i with i + h (h = head_dim / 2):

    out[i]     = rshift_round(x[i] · c_i - x[i+h] · s_i, RF)
    out[i + h] = rshift_round(x[i+h] · c_i + x[i] · s_i, RF)        (RF = rope_frac_bits)

The cos/sin table is not on chip: ``rope_tables`` (host, offline) makes max_context ×
head_dim / 2 pairs, 8192 × 32 × 2 entries of RF + 2 = 16 bits for SmolLM2 at 8192
positions (8.4 Mbit; an ECP5-85F has 3.7 Mbit of block RAM), so the unit takes the position's row on
the ``cs`` stream, (c_i, s_i) for i = 0 .. h - 1, once per head, served from board memory
(the row is the same for every head of the token: 2 (RF + 2) bits per element pair, a
fraction of what the head's own elements take).

Flow per head: the first h elements are written to a buffer (``lib.memory``); each of
the next h elements is joined with its (c, s) pair and x[i] read back, and goes through
``stages`` = 4 registers: the four products (``hw.multiplier.PipelinedMultiplier``, three
stages) and the rounding shift with saturation. out[i] leaves at once; out[i + h] is
written to a second buffer and, after out[h - 1], the h of them leave in order. The next
head's first half is received meanwhile, so heads follow each other at one element per
cycle in and out.

Element-serial. Cycles for one head without stalls (``sim.vectorcycles.rope_cycles``):
3 head_dim / 2 + 4.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..vectorports import rope_ports
from .checks import check_int
from .elementpipe import advance, delay
from .fixedops import rshift_round, saturate
from .multiplier import PipelinedMultiplier
from .rsqrt import check_vector_config
from .signature import members


class Rope(wiring.Component):
    """Ports: ``x`` {x}; ``cs`` {c, s}; ``o`` {y}. Element-serial, one element per cycle in
    and out; 3 head_dim / 2 + 4 cycles per head."""

    stages = PipelinedMultiplier.latency + 1

    def __new__(cls, vcfg: VectorConfig, head_dim: int, *, x_bits: int | None = None,
                cs_bits: int | None = None):
        check_vector_config("Rope", vcfg)
        check_int("Rope", "head_dim", head_dim, 2)
        if head_dim % 2:
            raise ValueError(f"Rope head_dim must be even, not {head_dim}")
        if x_bits is not None:
            check_int("Rope", "x_bits", x_bits, 1)
        if cs_bits is not None:
            check_int("Rope", "cs_bits", cs_bits, 2)
        xb = vcfg.resid_bits - 1 if x_bits is None else x_bits
        cb = vcfg.rope_frac_bits + 2 if cs_bits is None else cs_bits
        if xb + cb > 61:
            raise ValueError(f"Rope x_bits + cs_bits = {xb + cb}: |x c ± x' s| reaches 2^62")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, head_dim: int, *, x_bits: int | None = None,
                 cs_bits: int | None = None):
        self.vcfg, self.head_dim = vcfg, head_dim
        self.x_bits = vcfg.resid_bits - 1 if x_bits is None else x_bits
        self.cs_bits = vcfg.rope_frac_bits + 2 if cs_bits is None else cs_bits
        super().__init__(members(rope_ports(vcfg, self.x_bits, self.cs_bits)))

    def elaborate(self, platform):
        m = Module()
        H, XB, RF = self.head_dim // 2, self.x_bits, self.vcfg.rope_frac_bits
        first = m.submodules.first = Memory(shape=signed(XB + 1), depth=H, init=[])
        second = m.submodules.second = Memory(shape=signed(XB + 2), depth=H, init=[])
        fwr, frd = first.write_port(), first.read_port(domain="comb")
        swr, srd = second.write_port(), second.read_port(domain="comb")

        # input: the first half into the buffer, then the second half joined with (c, s)
        j = Signal(range(H))
        upper = Signal()                        # receiving the second half
        rot = SimpleNamespace(valid=Signal(), ready=Signal())
        join = upper & self.x.valid & self.cs.valid
        adv, _ = advance(m, rot, join, self.stages, "rope")
        m.d.comb += [fwr.addr.eq(j), fwr.data.eq(self.x.payload.x), frd.addr.eq(j),
                     fwr.en.eq(self.x.valid & ~upper),
                     self.x.ready.eq(~upper | adv & self.cs.valid),
                     self.cs.ready.eq(upper & adv & self.x.valid)]
        with m.If(self.x.valid & self.x.ready):
            m.d.sync += j.eq(j + 1)
            with m.If(j == H - 1):
                m.d.sync += [j.eq(0), upper.eq(~upper)]

        # the rotation: four products, the rounding shift and saturation
        a, b = frd.data, self.x.payload.x
        c, s = self.cs.payload.c, self.cs.payload.s
        prods = []
        for name, p, q in (("ac", a, c), ("bs", b, s), ("bc", b, c), ("as", a, s)):
            mul = m.submodules[name] = PipelinedMultiplier(XB + 1, self.cs_bits)
            m.d.comb += [mul.en.eq(adv), mul.a.eq(p), mul.b.eq(q)]
            prods.append(mul.p)
        ac, bs, bc, as_ = prods
        lo, hi = Signal(signed(XB + 2)), Signal(signed(XB + 2))
        with m.If(adv):
            m.d.sync += [lo.eq(saturate(rshift_round(ac - bs, RF), XB + 2)),
                         hi.eq(saturate(rshift_round(bc + as_, RF), XB + 2))]
        i = delay(m, adv, j, self.stages, "i")

        # output: out[i] as it comes, out[i + h] from the second buffer after out[h - 1]
        emit = Signal()
        e = Signal(range(H))
        m.d.comb += [swr.addr.eq(i), swr.data.eq(hi), swr.en.eq(rot.valid & rot.ready), srd.addr.eq(e)]
        with m.If(emit):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.y.eq(srd.data)]
            with m.If(self.o.ready):
                m.d.sync += e.eq(e + 1)
                with m.If(e == H - 1):
                    m.d.sync += [e.eq(0), emit.eq(0)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(rot.valid), self.o.payload.y.eq(lo), rot.ready.eq(self.o.ready)]
            with m.If(rot.valid & self.o.ready & (i == H - 1)):
                m.d.sync += emit.eq(1)
        return m
