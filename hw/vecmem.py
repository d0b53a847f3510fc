"""The decoder layer's on-chip vector memory: one ``lib.memory`` of signed elements (the
residual, the projections, the attention output, gate and up: ``LayerConfig.regions``)
with ``readers`` read streams and one write stream.

* ``rd<i>_cmd`` {base, n, strided}: read n elements from ``base`` on — in a build with
  ``stride`` > ``chunk`` and ``strided`` set, chunks of ``chunk`` elements at a stride
  of ``stride`` (``hw.stridedaddress``; a token of the layer's interleaved regions);
  accepted when reader i is idle (its previous read has left).
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
from .stridedaddress import StridedAddress


class VectorMemory(wiring.Component):
    """Ports: ``rd<i>_cmd``, ``rd<i>`` per reader; ``wr``."""

    def __new__(cls, width: int, depth: int, readers: int = 2, chunk: int = 1, stride: int = 1):
        check_int("VectorMemory", "width", width, 2)
        check_int("VectorMemory", "depth", depth, 1)
        check_int("VectorMemory", "readers", readers, 1)
        check_int("VectorMemory", "chunk", chunk, 1)
        check_int("VectorMemory", "stride", stride, chunk)
        return super().__new__(cls)

    def __init__(self, width: int, depth: int, readers: int = 2, chunk: int = 1, stride: int = 1):
        self.width, self.depth, self.readers = width, depth, readers
        self.chunk, self.stride = chunk, stride
        ab = bits_for(depth)
        cmd = data.StructLayout({"base": ab, "n": bits_for(depth + 1), "strided": 1})
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
            m.submodules[f"rd{i}_addr"] = addr = StridedAddress(bits_for(self.depth), self.chunk, self.stride)
            left = Signal(bits_for(self.depth + 1), name=f"rd{i}_left")
            adv = Signal(name=f"rd{i}_adv")
            start = cmd.valid & cmd.ready
            m.d.comb += [adv.eq(~out.valid | out.ready), rp.en.eq(adv), rp.addr.eq(addr.addr),
                         out.payload.x.eq(rp.data), cmd.ready.eq((left == 0) & ~out.valid),
                         addr.load.eq(start), addr.base.eq(cmd.payload.base), addr.strided.eq(cmd.payload.strided),
                         addr.step.eq(adv & (left != 0))]
            with m.If(adv):
                m.d.sync += [out.valid.eq(left != 0), out.payload.last.eq(left == 1)]
                with m.If(left != 0):
                    m.d.sync += left.eq(left - 1)
            with m.If(start):
                m.d.sync += left.eq(cmd.payload.n)
        return m
