"""An address counter that walks chunks: base, base + 1, ..., base + chunk - 1, then
base + stride, ... — how a token's elements lie in the decoder layer's interleaved
vector-memory regions (``LayerConfig.address``: chunks of R at a stride of T·R). With
``strided`` low (or a build whose stride is its chunk) it counts on by one.

``load`` (with ``base`` and ``strided``) starts a walk at ``base``; ``step`` moves to the
next address; ``addr`` is a register (the address of the current element).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int


class StridedAddress(wiring.Component):
    """Ports: ``load``, ``base``, ``strided``, ``step`` in; ``addr`` out."""

    def __new__(cls, width: int, chunk: int, stride: int):
        check_int("StridedAddress", "width", width, 1)
        check_int("StridedAddress", "chunk", chunk, 1)
        check_int("StridedAddress", "stride", stride, chunk)
        return super().__new__(cls)

    def __init__(self, width: int, chunk: int, stride: int):
        self.chunk, self.stride = chunk, stride
        super().__init__({"load": In(1), "base": In(width), "strided": In(1), "step": In(1), "addr": Out(width)})

    @property
    def walks_chunks(self) -> bool:
        """The build can leave a chunk for the next one ``stride`` on (else a plain counter)."""
        return self.stride > self.chunk

    def elaborate(self, platform):
        m = Module()
        if not self.walks_chunks:
            with m.If(self.load):
                m.d.sync += self.addr.eq(self.base)
            with m.Elif(self.step):
                m.d.sync += self.addr.eq(self.addr + 1)
            return m
        chunk_base = Signal.like(self.addr, name="chunk_base")
        off = Signal(range(self.chunk))
        mode = Signal()
        with m.If(self.load):
            m.d.sync += [self.addr.eq(self.base), chunk_base.eq(self.base), off.eq(0), mode.eq(self.strided)]
        with m.Elif(self.step):
            with m.If(off == self.chunk - 1):
                m.d.sync += [off.eq(0), chunk_base.eq(chunk_base + self.chunk)]
                with m.If(mode):
                    m.d.sync += [self.addr.eq(chunk_base + self.stride), chunk_base.eq(chunk_base + self.stride)]
                with m.Else():
                    m.d.sync += self.addr.eq(self.addr + 1)
            with m.Else():
                m.d.sync += [off.eq(off + 1), self.addr.eq(self.addr + 1)]
        return m
