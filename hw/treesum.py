"""Products and sums built from adders, pipelined: the shift-and-add partial products of a
narrow signed multiplier (a product that needs no DSP block) and a binary adder tree with
a chosen number of register stages.

``partial_products(a, b)``: the len(b) terms whose sum is a · b for a signed ``b``
(two's complement: bit i adds a · 2^i, the top bit subtracts it; ``neg_a`` = -a, when
the caller holds it, makes that term a plain multiplexer).

``tree_sum(m, terms, shape, stages, name)``: Σ terms through ceil(log2 n) levels of
two-input adders, each node one bit wider than its wider input up to ``shape`` (the
sum's), with ``stages`` register stages spread over the levels (stage s after level
floor(s · levels / stages), so the last one holds the sum); more stages than levels
become plain delays. The sum is a register ``stages`` cycles after the terms.
"""
from __future__ import annotations

from amaranth.hdl import Mux, Shape, Signal, Value, signed


def partial_products(a, b, neg_a=None) -> list:
    """The terms of a · b, ``b`` a signed value: b_i · a · 2^i, the top one negated. With
    ``neg_a`` (-a, held beside a) the top term is a multiplexer too, no negation."""
    n = len(b)
    top = (-(a << (n - 1))) if neg_a is None else (neg_a << (n - 1))
    return [Mux(b[i], top if i == n - 1 else (a << i), 0) for i in range(n)]


def tree_levels(n: int) -> int:
    """Adder levels of a tree over n terms."""
    return (n - 1).bit_length()


def tree_sum(m, terms, shape, stages: int, name: str):
    """The registered sum of ``terms`` (each of ``shape``) ``stages`` >= 1 cycles later."""
    if stages < 1:
        raise ValueError(f"tree_sum {name}: stages={stages}; expected at least 1")
    levels = tree_levels(len(terms))
    regs_after = [0] * (levels + 1)
    for s in range(1, stages + 1):
        regs_after[s * levels // stages] += 1
    top = Shape.cast(shape).width
    level = list(terms)
    for lv in range(levels + 1):
        for r in range(regs_after[lv]):
            nxt = []
            for i, t in enumerate(level):
                reg = Signal(signed(min(top, len(Value.cast(t)))) if lv < levels else shape,
                             name=f"{name}_l{lv}r{r}_{i}")
                m.d.sync += reg.eq(t)
                nxt.append(reg)
            level = nxt
        if lv < levels:
            nxt = []
            for i in range(0, len(level), 2):
                if i + 1 < len(level):
                    bits = min(top, max(len(Value.cast(level[i])), len(Value.cast(level[i + 1]))) + 1)
                    node = Signal(signed(bits), name=f"{name}_l{lv + 1}_{i // 2}")
                    m.d.comb += node.eq(level[i] + level[i + 1])
                    nxt.append(node)
                else:
                    nxt.append(level[i])
            level = nxt
    return level[0]
