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

from amaranth.hdl import Module, Mux, Signal, unsigned

from . import ccu2c
from .primitives import check_primitives


#: D = 1: propagate (A & ~C) ^ B; D = 0 (INIT[3:0], the generate LUT2): B
GATED_INIT = ccu2c.lut_init(lambda a, b, c, d: ((a & (1 - c)) ^ b) if d else b)


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
    # positions of the chain: (INIT, A, B, C, sum bit or None)
    ccu2c.chain(m, name, ([(GATED_INIT, cin, cin, gate, None)] if cin is not None else [])
                + [(GATED_INIT, ax[i], bx[i], gate, i) for i in range(width)], out)
    return out
