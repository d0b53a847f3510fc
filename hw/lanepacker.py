"""Element stream -> beats of ``lanes`` elements: the int8 elements of a quantized vector
(with its step) into the GEMV engine's 16-lane activation words, the attention unit's
query beats and the K/V rows written to memory.

``i`` {x, m, e, last}: one int8 element per beat with its vector's step (m, e) and
``last`` on the vector's final element (``tritforge.vectorports.step_fields``). ``o``
{elems, m, e}: element j of a beat in lane j; the step of the beat's first element. A
vector whose length is not a multiple of ``lanes`` ends in a beat padded with zeros.
``o`` is a register: a beat is offered the cycle after its last element was accepted, and
``i.ready`` is low only while a full beat waits.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from ..vectorports import lanepacker_ports
from .checks import check_int
from .signature import members


class LanePacker(wiring.Component):
    """Ports: ``i`` {x, m, e, last}; ``o`` {elems, m, e}."""

    def __new__(cls, lanes: int, scale_bits: int):
        check_int("LanePacker", "lanes", lanes, 1)
        check_int("LanePacker", "scale_bits", scale_bits, 1)
        return super().__new__(cls)

    def __init__(self, lanes: int, scale_bits: int):
        self.lanes = lanes
        super().__init__(members(lanepacker_ports(lanes, scale_bits)))

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        cnt = Signal(range(L))
        p = self.i.payload
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(cnt == 0):
                # a new beat: lane 0 and the step, the other lanes cleared
                m.d.sync += [self.o.payload.m.eq(p.m), self.o.payload.e.eq(p.e)]
                m.d.sync += [self.o.payload.elems[j].eq(p.x if j == 0 else 0) for j in range(L)]
            for j in range(1, L):
                with m.If(cnt == j):
                    m.d.sync += self.o.payload.elems[j].eq(p.x)
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(p.last | (cnt == L - 1)):
                m.d.sync += [cnt.eq(0), self.o.valid.eq(1)]
        return m
