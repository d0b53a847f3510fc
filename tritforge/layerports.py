"""The decoder-layer top's port set (hw/layer.py; hw/LAYER.md says what each port means).

Plain Python like the engine's (``tritforge.ports``): the Amaranth signature, the tests'
payload words and the host's streams are made from it. The memory-side streams reuse the
units' own payloads: ``cb`` and ``w`` are the GEMV engine's, ``cs`` the RoPE unit's,
``kv_rd`` and ``kv_wr`` the attention unit's K/V rows.

* ``cmd`` (in): the build's T tokens (one on a decode build) for this layer at positions
  ``pos``..pos + T - 1 (token t's context pos + t + 1).
* ``h_in`` (in) / ``h_out`` (out): the residual stream, ``hidden`` elements per token,
  token by token.
* ``norm`` (in): the two RMSNorms' weights, norm 1's ``hidden`` beats then norm 2's: beat i
  of a norm carries g_q[i] (``g``); its first beat also the norm's ``gamma_frac`` and
  ``eps_q`` (``codec.intnorm.IntNormWeights``; the fields are not read on the others).
  The layer takes norm 1's beats beside the first token's ``h_in``, norm 2's beside the
  residual it reads for the first token's norm 2.
* ``cb`` (in): each matrix's 27 codebook entries, in schedule order (q, k, v, o, gate, up, down).
* ``mat`` (in): each matrix's requantization constants, in schedule order: the codebook's
  host_scale as a multiplier (``hm``, ``he``) and the accumulator pre-shift ``a``.
* ``w`` (in): the seven matrices' weight beats, in schedule order.
* ``cs`` (in): per token, its position's RoPE (cos, sin) row, once per rotated head (the
  key heads, then the query heads: the rows are the same for every head).
* ``kv_wr`` (out): the tokens' new K and V rows, per token and KV head its K row then its
  V row.
* ``kv_rd`` (in): per token t and KV head, the attention unit's KV stream over keys
  0..pos + t (the new rows included).
* ``err``, ``busy``: flags.
"""
from __future__ import annotations

from .attentionports import row_fields
from .layerconfig import LayerConfig
from .ports import IN, OUT, Field, Port, by_name, engine_ports
from .vectorports import EXP_BITS, GAMMA_FRAC_BITS, PRESHIFT_BITS, eps_bits, rope_ports


def layer_ports(lcfg: LayerConfig) -> tuple[Port, ...]:
    a, v = lcfg.accel, lcfg.accel.vector
    eng = by_name(engine_ports(a.engine))
    cs = by_name(rope_ports(v, v.resid_bits - 1, cs_bits(lcfg)))["cs"]
    rows = row_fields(lcfg.attention_unit)
    return (
        Port("cmd", IN, (Field("pos", max(1, (a.attention.max_context - 1).bit_length())),)),
        Port("h_in", IN, (Field("h", v.resid_bits, signed=True),)),
        Port("norm", IN, (Field("g", v.gamma_bits, signed=True), Field("gamma_frac", GAMMA_FRAC_BITS, signed=True),
                          Field("eps_q", eps_bits(v, lcfg.hidden)))),
        Port("cb", IN, eng["cb"].fields),
        Port("mat", IN, (Field("hm", v.scale_bits), Field("he", EXP_BITS, signed=True),
                         Field("a", PRESHIFT_BITS))),
        Port("w", IN, eng["w"].fields, word=True),
        Port("cs", IN, cs.fields),
        Port("kv_wr", OUT, rows),
        Port("kv_rd", IN, rows),
        Port("h_out", OUT, (Field("h", v.resid_bits, signed=True),)),
        Port("err", OUT, (Field("err", 1, flag=True),), stream=False),
        Port("busy", OUT, (Field("busy", 1, flag=True),), stream=False),
    )


def cs_bits(lcfg: LayerConfig) -> int:
    """Signed width of a RoPE table entry: |entry| <= a · 2^RF with the attention scaling
    a <= 1, so RF + 2 bits."""
    return lcfg.accel.vector.rope_frac_bits + 2
