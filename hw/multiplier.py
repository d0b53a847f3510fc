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

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from .checks import check_int
from .primitives import check_primitives
#: operand width of the ECP5 sysDSP multiplier (signed)
ECP5_OPERAND_BITS = 18


class PipelinedMultiplier(wiring.Component):
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

    def __init__(self, a_bits: int, b_bits: int, *, primitives: str = "generic"):
        self.primitives = primitives
        self.a_bits, self.b_bits = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "en": In(1),
                          "p": Out(signed(a_bits + b_bits))})

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
