"""Add or subtract chosen by a register: ``a + b`` where ``neg`` is 1, ``a - b`` where it
is 0, in ``width`` bits (the divider's non-restoring step, hw/divider.py).

Written as ``a + (b ^ mask) + carry``, synthesis puts one LUT per bit in front of the
carry chain (the XOR with the select), so each chain input is a LUT and a route later than
its register. With the ECP5 primitive set the select goes into the carry chain's own LUTs
instead: an ECP5 ``CCU2C`` computes per bit a 4-input propagate ``P(A, B, C, D)`` (its
sum is ``P ^ carry``) and a 2-input generate ``G(A, B)`` taken when ``P = 0`` (Yosys's
``share/ecp5/ccu2c_sim.vh``: ``cout = P ? cin : G``, ``G`` from ``INIT[3:0]``). With
``A = a``, ``B = b``, ``C = neg``, ``D = 1``::

    P = A ^ B ^ ~C          G = A

adds ``a`` and ``b`` or its complement: when ``P = 0`` the two addends are equal, so the
generate is ``a``. The subtraction's carry-in is one more position below bit 0 with
``A = neg``, whose propagate is 0 and generate ``~A``. ``neg`` may be given as several
equal signals (copies of one register), each taking its share of the chain's positions,
so no one register drives the whole chain. Same result with every primitive set
(hw/primitives.py); the ECP5 chain is proved equal to the generic sum by Yosys's SAT
solver (tests/test_addsub.py).
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Signal, unsigned

from . import ccu2c
from .primitives import check_primitives

#: D = 1: propagate A ^ B ^ ~C; D = 0 (INIT[3:0], the generate LUT2): A
ADDSUB_INIT = ccu2c.lut_init(lambda a, b, c, d: (a ^ b ^ (1 - c)) if d else a)
#: the carry-in position: propagate 0, generate ~A (A = neg: a subtraction's carry 1)
CARRY_IN_INIT = ccu2c.lut_init(lambda a, b, c, d: 0 if d else 1 - a)


def add_sub(m: Module, name: str, a, b, negs: list, width: int, *, primitives: str = "generic") -> Signal:
    """``width``-bit ``a + b`` where ``negs`` (equal 1-bit signals) are 1, ``a - b`` where
    they are 0 (modulo ``2**width``; ``a`` and ``b`` zero-extended or truncated to
    ``width``), as a signal ``<name>`` of ``m``. Position i of the chain takes copy
    ``i * len(negs) // width`` of the select."""
    check_primitives(primitives, f"add/sub {name!r}")
    out = Signal(unsigned(width), name=name)
    ax, bx = Signal(width, name=f"{name}_a"), Signal(width, name=f"{name}_b")
    m.d.comb += [ax.eq(a), bx.eq(b)]
    n = len(negs)
    if primitives != "ecp5":
        sub = ~negs[0]
        m.d.comb += out.eq(ax + (bx ^ sub.replicate(width)) + sub)
        return out
    # positions of the chain: (INIT, A, B, C, sum bit or None)
    ccu2c.chain(m, name, [(CARRY_IN_INIT, negs[0], Const(0, 1), Const(0, 1), None)]
                + [(ADDSUB_INIT, ax[i], bx[i], negs[i * n // width], i) for i in range(width)], out)
    return out
