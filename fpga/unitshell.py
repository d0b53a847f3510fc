"""The registered shell that synthesis runs wrap a unit in: any ``wiring.Component`` whose
ports are streams (``amaranth.lib.stream``) and plain signals, fed and observed through a
few pins.

A unit's streams are tens to hundreds of bits wide, more than a package has pins and
more than one design should spend on them. ``UnitShell`` gives every port a register of
its own, loaded from or unloaded to a ``data_bits``-wide pin bus:

* an input stream (or plain input) ``p``: a serial-in/parallel-out register as wide as
  its payload (rounded up to whole ``data_bits`` words) that shifts in the ``din`` bus
  while pin ``p_shift`` is high; its bits, registered once more, are the payload, pin
  ``p_valid`` is the valid;
* an output stream ``q``: pin ``q_ready`` is the ready; a parallel-in/serial-out register
  loads valid and payload while pin ``q_load`` is high and otherwise shifts them out on
  pins ``q_dout``, ``data_bits`` per cycle, through ``OUT_PIN_STAGES`` more flip-flops
  (so the register can sit by the unit and its load enable's copy, the pin far away);
* the rest the unit drives (the input streams' readies, plain outputs such as ``err``,
  ``busy``) go, registered once, into one more such register, ``status``
  (``status_load``, ``status_dout``).

Every pin passes ``PIN_STAGES`` flip-flops before it reaches a shell register, and every
output pin is a register bit, so each path outside the unit is one flip-flop to one
flip-flop or through one multiplexer between two: the clock domain's Fmax is the unit's.
The last stage of a register's shift or load pin is one flip-flop per ``data_bits`` word
(``hw.replica.Replicas``): a single enable of a unit's hundreds of output bits is a net
across the chip whose routing alone would set the clock.
Each payload bit is an independent register Yosys cannot constant-fold, and every bit the
unit drives reaches a pin, so none of the unit's logic is optimized away. The unit is the
submodule ``unit`` (count it apart with the flow's ``keep``). The ``rst`` pin
(Amaranth's synchronous reset) is unregistered, reported by nextpnr as an ``<async>``
path, not in Fmax (as in ``fpga.iotop``).

The shell is a harness for area and timing, not a way to drive the unit: it keeps no
stream rule (a payload register shifts whatever the valid).
"""
from __future__ import annotations

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..hw.replica import Replicas

#: flip-flops between each input pin and the shell register it drives (they let placement
#: move the shell's registers next to the unit's logic)
PIN_STAGES = 2
#: flip-flops between a shift register's last word and its output pins
OUT_PIN_STAGES = 1
#: default width of the pin buses
DATA_BITS = 8


def _words(bits: int, data_bits: int) -> int:
    return -(-bits // data_bits) * data_bits


def unit_ports(unit: wiring.Component) -> dict:
    """The unit's ports by kind: ``{"in": [...], "out": [...], "in_plain": [...],
    "out_plain": [...]}`` of port names, in signature order."""
    kinds = {"in": [], "out": [], "in_plain": [], "out_plain": []}
    for name, member in unit.signature.members.items():
        if member.is_signature:
            if not isinstance(member.signature, stream.Signature):
                raise TritforgeError(f"unit port {name!r}: a {type(member.signature).__name__}, "
                                     "not a stream; the shell drives streams and plain signals")
            kinds["in" if member.flow == wiring.In else "out"].append(name)
        else:
            kinds["in_plain" if member.flow == wiring.In else "out_plain"].append(name)
    return kinds


class UnitShell(wiring.Component):
    """``unit`` inside registered serial pins; ``data_bits`` wide pin buses (``DATA_BITS``)."""

    def __new__(cls, unit: wiring.Component, data_bits: int = DATA_BITS):
        if not isinstance(unit, wiring.Component):
            raise TritforgeError(f"UnitShell unit={unit!r}: expected a wiring.Component")
        if not isinstance(data_bits, int) or isinstance(data_bits, bool) or not 1 <= data_bits <= 64:
            raise TritforgeError(f"UnitShell data_bits={data_bits!r}: expected 1..64")
        unit_ports(unit)
        return super().__new__(cls)

    def __init__(self, unit: wiring.Component, data_bits: int = DATA_BITS):
        self.unit, self.data_bits = unit, data_bits
        self.ports = unit_ports(unit)
        members = {"din": In(data_bits)}
        for p in self.ports["in"]:
            members[f"{p}_shift"] = In(1)
            members[f"{p}_valid"] = In(1)
        for p in self.ports["in_plain"]:
            members[f"{p}_shift"] = In(1)
        for q in self.ports["out"] + ["status"]:
            if q != "status":
                members[f"{q}_ready"] = In(1)
            members[f"{q}_load"] = In(1)
            members[f"{q}_dout"] = Out(data_bits)
        super().__init__(members)

    def pin_count(self) -> int:
        """Pins of the shell (without clock and reset)."""
        return sum(len(Value.cast(getattr(self, n))) for n in self.signature.members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        D = self.data_bits

        def pin(value, name):
            for k in range(PIN_STAGES):
                q = Signal.like(value, name=f"{name}_p{k}")
                m.d.sync += q.eq(value)
                value = q
            return value

        din = pin(self.din, "din")

        def enables(value, name, words):
            """``pin`` with its last stage as one flip-flop per word."""
            for k in range(PIN_STAGES - 1):
                q = Signal.like(value, name=f"{name}_p{k}")
                m.d.sync += q.eq(value)
                value = q
            m.submodules[f"{name}_en"] = copies = Replicas(words)
            m.d.comb += copies.d.eq(value)
            return copies.q

        def sipo(target, name):
            target = Value.cast(target)
            n = _words(len(target), D) // D
            sr = Signal(n * D, name=f"{name}_sr")
            en = enables(getattr(self, f"{name}_shift"), f"{name}_shift", n)
            for w in range(n):
                with m.If(en[w]):
                    m.d.sync += sr.word_select(w, D).eq(din if w == 0 else sr.word_select(w - 1, D))
            # the payload registered once more by the unit (the shift register sits by its pin)
            sr_q = Signal(len(target), name=f"{name}_q")
            m.d.sync += sr_q.eq(sr[:len(target)])
            m.d.comb += target.eq(sr_q)

        def piso(source, name):
            source = Value.cast(source)
            n = _words(len(source), D) // D
            sr = Signal(n * D, name=f"{name}_sr")
            en = enables(getattr(self, f"{name}_load"), f"{name}_load", n)
            for w in range(n):
                word = sr.word_select(w, D)
                with m.If(en[w]):
                    m.d.sync += word.eq(source.word_select(w, D) if (w + 1) * D <= len(source)
                                        else source[w * D:])
                with m.Else():
                    m.d.sync += word.eq(sr.word_select(w + 1, D) if w + 1 < n else 0)
            dout = sr[:D]
            for k in range(OUT_PIN_STAGES):
                q = Signal(D, name=f"{name}_dout_p{k}")
                m.d.sync += q.eq(dout)
                dout = q
            m.d.comb += getattr(self, f"{name}_dout").eq(dout)

        status = []
        for p in self.ports["in"]:
            port = getattr(u, p)
            sipo(port.payload, p)
            m.d.comb += port.valid.eq(pin(getattr(self, f"{p}_valid"), f"{p}_valid"))
            status.append(port.ready)
        for p in self.ports["in_plain"]:
            sipo(getattr(u, p), p)
        for q in self.ports["out"]:
            port = getattr(u, q)
            m.d.comb += port.ready.eq(pin(getattr(self, f"{q}_ready"), f"{q}_ready"))
            piso(Cat(port.valid, Value.cast(port.payload)), q)
        status += [getattr(u, p) for p in self.ports["out_plain"]]
        # the status bits (input readies: combinational in many units) registered once
        # before their shift register, so its load multiplexer has registers on both sides
        status_q = Signal(max(len(Cat(*status)), 1), name="status_q")
        m.d.sync += status_q.eq(Cat(*status) if status else 0)
        piso(status_q, "status")
        return m
