"""2^-a in fixed point, pipelined: ``codec.intsoftmax.exp2neg``'s LUT method in five
register stages (``tritforge.attentionunit.EXP_LATENCY``).

For a >= 0 with ``sf`` fraction bits the integer part k shifts and the fraction's top
``lut_bits`` bits (rounded) index a table of 2^(lut_bits) + 1 values of 2^-f with ``pf``
fraction bits:

    1. a, registered (the caller's subtraction that makes it ends there);
    2. k (saturated at pf + 2) and the table index, registered;
    3. the table read (a memory with a registered read, built in logic: ``rom_style``
       "logic", since a block RAM without its output register is slower than a cycle);
    4. (2 · table value) >> k, and whether k > pf + 1;
    5. its rounding, rshift_round(table value, k), or 0 when k > pf + 1, on ``p``.

Free-running: ``p`` is 2^-a of the ``a`` presented five cycles before.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..attentionunit import EXP_LATENCY
from .checks import check_int
from .fixedops import rshift_round


class Exp2Neg(wiring.Component):
    """Ports: ``a`` (unsigned, ``sf`` fraction bits) in; ``p`` = 2^-a (``pf`` fraction bits,
    0..2^pf) out, ``latency`` cycles later."""

    latency = EXP_LATENCY

    def __new__(cls, a_bits: int, sf: int, pf: int, lut_bits: int, table):
        check_int("Exp2Neg", "a_bits", a_bits, 1)
        check_int("Exp2Neg", "sf", sf, 1)
        check_int("Exp2Neg", "pf", pf, 1)
        check_int("Exp2Neg", "lut_bits", lut_bits, 1)
        if lut_bits > sf:
            raise ValueError(f"Exp2Neg lut_bits={lut_bits}: at most sf={sf}")
        if len(table) != (1 << lut_bits) + 1:
            raise ValueError(f"Exp2Neg table: {len(table)} entries; expected 2^{lut_bits} + 1")
        return super().__new__(cls)

    def __init__(self, a_bits: int, sf: int, pf: int, lut_bits: int, table):
        self.sf, self.pf, self.lut_bits, self.table = sf, pf, lut_bits, list(table)
        super().__init__({"a": In(a_bits), "p": Out(pf + 1)})

    def elaborate(self, platform):
        sf, pf, lb = self.sf, self.pf, self.lut_bits
        m = Module()
        m.submodules.table = table = memory.Memory(shape=pf + 1, depth=len(self.table), init=self.table,
                                                  attrs={"rom_style": "logic"})
        rd = table.read_port()
        kbits = (pf + 2).bit_length()
        k1, k2 = Signal(kbits), Signal(kbits)
        idx = Signal(lb + 1)
        a = Signal.like(self.a)
        m.d.sync += a.eq(self.a)
        k = a >> sf
        m.d.sync += [k1.eq(Mux(k > pf + 1, pf + 2, k)),
                     idx.eq(rshift_round(a[:sf], sf - lb)[:lb + 1]),
                     k2.eq(k1)]
        m.d.comb += rd.addr.eq(idx)
        x4, zero4 = Signal(pf + 2), Signal()
        m.d.sync += [x4.eq((rd.data << 1) >> k2), zero4.eq(k2 > pf + 1)]
        m.d.sync += self.p.eq(Mux(zero4, 0, (x4 + 1) >> 1))
        return m
