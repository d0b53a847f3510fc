"""The decoder layer's on-chip vector memory: one ``lib.memory`` of signed elements (the
residual, the projections, the attention output, gate and up: ``LayerConfig.regions``)
with ``readers`` read streams and one write stream.

* ``rd<i>_cmd`` {base, n}: read n elements from ``base`` on; accepted when reader i is
  idle (its previous read has left).
* ``rd<i>`` {x, last}: the elements in address order, ``last`` on the n-th. A synchronous
  read port whose enable is the stream's advance (``~valid | ready``): the port's data
  register is the output register, holding while the consumer stalls.
* ``wr`` {addr, x}: always ready; the element lands at the end of the cycle (a read of the
  same address in that cycle sees the old value — the layer never reads an element while
  it is being written).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ports import bits_for
from .checks import check_int


class VectorMemory(wiring.Component):
    """Ports: ``rd<i>_cmd``, ``rd<i>`` per reader; ``wr``."""

    def __new__(cls, width: int, depth: int, readers: int = 2):
        check_int("VectorMemory", "width", width, 2)
        check_int("VectorMemory", "depth", depth, 1)
        check_int("VectorMemory", "readers", readers, 1)
        return super().__new__(cls)

    def __init__(self, width: int, depth: int, readers: int = 2):
        self.width, self.depth, self.readers = width, depth, readers
        ab = bits_for(depth)
        cmd = data.StructLayout({"base": ab, "n": bits_for(depth + 1)})
        out = data.StructLayout({"x": signed(width), "last": 1})
        members = {}
        for i in range(readers):
            members[f"rd{i}_cmd"] = In(stream.Signature(cmd))
            members[f"rd{i}"] = Out(stream.Signature(out))
        members["wr"] = In(stream.Signature(data.StructLayout({"addr": ab, "x": signed(width)})))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=signed(self.width), depth=self.depth, init=[])
        wp = mem.write_port()
        m.d.comb += [self.wr.ready.eq(1), wp.addr.eq(self.wr.payload.addr), wp.data.eq(self.wr.payload.x),
                     wp.en.eq(self.wr.valid)]
        for i in range(self.readers):
            cmd, out = getattr(self, f"rd{i}_cmd"), getattr(self, f"rd{i}")
            rp = mem.read_port()
            addr = Signal(bits_for(self.depth), name=f"rd{i}_addr")
            left = Signal(bits_for(self.depth + 1), name=f"rd{i}_left")
            adv = Signal(name=f"rd{i}_adv")
            m.d.comb += [adv.eq(~out.valid | out.ready), rp.en.eq(adv), rp.addr.eq(addr),
                         out.payload.x.eq(rp.data), cmd.ready.eq((left == 0) & ~out.valid)]
            with m.If(adv):
                m.d.sync += [out.valid.eq(left != 0), out.payload.last.eq(left == 1)]
                with m.If(left != 0):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += [addr.eq(cmd.payload.base), left.eq(cmd.payload.n)]
        return m
