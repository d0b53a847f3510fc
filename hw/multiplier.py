"""Pipelined multiplier: ``p = a * b`` three register stages after ``a`` and ``b``.

Stages (all advance together when ``en`` is high; ``p`` holds otherwise):

    1. input registers ``a``, ``b``
    2. pipeline register (the product)
    3. output register ``p``

Primitive sets (hw/primitives.py): the same stages and the same latency in every one, so
the cycle contract (hw/ENGINE.md) does not depend on the target.

* ``"generic"``: Amaranth registers around ``*``; what the simulators run, and what
  Yosys maps to a DSP (or LUTs) with the registers left in the fabric.
* ``"ecp5"``: one Lattice ECP5 ``MULT18X18D`` with its own input, pipeline and output
  registers enabled (``REG_INPUTA_CLK = REG_INPUTB_CLK = REG_PIPELINE_CLK = REG_OUTPUT_CLK
  = "CLK0"``, clock enable ``CE0`` = ``en``, ``RST0`` tied low). Yosys's ``synth_ecp5``
  maps ``*`` to a ``MULT18X18D`` with every register bypassed (its ``dsp_map_18x18.v``),
  which leaves the multiplier's 3.9 ns combinational delay plus two routing hops between
  fabric flip-flops (7.9 ns: built that way, it limits the engine to 126.7 MHz); with the DSP's own
  registers nextpnr times the input-register setup and output clock-to-out instead
  (timing class ``MULT18X18D_REGS_ALL``). Operands are sign-extended to 18 bits with
  ``SIGNEDA = SIGNEDB = 1`` and the product is ``P[0:len(p)]``. No open simulator has a
  model of the primitive: the tests run it against the behavioural Verilog model in
  tests/ecp5_models.py (written from Lattice TN1267, "ECP5 and ECP5-5G sysDSP Usage Guide").
"""
from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..vectortiming import MUL_STAGES, MUL_SUM_LEVELS
from .checks import check_int
from .primitives import check_primitives
#: operand width of the ECP5 sysDSP multiplier (signed)
ECP5_OPERAND_BITS = 18


class _Multiplier(wiring.Component):
    """The ports every multiplier has: ``a``, ``b`` (signed operands), ``en`` (advance),
    ``p`` (the signed product)."""

    def __init__(self, a_bits: int, b_bits: int, *, primitives: str = "generic"):
        self.primitives = primitives
        self.a_bits, self.b_bits = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "en": In(1),
                          "p": Out(signed(a_bits + b_bits))})


class PipelinedMultiplier(_Multiplier):
    """Ports: ``a``, ``b`` (signed operands), ``en`` (advance), ``p`` (signed product)."""

    latency = 3

    def __new__(cls, a_bits: int, b_bits: int, *, primitives: str = "generic"):
        cls.check(a_bits, b_bits, primitives)
        return super().__new__(cls)

    @staticmethod
    def check(a_bits: int, b_bits: int, primitives: str) -> None:
        """The parameters, and that the primitive set can build the multiplier."""
        check_int("PipelinedMultiplier", "a_bits", a_bits, 1)
        check_int("PipelinedMultiplier", "b_bits", b_bits, 1)
        check_primitives(primitives, "multiplier")
        if primitives == "ecp5" and max(a_bits, b_bits) > ECP5_OPERAND_BITS:
            raise TritforgeError(f"multiplier {a_bits} x {b_bits} bits: the ECP5 primitive takes "
                                 f"at most {ECP5_OPERAND_BITS}-bit signed operands")


    def elaborate(self, platform):
        m = Module()
        if self.primitives == "ecp5":
            self._ecp5(m)
            return m
        a = Signal(signed(self.a_bits), reset_less=True)
        b = Signal(signed(self.b_bits), reset_less=True)
        prod = Signal.like(self.p, reset_less=True)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), b.eq(self.b), prod.eq(a * b), self.p.eq(prod)]
        return m

    def _ecp5(self, m):
        n = ECP5_OPERAND_BITS
        a = Signal(signed(n))
        b = Signal(signed(n))
        p = Signal(2 * n)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p[:len(self.p)])]
        ports = {f"i_A{i}": a[i] for i in range(n)}
        ports.update({f"i_B{i}": b[i] for i in range(n)})
        ports.update({f"i_C{i}": Const(0, 1) for i in range(n)})
        ports.update({f"o_P{i}": p[i] for i in range(2 * n)})
        ports.update({"i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
                      "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1),
                      "i_CLK0": ClockSignal("sync"), "i_CE0": self.en, "i_RST0": Const(0, 1)})
        for c in range(1, 4):
            ports.update({f"i_CLK{c}": Const(0, 1), f"i_CE{c}": Const(0, 1),
                          f"i_RST{c}": Const(0, 1)})
        params = {"p_GSR": "DISABLED", "p_RESETMODE": "SYNC", "p_SOURCEB_MODE": "B_SHIFT",
                  "p_MULT_BYPASS": "DISABLED", "p_CAS_MATCH_REG": "FALSE",
                  "p_REG_INPUTC_CLK": "NONE"}
        for reg in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
            params.update({f"p_REG_{reg}_CLK": "CLK0", f"p_REG_{reg}_CE": "CE0",
                           f"p_REG_{reg}_RST": "RST0"})
        m.submodules.dsp = Instance("MULT18X18D", **params, **ports)


#: bits of a wide operand's unsigned low chunks (a chunk zero-extended is an 18-bit signed
#: operand of a tile)
CHUNK_BITS = ECP5_OPERAND_BITS - 1


def operand_chunks(bits: int) -> list[tuple[int, int, bool]]:
    """(offset, width, signed) of the chunks of a signed operand of ``bits``: one signed
    chunk when it fits a tile's 18-bit operand, else unsigned CHUNK_BITS-bit chunks from
    bit 0 and a signed top chunk of at most 18 bits."""
    chunks, lo = [], 0
    while bits - lo > ECP5_OPERAND_BITS:
        chunks.append((lo, CHUNK_BITS, False))
        lo += CHUNK_BITS
    chunks.append((lo, bits - lo, True))
    return chunks


class WideMultiplier(_Multiplier):
    """``p = a * b`` for signed operands of any width, ``latency`` (= ``MUL_STAGES``)
    register stages after ``a`` and ``b``, all advancing with ``en``.

    Each operand is cut into chunks (``operand_chunks``: 17-bit unsigned chunks and a signed
    top chunk, each an 18-bit signed tile operand); every pair of chunks is a
    ``PipelinedMultiplier`` tile (three registers; a ``MULT18X18D`` with its own registers
    in the ``"ecp5"`` primitive set), and the tiles' partial products, each at its chunks'
    offset, are summed by a tree of registered adders, one level per stage, a pair of
    neighbours per adder. An adder takes the lower operand's bits below the upper one's
    offset as they are and adds only above it, so no carry chain runs through bits that
    only one operand has. ``MUL_SUM_LEVELS`` levels take up to 2^MUL_SUM_LEVELS tiles; a
    product of fewer tiles passes the spare levels as plain registers, so every
    WideMultiplier has the same latency whatever its widths: after the adders, or with
    ``spare_first`` before them (the tiles' products registered in the fabric first, so
    no adder's carry chain starts at a DSP output).
    """

    latency = MUL_STAGES

    def __new__(cls, a_bits: int, b_bits: int, *, primitives: str = "generic", spare_first: bool = False):
        check_int("WideMultiplier", "a_bits", a_bits, 1)
        check_int("WideMultiplier", "b_bits", b_bits, 1)
        check_primitives(primitives, "multiplier")
        tiles = len(operand_chunks(a_bits)) * len(operand_chunks(b_bits))
        if tiles > 1 << MUL_SUM_LEVELS:
            raise ValueError(f"WideMultiplier {a_bits} x {b_bits} bits: {tiles} tiles, more than the "
                             f"{1 << MUL_SUM_LEVELS} its {MUL_SUM_LEVELS} adder levels sum")
        return super().__new__(cls)


    def __init__(self, a_bits: int, b_bits: int, *, primitives: str = "generic", spare_first: bool = False):
        self.spare_first = spare_first
        super().__init__(a_bits, b_bits, primitives=primitives)

    def elaborate(self, platform):
        m = Module()
        parts = []
        for i, (alo, aw, asg) in enumerate(operand_chunks(self.a_bits)):
            for j, (blo, bw, bsg) in enumerate(operand_chunks(self.b_bits)):
                tile = m.submodules[f"t{i}_{j}"] = PipelinedMultiplier(aw + (not asg), bw + (not bsg),
                                                                       primitives=self.primitives)
                a = self.a[alo:alo + aw]
                b = self.b[blo:blo + bw]
                m.d.comb += [tile.en.eq(self.en), tile.a.eq(a.as_signed() if asg else a),
                             tile.b.eq(b.as_signed() if bsg else b)]
                parts.append((alo + blo, tile.p))
        # with spare_first, the levels a product of fewer tiles does not need come first, as
        # plain registers of the tiles' products, so the adders take registers placed by them
        spare = MUL_SUM_LEVELS - (len(parts) - 1).bit_length() if self.spare_first else 0
        for level in range(MUL_SUM_LEVELS):
            parts.sort(key=lambda part: part[0])
            nxt = []
            for k in range(0, len(parts), 1 if level < spare else 2):
                if level < spare:
                    lo, value = parts[k]
                elif k + 1 < len(parts):
                    (lo, x), (hi, y) = parts[k], parts[k + 1]
                    d = hi - lo
                    value = Cat(x[:d], (x >> d) + y).as_signed() if d else x + y
                else:
                    lo, value = parts[k]
                width = min(len(value), self.a_bits + self.b_bits - lo) if lo < self.a_bits + self.b_bits \
                    else 1
                reg = Signal(signed(width), name=f"s{level}_{k if level < spare else k // 2}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += reg.eq(value)
                nxt.append((lo, reg))
            parts = nxt
        (lo, total), = parts
        m.d.comb += self.p.eq(total << lo if lo else total)
        return m
