"""The decoder layer's on-chip vector memory: one ``lib.memory`` of signed elements (the
residual, the projections, the attention output, gate and up: ``LayerConfig.regions``)
with ``readers`` read streams and one write stream.

* ``rd<i>_cmd`` {base, n, strided}: read n elements from ``base`` on — in a build with
  ``stride`` > ``chunk`` and ``strided`` set, chunks of ``chunk`` elements at a stride
  of ``stride`` (``hw.stridedaddress``; a token of the layer's interleaved regions);
  accepted when reader i is idle (its previous read has left).
* ``rd<i>`` {x, last}: the elements in address order, ``last`` on the n-th. Each reader
  reads its own copy of the memory (every copy written alike), an ``ActivationBuffer``
  without fabric registers: the block's address register, then its output register
  (``VECMEM_READ_LATENCY`` = 2), both enabled by the stream's advance (``~valid |
  ready``), so they hold while the consumer stalls. The output register is the block
  RAM's own (the ``ecp5`` primitives' ``DP16KD`` with ``REGMODE_B = "OUTREG"``): no
  block's slow read clock-to-out and no multiplexer between blocks lies on a path to a
  consumer. (A memory deeper than the ``ecp5`` buffer's 16,384 words, a prefill build's,
  takes the ``generic`` buffer, whose register follows the inferred blocks: the same
  cycles.) The elements leave through a skid buffer (``hw.streambuffers``): the consumer's
  ready reaches no register but the buffer's flag. A read command taken in cycle S gives
  its first element in S + 3; a reader is idle once its last element has left the skid
  buffer too.
* ``wr`` {addr, x}: always ready; the element lands at the end of the cycle (a read of the
  same address in that cycle sees the old value — the layer never reads an element while
  it is being written).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ports import bits_for
from ..vectortiming import VECMEM_READ_LATENCY
from .actbuffer import ActivationBuffer, buildable_with
from .checks import check_int
from .primitives import check_primitives
from .streambuffers import SkidBuffer
from .stridedaddress import StridedAddress


class VectorMemory(wiring.Component):
    """Ports: ``rd<i>_cmd``, ``rd<i>`` per reader; ``wr``."""

    def __new__(cls, width: int, depth: int, readers: int = 2, chunk: int = 1, stride: int = 1, *,
                primitives: str = "generic"):
        check_int("VectorMemory", "width", width, 2)
        check_int("VectorMemory", "depth", depth, 1)
        check_int("VectorMemory", "readers", readers, 1)
        check_int("VectorMemory", "chunk", chunk, 1)
        check_int("VectorMemory", "stride", stride, chunk)
        check_primitives(primitives, "VectorMemory")
        return super().__new__(cls)

    def __init__(self, width: int, depth: int, readers: int = 2, chunk: int = 1, stride: int = 1, *,
                 primitives: str = "generic"):
        self.width, self.depth, self.readers = width, depth, readers
        self.chunk, self.stride = chunk, stride
        self.primitives = buildable_with(depth, primitives)
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
        for i in range(self.readers):
            cmd, out = getattr(self, f"rd{i}_cmd"), getattr(self, f"rd{i}")
            m.submodules[f"rd{i}_mem"] = buf = ActivationBuffer(self.depth, self.width, primitives=self.primitives,
                                                                 fabric=False)
            if buf.latency != VECMEM_READ_LATENCY:
                raise ValueError("VectorMemory: the buffer's read latency differs from "
                                 "tritforge.vectortiming's VECMEM_READ_LATENCY")
            m.d.comb += [buf.w_en.eq(self.wr.valid), buf.w_addr.eq(self.wr.payload.addr),
                         buf.w_data.eq(self.wr.payload.x)]
            m.submodules[f"rd{i}_addr"] = addr = StridedAddress(bits_for(self.depth), self.chunk, self.stride)
            left = Signal(bits_for(self.depth + 1), name=f"rd{i}_left")
            # the elements in the block's address and output registers, and their ``last``
            valid = Signal(VECMEM_READ_LATENCY, name=f"rd{i}_valid")
            last = Signal(VECMEM_READ_LATENCY, name=f"rd{i}_last")
            # the elements leave through a skid buffer: the consumer's ready stops at its
            # flag, the registers' enable is a function of flip-flops
            m.submodules[f"rd{i}_skid"] = skid = SkidBuffer(out.payload.shape())
            wiring.connect(m, skid.o, wiring.flipped(out))
            adv = Signal(name=f"rd{i}_adv")
            start = cmd.valid & cmd.ready
            m.d.comb += [adv.eq(~valid[-1] | skid.i.ready), buf.r_en.eq(adv), buf.r_addr.eq(addr.addr),
                         skid.i.valid.eq(valid[-1]), skid.i.payload.last.eq(last[-1]),
                         skid.i.payload.x.eq(buf.r_data.as_signed()),
                         cmd.ready.eq((left == 0) & (valid[:-1] == 0) & ~out.valid),
                         addr.load.eq(start), addr.base.eq(cmd.payload.base), addr.strided.eq(cmd.payload.strided),
                         addr.step.eq(adv & (left != 0))]
            with m.If(adv):
                m.d.sync += [valid.eq(Cat(left != 0, valid[:-1])), last.eq(Cat(left == 1, last[:-1]))]
                with m.If(left != 0):
                    m.d.sync += left.eq(left - 1)
            with m.If(start):
                m.d.sync += left.eq(cmd.payload.n)
        m.d.comb += self.wr.ready.eq(1)
        return m
