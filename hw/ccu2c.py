"""ECP5 ``CCU2C`` carry chains whose LUTs compute more than a plain add (hw/gatedadd.py,
hw/addsub.py).

A ``CCU2C`` holds two chain positions. Position i computes a 4-input propagate
``P(A, B, C, D)`` from its LUT4 ``INIT`` (entry ``A + 2B + 4C + 8D``; ``D = 1`` here) and a
2-input generate ``G(A, B)`` from ``INIT[3:0]``; its sum is ``P ^ carry`` and its carry
out ``P ? carry : G`` (Yosys's ``share/ecp5/ccu2c_sim.vh``). :func:`chain` builds a chain
from a list of positions; :func:`lut_init` writes an ``INIT`` from a function.
"""
from __future__ import annotations

from amaranth.hdl import Const, Instance, Module, Signal

#: a position with P = G = 0 (pads a chain to whole cells; kills the carry past it)
PAD = (0, Const(0, 1), Const(0, 1), Const(0, 1), None)


def lut_init(fn) -> int:
    """16-bit LUT4 INIT of ``fn(a, b, c, d)`` (entry ``a + 2b + 4c + 8d``)."""
    return sum(fn(i & 1, (i >> 1) & 1, (i >> 2) & 1, i >> 3) << i for i in range(16))


def chain(m: Module, name: str, positions: list, out) -> None:
    """``CCU2C`` cells ``<name>_ccu<k>`` for ``positions`` (each ``(INIT, A, B, C, i)``,
    the lowest first; the carry into the first is 0), padded with :data:`PAD` to whole
    cells; the sum of a position with ``i`` not None drives ``out[i]``."""
    pos = list(positions) + ([PAD] if len(positions) % 2 else [])
    carry = Const(0, 1)
    for k in range(0, len(pos), 2):
        (init0, a0, b0, c0, i0), (init1, a1, b1, c1, i1) = pos[k], pos[k + 1]
        s0, s1, cout = Signal(name=f"{name}_s{k}"), Signal(name=f"{name}_s{k + 1}"), \
            Signal(name=f"{name}_co{k // 2}")
        m.submodules[f"{name}_ccu{k // 2}"] = Instance(
            "CCU2C", p_INIT0=init0, p_INIT1=init1, p_INJECT1_0="NO", p_INJECT1_1="NO",
            i_CIN=carry, i_A0=a0, i_B0=b0, i_C0=c0, i_D0=1,
            i_A1=a1, i_B1=b1, i_C1=c1, i_D1=1, o_S0=s0, o_S1=s1, o_COUT=cout)
        for i, s in ((i0, s0), (i1, s1)):
            if i is not None:
                m.d.comb += out[i].eq(s)
        carry = cout
