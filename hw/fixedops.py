"""The Amaranth forms of codec/fixedpoint.py's operators, as combinational values.

``rshift_round(x, s)`` is the contract's only rounding, (x + 2^(s-1)) >> s (round half
up). For a shift amount ``s`` known at elaboration it is that add and a fixed shift; for a
variable s >= 0 it is written ``((2x >> s) + 1) >> 1``, the same integer (floor((x +
2^(s-1)) / 2^s) = floor((floor(x / 2^(s-1)) + 1) / 2)) without a 2^(s-1) constant as wide
as the largest shift. ``saturate`` clamps to a signed width, ``clamp`` to ±limit;
``bitlen`` is the priority encoder of the leading-zero count, ``max_tree`` the lanes'
maximum. A value used twice in a
chain is a signal, never a repeated expression (Amaranth lowers expressions as trees: a
chain of re-used sub-expressions grows exponentially in the netlist).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed


def rshift_round(x, s):
    """(x + 2^(s-1)) >> s; ``s`` an int >= 0 or an unsigned value; arithmetic for a signed x."""
    if isinstance(s, int):
        if s < 0:
            raise ValueError(f"rshift_round: negative constant shift {s}")
        return x if s == 0 else (x + (1 << (s - 1))) >> s
    return (((x << 1) >> s) + 1) >> 1


def saturate(x, bits: int):
    """x clamped to -2^(bits-1) .. 2^(bits-1) - 1."""
    hi = (1 << (bits - 1)) - 1
    return Mux(x > hi, hi, Mux(x < -hi - 1, -hi - 1, x))


def clamp(x, limit: int):
    """x clamped to -limit .. limit."""
    return Mux(x > limit, limit, Mux(x < -limit, -limit, x))


def bitlen(m, v: Value, name: str = "bitlen"):
    """The bit length of the unsigned value v (0 for 0): a priority encoder written as
    codec.fixedpoint.bitlen's compare-and-shift steps (a tree, not a chain), each step's
    value a combinational signal of ``m``."""
    steps = []
    s = 1
    while s < len(v):
        steps.insert(0, s)
        s *= 2
    n = Signal(range(len(v) + 1), name=f"{name}_n")
    terms = []
    for s in steps:
        big = Signal(name=f"{name}_big{s}")
        nxt = Signal(len(v), name=f"{name}_v{s}")
        m.d.comb += [big.eq((v >> s) != 0), nxt.eq(Mux(big, v >> s, v))]
        terms.append(Mux(big, s, 0))
        v = nxt
    m.d.comb += n.eq(sum(terms, 0) + (v != 0))
    return n


def max_tree(m, values, width: int, name: str = "max"):
    """The largest of the unsigned ``values``: a tree of compare-and-select, each node a
    combinational signal of ``m`` of ``width`` bits."""
    level = list(values)
    d = 0
    while len(level) > 1:
        nxt = []
        for k in range(0, len(level) - 1, 2):
            node = Signal(width, name=f"{name}_{d}_{k // 2}")
            m.d.comb += node.eq(Mux(level[k] > level[k + 1], level[k], level[k + 1]))
            nxt.append(node)
        if len(level) % 2:
            nxt.append(level[-1])
        level, d = nxt, d + 1
    return level[0]


def abs_value(v: Value):
    """|v| of a signed value, one bit wider unsigned-safe (|-2^(w-1)| = 2^(w-1))."""
    return Mux(v < 0, -v, v)


def scale_mul(m, m1, e1, m2, e2, bits: int, name: str = "scale"):
    """``codec.fixedpoint.scale_mul`` of two normalized ``bits``-bit mantissas: their product
    has 2·bits - 1 or 2·bits bits, so the normalization is one multiplexer. Returns the
    (mantissa, exponent) values; the product is a combinational signal of ``m``."""
    prod = Signal(2 * bits, name=f"{name}_prod")
    m.d.comb += prod.eq(m1 * m2)
    top = prod[2 * bits - 1]
    return Mux(top, prod[bits:], prod[bits - 1:2 * bits - 1]), e1 + e2 - Mux(top, bits, bits - 1)


def fits_signed(x, bits: int):
    """x lies in -2^(bits-1) .. 2^(bits-1) - 1: the bits from bits - 1 up are all equal (a
    reduction of LUTs, no comparator's carry chain)."""
    if len(x) <= bits:
        return Const(1, 1) if x.shape().signed or len(x) < bits else ~x[-1]
    top = x[bits - 1:]
    if not x.shape().signed:
        return top == 0
    return (top == 0) | (top == (1 << len(top)) - 1)


def saturate_bits(x, bits: int):
    """``saturate`` written with ``fits_signed``: x clamped to -2^(bits-1) .. 2^(bits-1) - 1."""
    hi = (1 << (bits - 1)) - 1
    neg = x[-1] if x.shape().signed else Const(0, 1)
    return Mux(fits_signed(x, bits), x[:bits].as_signed(), Mux(neg, -hi - 1, hi))


def staged_rshift(m, adv, x, amount, out_bits: int, stages: int, name: str, comb_last: bool = False,
                  amount_copies: list | None = None):
    """``(x >> amount)[:out_bits]`` (arithmetic for a signed x; ``amount`` unsigned) through
    ``stages`` registers enabled by ``adv``: the amount's bits are split over the stages,
    the most significant first, each stage a multiplexer of its bits' shifts. A stage keeps
    only the bits the later stages can still move into the result (``out_bits`` plus the
    largest shift left), and carries the amount's remaining bits beside them. Returns the
    last register (signed for a signed x); with ``comb_last`` the last stage's multiplexer
    unregistered (for a register the caller owns, such as a ``CreditFifo``'s entry).
    ``amount_copies``: registers equal to ``amount`` (``hw.replica.RegisterReplicas``); the
    first stage's output bits are split into as many groups, each group's multiplexers
    selected by its own copy, so no one register drives them all."""
    bits = len(amount)
    per = -(-bits // stages) if bits else 0
    cur, amt = x, amount
    signed_x = x.shape().signed
    for k in range(stages):
        lo = max(bits - per * (k + 1), 0)
        hi = max(bits - per * k, 0)
        part = amt[lo:hi] if hi > lo else Const(0, 1)
        rest = (1 << lo) - 1                      # the largest shift the later stages do
        width = min(len(cur), out_bits + rest) if k < stages - 1 else out_bits
        shifted = cur >> (part << lo) if hi > lo else cur
        if k == 0 and amount_copies and hi > lo:
            n = len(amount_copies)
            edges = [width * g // n for g in range(n + 1)]
            shifted = Cat(*[(cur >> (c[lo:hi] << lo))[edges[g]:edges[g + 1]]
                            for g, c in enumerate(amount_copies) if edges[g + 1] > edges[g]])
            if signed_x:
                shifted = shifted.as_signed()
        if comb_last and k == stages - 1:
            last = Signal(signed(width) if signed_x else width, name=f"{name}_sh{k}")
            m.d.comb += last.eq(shifted)
            return last
        reg = Signal(signed(width) if signed_x else width, name=f"{name}_sh{k}", reset_less=True)
        rreg = Signal(max(lo, 1), name=f"{name}_sa{k}", reset_less=True)
        with m.If(adv):
            m.d.sync += [reg.eq(shifted), rreg.eq(amt[:lo] if lo else 0)]
        cur, amt = reg, rreg
    return cur


def round_shift(x, s: int):
    """``rshift_round`` by a constant s >= 0 written ((x >> (s - 1)) + 1) >> 1: the same
    integer, with the add's carry chain only over the bits from s - 1 up."""
    if s < 0:
        raise ValueError(f"round_shift: negative constant shift {s}")
    return x if s == 0 else ((x >> (s - 1)) + 1) >> 1


#: bits per chunk of ``bitlen_staged``'s first stage
BITLEN_CHUNK = 8


def bitlen_staged(m, en, v: Value, name: str):
    """``bitlen(v)`` of an unsigned v through two registers enabled by ``en``
    (``vectortiming.BITLEN_STAGES``): first, per chunk of BITLEN_CHUNK bits, whether it is
    nonzero and the bit length v would have if it were the top chunk (a function of the
    chunk's bits alone); then the candidate of the highest nonzero chunk, picked by a tree of
    pairs. Returns the second register."""
    chunks = [(lo, v[lo:lo + BITLEN_CHUNK]) for lo in range(0, len(v), BITLEN_CHUNK)]
    nbits = len(v).bit_length()
    level = []
    for c, (lo, ch) in enumerate(chunks):
        nz = Signal(name=f"{name}_nz{c}", reset_less=True)
        cand = Signal(nbits, name=f"{name}_cand{c}", reset_less=True)
        local = sum((Mux(ch[j] & ~(ch[j + 1:] != 0) if j + 1 < len(ch) else ch[j], j + 1, 0)
                     for j in range(len(ch))), Const(0, nbits))
        with m.If(en):
            m.d.sync += [nz.eq(ch != 0), cand.eq(lo + local)]
        level.append((nz, cand))
    while len(level) > 1:
        nxt = []
        for k in range(0, len(level), 2):
            if k + 1 < len(level):
                (nlo, clo), (nhi, chi) = level[k], level[k + 1]
                nxt.append((nlo | nhi, Mux(nhi, chi, clo)))
            else:
                nxt.append(level[k])
        level = nxt
    n = Signal(nbits, name=f"{name}_n", reset_less=True)
    with m.If(en):
        m.d.sync += n.eq(Mux(level[0][0], level[0][1], 0))
    return n
