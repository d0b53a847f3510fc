"""Gated add: ``(0 if gate else a) + b (+ (0 if gate else cin))`` in ``width`` bits.

The scale MAC's accumulate step adds a term to the ring's head, or to 0 for a tile's first
item. Written as ``Mux(gate, 0, a) + b``, synthesis puts one LUT per bit in front of the
carry chain (the AND), so each chain input is a LUT and a route later than its register.
With the ECP5 primitive set the gate goes into the carry chain's own LUTs instead: an
ECP5 ``CCU2C`` computes per bit a 4-input propagate function ``P(A, B, C, D)`` (its sum is
``P ^ carry``) and a 2-input generate ``G(A, B)`` taken when ``P = 0`` (Yosys's
``share/ecp5/ccu2c_sim.vh``: ``cout = P ? cin : G``, ``G`` from ``INIT[3:0]``). With
``A = a``, ``B = b``, ``C = gate``, ``D = 1``::

    P = (A & ~C) ^ B          G = B

is an add of the gated ``a``: when ``P = 0`` the two addends are equal, so the generate is
``b``. A carry-in is one more position below bit 0 with ``A = B = cin``: its carry out is
``cin & ~gate`` and its sum is dropped. Same ports and cycle behaviour with every
primitive set (hw/primitives.py); the ECP5 chain is checked against the generic sum in
the cocotb ECP5-primitive tests (tests/ecp5_models.py models ``CCU2C``).
"""
from __future__ import annotations

from amaranth.hdl import Const, Instance, Module, Mux, Signal, unsigned

from .primitives import check_primitives


def _init(fn) -> int:
    """16-bit LUT4 INIT of ``fn(a, b, c, d)`` (entry ``a + 2b + 4c + 8d``)."""
    return sum(fn(i & 1, (i >> 1) & 1, (i >> 2) & 1, i >> 3) << i for i in range(16))


#: D = 1: propagate (A & ~C) ^ B; D = 0 (INIT[3:0], the generate LUT2): B
GATED_INIT = _init(lambda a, b, c, d: ((a & (1 - c)) ^ b) if d else b)


def gated_add(m: Module, name: str, a, gate, b, width: int, *, cin=None,
              primitives: str = "generic") -> Signal:
    """``width``-bit sum ``(0 if gate else a) + b + (0 if gate else cin)`` (modulo
    ``2**width``; ``a`` and ``b`` extended by their own signedness), as a signal
    ``<name>`` of ``m``."""
    check_primitives(primitives, f"gated add {name!r}")
    out = Signal(unsigned(width), name=name)
    ax, bx = Signal(width, name=f"{name}_a"), Signal(width, name=f"{name}_b")
    m.d.comb += [ax.eq(a), bx.eq(b)]
    if primitives != "ecp5":
        total = Mux(gate, 0, ax) + bx
        if cin is not None:
            total = total + Mux(gate, 0, cin)
        m.d.comb += out.eq(total)
        return out
    # positions of the chain: (A, B, sum bit or None), padded to whole CCU2Cs
    pos = ([(cin, cin, None)] if cin is not None else []) \
        + [(ax[i], bx[i], i) for i in range(width)]
    if len(pos) % 2:
        pos.append((Const(0, 1), Const(0, 1), None))   # P = G = 0: kills the unused carry
    carry = Const(0, 1)
    for n in range(0, len(pos), 2):
        (a0, b0, i0), (a1, b1, i1) = pos[n], pos[n + 1]
        s0, s1, cout = Signal(name=f"{name}_s{n}"), Signal(name=f"{name}_s{n + 1}"), \
            Signal(name=f"{name}_co{n // 2}")
        m.submodules[f"{name}_ccu{n // 2}"] = Instance(
            "CCU2C", p_INIT0=GATED_INIT, p_INIT1=GATED_INIT,
            p_INJECT1_0="NO", p_INJECT1_1="NO",
            i_CIN=carry, i_A0=a0, i_B0=b0, i_C0=gate, i_D0=1,
            i_A1=a1, i_B1=b1, i_C1=gate, i_D1=1, o_S0=s0, o_S1=s1, o_COUT=cout)
        for i, s in ((i0, s0), (i1, s1)):
            if i is not None:
                m.d.comb += out[i].eq(s)
        carry = cout
    return out
