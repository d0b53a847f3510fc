"""The vector unit's port sets (hw/VECTOR.md): every unit's ports, directions and payload
fields, described once in plain Python (``tritforge.ports``' ``Port`` / ``Field``).

From these come the Amaranth signatures of the RTL (``hw.signature.members``) and the
tests' payload words (``Port.pack`` / ``Port.unpack``); the module imports no Amaranth, so
models and drivers read it too. Every port is an ``amaranth.lib.stream`` valid/ready port
(Verilog ``<port>__payload``, ``__valid``, ``__ready``) whose struct payload packs its
fields in order from bit 0.

Widths follow the integer contract (codec/fixedpoint.py, codec/intnorm.py,
codec/introtary.py, codec/intact.py) with the parameters of ``VectorConfig``.
"""
from __future__ import annotations

from .ports import IN, OUT, Field, Port, bits_for

#: signed width of a scale's exponent e (value m · 2^-e) on the units' ports: every step of
#: the contract has |e| < 2^7. quantize_int8's e lies in e127 - in_bits .. e127 with
#: e127 = B + 6 (1/127 = 0.504 · 2^-6); the RMSNorm step's e = e_u + (RB + w) + GF - k with
#: w <= 30, |GF| <= 32 and k in RB - 1 .. RB + 1 lies in B - 66 .. B + 69 (-58 .. 89)
EXP_BITS = 8
#: unsigned width of the requantizer's accumulator pre-shift a (fixedpoint.acc_preshift)
PRESHIFT_BITS = 6
#: signed width of an RMSNorm's gamma_frac GF on the ``k`` port: |GF| < 32 (EXP_BITS'
#: bound; codec.intnorm.IntNormWeights.from_float picks it in -16 .. 24)
GAMMA_FRAC_BITS = 6


def lane_field(name: str, width: int, signed: bool, lanes: int) -> Field:
    """An element field of a beat of ``lanes`` elements: one value for one lane, an array
    (lane k at ``offset + k * width``) for more."""
    return Field(name, width, signed=signed, count=lanes if lanes > 1 else None)



def rsqrt_exp_bits(vcfg, ss_bits: int) -> int:
    """Unsigned width of E = RB + w, w = (bitlen(ss) - 1) // 2 <= (ss_bits - 1) // 2."""
    return (vcfg.rsqrt_frac_bits + (ss_bits - 1) // 2).bit_length()


def step_fields(scale_bits: int, lanes: int = 1) -> tuple[Field, ...]:
    """A beat of int8 elements with its vector's step (m, e) and the vector's last flag."""
    return (lane_field("x", 8, True, lanes), Field("m", scale_bits), Field("e", EXP_BITS, signed=True),
            Field("last", 1, flag=True))


def row_beat_fields(lanes: int, scale_bits: int) -> tuple[Field, ...]:
    """A beat of ``lanes`` int8 elements of a row with the row's step (an attention unit's
    query or K/V beat, the engine's activation word in ``elems``)."""
    return (Field("elems", 8, signed=True, count=lanes), Field("m", scale_bits),
            Field("e", EXP_BITS, signed=True))


def lanepacker_ports(lanes: int, scale_bits: int) -> tuple[Port, ...]:
    """``LanePacker``: one int8 element with its vector's step in, beats of ``lanes`` out."""
    return (Port("i", IN, step_fields(scale_bits)), Port("o", OUT, row_beat_fields(lanes, scale_bits)))


def divider_ports(num_bits: int, den_bits: int, quo_bits: int) -> tuple[Port, ...]:
    """``Divider``: one division per beat, quo = num // den, rem = num % den."""
    return (Port("i", IN, (Field("num", num_bits), Field("den", den_bits))),
            Port("o", OUT, (Field("quo", quo_bits), Field("rem", den_bits))))


def int8quant_ports(in_bits: int, scale_bits: int, lanes: int = 1) -> tuple[Port, ...]:
    """``Int8Quantizer``: beats of ``lanes`` elements |v| < 2^in_bits in, ``last`` on a
    vector's final beat; the int8 elements with the vector's step out."""
    return (Port("i", IN, (lane_field("v", in_bits + 1, True, lanes), Field("last", 1, flag=True))),
            Port("o", OUT, step_fields(scale_bits, lanes)))


def rsqrt_ports(vcfg, ss_bits: int) -> tuple[Port, ...]:
    """``Rsqrt``: ss > 0 in; (y, E) with ss^(-1/2) ≈ y · 2^-E out (y <= 2^RB + 1)."""
    return (Port("i", IN, (Field("ss", ss_bits),)),
            Port("o", OUT, (Field("y", vcfg.rsqrt_frac_bits + 1),
                            Field("E", rsqrt_exp_bits(vcfg, ss_bits)))))


def eps_bits(vcfg, n: int) -> int:
    """Unsigned width of an RMSNorm's eps_q on the ``k`` port: that of n · 2^(2 NB), the
    largest sum of squares of the pre-shifted input (so eps_q may be as large as the sum it
    is added to; codec.intnorm: eps_q = rint(eps · n · 2^(2 FR)), eps < 2^(2 NB - 2 FR))."""
    return (n << (2 * vcfg.norm_in_bits)).bit_length()


def rmsnorm_ports(vcfg, n: int, lanes: int = 1) -> tuple[Port, ...]:
    """``RmsNorm``: the residual's n elements in (FR fraction bits, ``lanes`` per beat),
    the gamma memory's writes (``g``: a word address, n / lanes words, and its g_q values),
    each vector's constants (``k``: gamma_frac and eps_q, one beat per vector), the int8
    elements with the vector's step out."""
    return (Port("h", IN, (lane_field("h", vcfg.resid_bits, True, lanes),)),
            Port("g", IN, (Field("addr", bits_for(n // lanes)), lane_field("value", vcfg.gamma_bits, True, lanes))),
            Port("k", IN, (Field("gamma_frac", GAMMA_FRAC_BITS, signed=True), Field("eps_q", eps_bits(vcfg, n)))),
            Port("o", OUT, step_fields(vcfg.scale_bits, lanes)))


def rope_ports(vcfg, x_bits: int, cs_bits: int, lanes: int = 1) -> tuple[Port, ...]:
    """``Rope``: one head's elements (|x| < 2^x_bits) in natural order, the position's
    (cos_q, sin_q) pairs (head_dim / 2 per head), the rotated elements (x_bits + 2 signed
    bits, saturated) out in natural order; ``lanes`` of each per beat."""
    return (Port("x", IN, (lane_field("x", x_bits + 1, True, lanes),)),
            Port("cs", IN, (lane_field("c", cs_bits, True, lanes), lane_field("s", cs_bits, True, lanes))),
            Port("o", OUT, (lane_field("y", x_bits + 2, True, lanes),)))


def silumul_ports(vcfg, lanes: int = 1) -> tuple[Port, ...]:
    """``SiluMul``: (g, u) pairs in, silu(g) · u out, all resid_bits wide, FR fraction bits;
    ``lanes`` per beat."""
    rb = vcfg.resid_bits
    return (Port("i", IN, (lane_field("g", rb, True, lanes), lane_field("u", rb, True, lanes))),
            Port("o", OUT, (lane_field("y", rb, True, lanes),)))


def requant_ports(vcfg, acc_bits: int, out_bits: int, residual: bool, lanes: int = 1) -> tuple[Port, ...]:
    """``Requantize``: ``lanes`` accumulators with their (m, e) and pre-shift a (and, with
    ``residual``, the residual elements they are added to) in; the fixed-point elements
    out (``out_bits`` wide, resid_bits with the residual add)."""
    fields = (lane_field("acc", acc_bits, True, lanes), Field("m", vcfg.scale_bits),
              Field("e", EXP_BITS, signed=True), Field("a", PRESHIFT_BITS))
    if residual:
        fields += (lane_field("res", vcfg.resid_bits, True, lanes),)
    return (Port("i", IN, fields),
            Port("o", OUT, (lane_field("y", vcfg.resid_bits if residual else out_bits, True, lanes),)))
