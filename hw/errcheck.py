"""The engine's invalid-byte check: a sticky ``err``, set by an accepted weight beat that
holds a byte >= 243 (hw/ENGINE.md "Errors and reset").

The bytes are checked from the beat register (``beat``, which holds the accepted beat in
the cycle after ``take``) in registered steps of one LUT each: per byte its two nibble
flags (``decoder.byte_invalid_parts``), the OR of ``ERR_PAIR`` bytes, ``ERR_FOLD``-input
ORs down to at most 3 bits, then ``err``: ``latency`` cycles after the take
(``HwConfig.err_latency``). The steps check whatever the beat register holds; "a beat was
accepted" runs beside them in a chain of flip-flops and gates only the last step (one
gate, not one per byte). An engine slice with fewer bytes than the widest slice delays
its folded flags by the difference, so every slice flags in the same cycle. ``clear`` (a
command accepted) clears ``err`` and wins over a set in the same cycle.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..hwconfig import ERR_FOLD, ERR_PAIR, err_latency
from .checks import check_int
from .decoder import byte_invalid_parts
from .foldtree import fold_registered


class InvalidByteCheck(wiring.Component):
    """Ports: ``beat`` (the beat register), ``take`` (a beat is accepted this cycle),
    ``clear``; ``err`` (sticky)."""

    def __new__(cls, beat_bytes: int, latency: int | None = None):
        check_int("InvalidByteCheck", "beat_bytes", beat_bytes, 1)
        if latency is not None and latency < err_latency(beat_bytes):
            raise TritforgeError(f"InvalidByteCheck latency={latency}: {beat_bytes} bytes "
                                 f"need at least {err_latency(beat_bytes)} cycles")
        return super().__new__(cls)

    def __init__(self, beat_bytes: int, latency: int | None = None):
        self.beat_bytes = beat_bytes
        self.latency = err_latency(beat_bytes) if latency is None else latency
        super().__init__({"beat": In(8 * beat_bytes), "take": In(1), "clear": In(1),
                          "err": Out(1)})

    def elaborate(self, platform):
        nb = self.beat_bytes
        m = Module()
        new_beat = Signal()
        m.d.sync += new_beat.eq(self.take)
        nib_hi = Signal(nb)
        nib_lo = Signal(nb)
        for b in range(nb):
            hi, lo = byte_invalid_parts(self.beat[8 * b:8 * b + 8])
            m.d.sync += [nib_hi[b].eq(hi), nib_lo[b].eq(lo)]
        level = Signal(-(-nb // ERR_PAIR), name="bad_pairs")
        for i in range(len(level)):
            bad = 0
            for b in range(ERR_PAIR * i, min(ERR_PAIR * i + ERR_PAIR, nb)):
                bad = bad | (nib_hi[b] & nib_lo[b])
            m.d.sync += level[i].eq(bad)
        checked = new_beat
        for n in range(self.latency - 2):      # the take's flag beside the steps above
            q = Signal(name=f"checked{n + 1}")
            m.d.sync += q.eq(checked)
            checked = q
        level = fold_registered(m, level, ERR_FOLD, "any", "bad_or", until=3)
        for n in range(self.latency - err_latency(nb)):
            q = Signal.like(level, name=f"bad_delay{n}")
            m.d.sync += q.eq(level)
            level = q
        with m.If(checked & level.any()):
            m.d.sync += self.err.eq(1)
        with m.If(self.clear):
            m.d.sync += self.err.eq(0)
        return m
