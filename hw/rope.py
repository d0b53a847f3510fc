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
``stages`` = ``vectortiming.ROPE_STAGES`` registers: the four products
(``hw.multiplier.WideMultiplier``, MUL_STAGES), the difference and the sum, their
rounding shifts, their saturations. out[i] leaves at once; out[i + h] is
written to a second buffer and, after out[h - 1], the h of them leave in order. The next
head's first half is received meanwhile, so heads follow each other at one element per
cycle in and out.

``lanes`` elements per beat (dividing head_dim / 2; beat w of a half holds its elements
w · lanes .. w · lanes + lanes - 1, so lane k of the second half pairs with lane k of the
first), each lane with its own buffers and products. Cycles for one head without stalls
(``sim.vectorcycles.rope_cycles``), with W = head_dim / (2 lanes) beats per half:
3W + ROPE_STAGES.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..accelconfig import VectorConfig
from ..vectorports import rope_ports
from ..vectortiming import ROPE_STAGES
from .checks import check_int
from .elementpipe import advance, check_lanes, delay, lane
from .fixedops import round_shift, saturate_bits
from .multiplier import WideMultiplier
from .primitives import check_primitives
from .rsqrt import check_vector_config
from .signature import members


class Rope(wiring.Component):
    """Ports: ``x`` {x}; ``cs`` {c, s}; ``o`` {y} (``lanes`` elements each). One beat per
    cycle in and out; 3 head_dim / (2 lanes) + ROPE_STAGES cycles per head."""

    stages = ROPE_STAGES

    def __new__(cls, vcfg: VectorConfig, head_dim: int, *, x_bits: int | None = None,
                cs_bits: int | None = None, lanes: int = 1, primitives: str = "generic"):
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
        check_lanes("Rope", lanes, head_dim // 2, "head_dim / 2")
        check_primitives(primitives, "Rope")
        return super().__new__(cls)

    def __init__(self, vcfg: VectorConfig, head_dim: int, *, x_bits: int | None = None,
                 cs_bits: int | None = None, lanes: int = 1, primitives: str = "generic"):
        self.vcfg, self.head_dim, self.lanes, self.primitives = vcfg, head_dim, lanes, primitives
        self.x_bits = vcfg.resid_bits - 1 if x_bits is None else x_bits
        self.cs_bits = vcfg.rope_frac_bits + 2 if cs_bits is None else cs_bits
        super().__init__(members(rope_ports(vcfg, self.x_bits, self.cs_bits, lanes)))

    def elaborate(self, platform):
        m = Module()
        W = self.head_dim // 2 // self.lanes          # beats per half

        # input: the first half into the buffers, then the second half joined with (c, s)
        j = Signal(range(W))
        upper = Signal()                              # receiving the second half
        rot = SimpleNamespace(valid=Signal(), ready=Signal())
        join = upper & self.x.valid & self.cs.valid
        adv, _ = advance(m, rot, join, self.stages, "rope")
        m.d.comb += [self.x.ready.eq(~upper | adv & self.cs.valid),
                     self.cs.ready.eq(upper & adv & self.x.valid)]
        with m.If(self.x.valid & self.x.ready):
            m.d.sync += j.eq(j + 1)
            with m.If(j == W - 1):
                m.d.sync += [j.eq(0), upper.eq(~upper)]
        i = delay(m, adv, j, self.stages, "i")

        # output: out[i] as it comes, out[i + h] from the second buffers after out[h - 1]
        emit = Signal()
        e = Signal(range(W))
        lanes = []
        for k in range(self.lanes):
            lanes.append(self._lane(m, adv, j, upper, lane(self.x.payload.x, k), lane(self.cs.payload.c, k),
                                    lane(self.cs.payload.s, k), i, rot.valid & rot.ready, e, f"l{k}"))
        with m.If(emit):
            m.d.comb += self.o.valid.eq(1)
            for k, (_, upper_out) in enumerate(lanes):
                m.d.comb += lane(self.o.payload.y, k).eq(upper_out)
            with m.If(self.o.ready):
                m.d.sync += e.eq(e + 1)
                with m.If(e == W - 1):
                    m.d.sync += [e.eq(0), emit.eq(0)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(rot.valid), rot.ready.eq(self.o.ready)]
            for k, (lo, _) in enumerate(lanes):
                m.d.comb += lane(self.o.payload.y, k).eq(lo)
            with m.If(rot.valid & self.o.ready & (i == W - 1)):
                m.d.sync += emit.eq(1)
        return m

    def _lane(self, m, adv, j, upper, x, c, s, i, leave, e, name):
        """One lane: its first-half buffer, the four products, the difference and sum, the
        rounding shifts, the saturations, its second-half buffer. Returns (out[i], the buffered out[i + h])."""
        W, XB, RF = self.head_dim // 2 // self.lanes, self.x_bits, self.vcfg.rope_frac_bits
        first = m.submodules[f"{name}_first"] = Memory(shape=signed(XB + 1), depth=W, init=[])
        second = m.submodules[f"{name}_second"] = Memory(shape=signed(XB + 2), depth=W, init=[])
        fwr, frd = first.write_port(), first.read_port(domain="comb")
        swr, srd = second.write_port(), second.read_port(domain="comb")
        m.d.comb += [fwr.addr.eq(j), fwr.data.eq(x), frd.addr.eq(j), fwr.en.eq(self.x.valid & ~upper)]
        prods = []
        for pname, p, q in (("ac", frd.data, c), ("bs", x, s), ("bc", x, c), ("as", frd.data, s)):
            mul = m.submodules[f"{name}_{pname}"] = WideMultiplier(XB + 1, self.cs_bits,
                                                                    primitives=self.primitives)
            m.d.comb += [mul.en.eq(adv), mul.a.eq(p), mul.b.eq(q)]
            prods.append(mul.p)
        ac, bs, bc, as_ = prods
        W = len(ac) + 1
        dif, sm = Signal(signed(W), name=f"{name}_dif"), Signal(signed(W), name=f"{name}_sum")
        dr, sr = Signal(signed(W), name=f"{name}_difr"), Signal(signed(W), name=f"{name}_sumr")
        lo = Signal(signed(XB + 2), name=f"{name}_lo")
        hi = Signal(signed(XB + 2), name=f"{name}_hi")
        with m.If(adv):
            m.d.sync += [dif.eq(ac - bs), sm.eq(bc + as_),
                         dr.eq(round_shift(dif, RF)), sr.eq(round_shift(sm, RF)),
                         lo.eq(saturate_bits(dr, XB + 2)), hi.eq(saturate_bits(sr, XB + 2))]
        m.d.comb += [swr.addr.eq(i), swr.data.eq(hi), swr.en.eq(leave), srd.addr.eq(e)]
        return lo, srd.data
