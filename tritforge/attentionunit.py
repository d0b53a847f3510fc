"""AttentionUnitConfig: one build of the attention unit (hw/attention.py) and the widths it
derives from the integer contract.

``AttentionConfig`` and ``VectorConfig`` (tritforge/accelconfig.py) fix the number formats
of the contract (docs/NUMERIC.md, "Attention"); a build also fixes what the RTL is made
for: the model's ``head_dim``, the ``group`` of query heads that share one KV head
(grouped-query attention: Hq / Hkv) and the ``lanes`` of int8 elements per stream beat.
Every register width of the unit is derived here, once, from the contract's bounds; the
RTL, its port set (tritforge/attentionports.py), the cycle closed form
(sim/attentioncycles.py) and the tests read them from this object.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .accelconfig import AttentionConfig, VectorConfig
from .errors import TritforgeError

from .vectortiming import BITLEN_STAGES, MUL_STAGES

#: cycles of the unit's multipliers (``hw.multiplier.WideMultiplier``: registered 18 x 18
#: tiles and a registered sum of their products), operands in to product out
MUL_LATENCY = MUL_STAGES
#: cycles of the exponential ``hw.exp2neg.Exp2Neg`` (argument, index, table read, the
#: shift, its rounding)
EXP_LATENCY = 5
#: cycles of a read of the o memory, address to data: ``hw.actbuffer.ActivationBuffer``
#: without its fabric registers (the block RAM's address and output registers)
O_READ_LATENCY = 2
#: how the p·V products w · v are built (``pv_multiplier``)
PV_MULTIPLIERS = ("dsp", "lut")


def bits_of(n: int) -> int:
    """Bit length of a non-negative integer (``int.bit_length``), at least 1."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class AttentionUnitConfig:
    """One attention unit: the contract's formats plus the build's head_dim, group, lanes."""

    head_dim: int = 64
    group: int = 3
    lanes: int = 16
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    #: "dsp": the g · lanes products w · v of a V beat as (p · m_v) · (v << ls), which
    #: synthesis maps to DSP blocks (two MULT18X18D each on ECP5 at the default widths);
    #: "lut": w · v as shift-and-add in logic (no DSP block)
    pv_multiplier: str = "dsp"

    def __post_init__(self):
        o = "AttentionUnitConfig"
        if self.pv_multiplier not in PV_MULTIPLIERS:
            raise TritforgeError(f"{o} pv_multiplier={self.pv_multiplier!r}: expected one of "
                                 f"{', '.join(PV_MULTIPLIERS)}")
        for name, cls in (("attention", AttentionConfig), ("vector", VectorConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TritforgeError(f"{o} {name}={getattr(self, name)!r}: expected a {cls.__name__}")
        for name, lo, hi in (("head_dim", 2, self.attention.max_head_dim), ("group", 1, 64),
                             ("lanes", 1, 256)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise TritforgeError(f"{o} {name}={v!r}: expected an integer in {lo}..{hi}")
        if self.head_dim % 2 or self.head_dim % self.lanes:
            raise TritforgeError(f"{o} head_dim={self.head_dim}: expected an even multiple of "
                                 f"lanes={self.lanes}")
        if self.attention.scale_bits != self.vector.scale_bits:
            raise TritforgeError(f"{o}: attention scale_bits={self.attention.scale_bits} differs from "
                                 f"vector scale_bits={self.vector.scale_bits}")
        if self.w_left_max < 0:
            raise TritforgeError(f"{o}: p·V weights of prob_frac_bits + scale_bits = "
                                 f"{self.attention.prob_frac_bits + self.attention.scale_bits} bits exceed "
                                 f"the contract's bound of {self.w_bits - 1} bits")
        if self.out_shift < 0:
            raise TritforgeError(f"{o}: 2 recip_bits + pv_frac_bits < resid_frac_bits; expected a "
                                 "right shift at the output")

    # ---- the build ---------------------------------------------------------------------
    @property
    def beats(self) -> int:
        """Stream beats of one head's vector (a q vector, a K or V row, an output)."""
        return self.head_dim // self.lanes

    @property
    def query_constant(self) -> tuple[int, int]:
        """(M_c, e_c): log2(e) / sqrt(head_dim) as a normalized multiplier (host, offline)."""
        from .codec.intattention import query_constant
        return query_constant(self.head_dim, self.attention.scale_bits)

    @property
    def exp_table(self) -> list[int]:
        from .codec.intsoftmax import exp_lut
        a = self.attention
        return [int(v) for v in exp_lut(a.exp_lut_bits, a.prob_frac_bits)]

    # ---- widths (docs/NUMERIC.md, "Attention": each bound as the golden reference asserts it)
    @property
    def keys_bits(self) -> int:
        """Width of a key count 0..max_context."""
        return bits_of(self.attention.max_context)

    @property
    def score_bits(self) -> int:
        """Signed q·k dot product: |s| <= head_dim · 127 · 128."""
        return bits_of(self.head_dim * 127 * 128) + 1

    @property
    def z_bits(self) -> int:
        """Signed base-2 logit and running max: the floor -2^(SI+SF+1) lies below every logit."""
        a = self.attention
        return a.score_int_bits + a.score_frac_bits + 2

    @property
    def p_bits(self) -> int:
        """Unsigned probability 0..2^PF."""
        return self.attention.prob_frac_bits + 1

    @property
    def l_bits(self) -> int:
        """Unsigned running sum l <= max_context · 2^PF."""
        return self.attention.prob_frac_bits + bits_of(self.attention.max_context) + 1

    @property
    def v_real_bits(self) -> int:
        """|v| in real units < 2^(resid_bits - 1 - FR)."""
        return self.vector.resid_bits - 1 - self.vector.resid_frac_bits

    @property
    def w_bits(self) -> int:
        """Signed p·V weight: |w| < 2^(PF + v_real_bits + OVF + 1)."""
        a = self.attention
        return a.prob_frac_bits + self.v_real_bits + a.pv_frac_bits + 2

    @property
    def w_left_max(self) -> int:
        """Largest left shift of p · m_v (``codec.intattention.weight_left_max``)."""
        from .codec.intattention import weight_left_max
        return weight_left_max(self.attention, self.vector)

    @property
    def o_bits(self) -> int:
        """Signed p·V accumulator: the golden reference's bound plus the sign."""
        a = self.attention
        return a.prob_frac_bits + self.v_real_bits + a.pv_frac_bits + bits_of(a.max_context) + 2

    @property
    def quotient_bits(self) -> int:
        """1/l: R = floor(2^(2 RL) / l_t) <= 2^(2 RL)."""
        return 2 * self.attention.recip_bits + 1

    @property
    def out_shift(self) -> int:
        """Right shift of o_t · R to the output's FR fraction bits: 2 RL + OVF - FR."""
        a = self.attention
        return 2 * a.recip_bits + a.pv_frac_bits - self.vector.resid_frac_bits

    @property
    def z_shift_fixed(self) -> int:
        """The constant part of the logit's shift: 2 FR - SF (the rest is e_c + e_k)."""
        return 2 * self.vector.resid_frac_bits - self.attention.score_frac_bits

    @property
    def w_shift_fixed(self) -> int:
        """The constant part of the weight's shift: FR - OVF (the rest is e_v)."""
        return self.vector.resid_frac_bits - self.attention.pv_frac_bits

    @property
    def ot_bits(self) -> int:
        """Signed o_t = rshift_round(o, sl) of a normalized l: |o_t| <= l_t · 2^(v_real_bits
        + OVF) with l_t < 2^(RL+1) (docs/NUMERIC.md); wider values only come from rows the
        unit flags as bad."""
        return self.attention.recip_bits + 1 + self.v_real_bits + self.attention.pv_frac_bits + 1

    # ---- timing (hw/ATTENTION.md "Timing"; the RTL is built from these, the closed form
    # sim/attentioncycles.py and the stepping model sim/attentionstep.py count with them)
    @property
    def dot_levels(self) -> int:
        """Adder levels of a K beat's dot product: 8 partial products per lane."""
        return (8 * self.lanes - 1).bit_length()

    @property
    def dot_stages(self) -> int:
        """Register stages of the dot product's adder tree (one per level)."""
        return max(1, self.dot_levels)

    #: cycles of a logit after its two multipliers: the shift's two steps, the rounding,
    #: the clamp, the write into the logit memory and the block's maximum
    logit_tail = 5

    @property
    def k_drain(self) -> int:
        """Cycles from a block's last K beat until the block's logits and maximum are
        complete: the beat register, the dot product, the score and its register by the
        multipliers, two multipliers (s · m_c, then · m_k), then ``logit_tail``."""
        return 1 + self.dot_stages + 2 + 2 * MUL_LATENCY + self.logit_tail

    #: cycles of SOFT: the new maximum, its step m - m', the exponential, c latched
    soft_cycles = EXP_LATENCY + 2

    #: cycles of a V beat's weight after p · m_v: the shift's two steps, the rounding, the
    #: row's weight registers (one per product)
    weight_stages = 4

    @property
    def v_latency(self) -> int:
        """Cycles from accepting a V beat to adding its products into the block's sums: the
        logit read, the exponential, p · m_v, ``weight_stages``, the product."""
        return 1 + EXP_LATENCY + MUL_LATENCY + self.weight_stages + MUL_LATENCY

    @property
    def merge_elements(self) -> int:
        """Elements the merge folds per block: per head l and the head_dim o elements."""
        return self.group * (self.head_dim + 1)

    #: cycles from a merge element's read until its result can be read back: the memory
    #: read, o · c, the rounding shift, the add, the write
    merge_latency = O_READ_LATENCY + MUL_LATENCY + 3

    #: cycles from the merge's write of a head's l until that head's divisor is ready: l
    #: registered, max(l, 1), its bit length (BITLEN_STAGES), the shift sl, 2 l >> sl, then
    #: l_t (the rounding) written beside sl
    den_stages = 2 + BITLEN_STAGES + 2

    @property
    def l_latency(self) -> int:
        """Cycles from the merge's read of a head's l until its divisor can start the
        division."""
        return self.merge_latency + self.den_stages

    @property
    def merge_wait(self) -> int:
        """Cycles from a block's last V beat to the first cycle the next block's SOFT may
        run: the V pipeline, then every element shifted into the merge."""
        return self.v_latency + 1 + self.merge_elements

    @property
    def final_wait(self) -> int:
        """Cycles from the job's last V beat to the first DIVIDE: the first head's divisor
        from the last merge's l ready. The merge goes on beside the output: head h's element
        d is readable 1 + d cycles after its l, and read no earlier than its division's
        Q + 2 cycles after its divisor plus d."""
        return self.v_latency + 1 + self.l_latency

    #: cycles of an output element from its read until its beat is on ``out``: the memory
    #: read, the o_t shift (two steps, the rounding with the second), o_t · R, the rounding,
    #: the saturation, the beat being formed, the output register
    out_latency = O_READ_LATENCY + 2 + MUL_LATENCY + 2 + 1 + 1

    def describe(self) -> str:
        return (f"attention unit head_dim={self.head_dim} group={self.group} lanes={self.lanes} "
                f"max_context={self.attention.max_context}")
