"""Closed forms of the attention and vector units, by hand on small shapes."""
import pytest

from tritforge.accelconfig import AttentionConfig
from tritforge.errors import TritforgeError
from tritforge.sim import unitcycles as u

SHAPE = {"_name": "tiny", "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "vocab_size": 100, "max_position_embeddings": 256}
UNITS = u.UnitsConfig(attn_lanes=16, exp_units=2, recip_cycles=4, block_latency=8, vec_lanes=8, op_latency=4,
                      rsqrt_cycles=6)
ATT = AttentionConfig(block=64)


def test_attention_decode_by_hand():
    w = u.attention_decode(SHAPE, 100, ATT, UNITS)
    macs = 4 * 100 * 16                                      # Hq x keys x hd
    blocks = 2
    qk = macs // 16
    expected = (2 * qk + max(0, 4 * 100 // 2 - qk) + -(-4 * blocks * 16 // 16) + blocks * 8
                + 4 * 4 + -(-4 * 16 // 16))
    assert w.cycles == expected
    row = 2 * 2 * (16 + 3)                                   # K and V, 2 KV heads, int8 + 3-byte scale
    assert (w.read_bytes, w.write_bytes, w.write_batches) == (100 * row, row, 1)
    assert w.actions["qk_mac"] == w.actions["pv_mac"] == macs and w.actions["exp_lut"] == 400
    assert u.scale_bytes(ATT) == 3 and u.kv_row_bytes(SHAPE, ATT) == row


def test_attention_context_zero_attends_itself():
    w = u.attention_decode(SHAPE, 0, ATT, UNITS)
    assert w.read_bytes == 0 and w.actions["qk_mac"] == 4 * 16


def test_attention_grows_linearly_with_context():
    c = [u.attention_decode(SHAPE, n, ATT, UNITS) for n in (64, 128, 256)]
    assert c[2].read_bytes == 4 * c[0].read_bytes
    assert c[0].cycles < c[1].cycles < c[2].cycles


def test_prefill_attention_by_hand():
    w = u.attention_prefill(SHAPE, 10, 4, ATT, UNITS)
    assert w.actions["qk_mac"] == 4 * 55 * 16                # causal pairs P(P+1)/2
    row = u.kv_row_bytes(SHAPE, ATT)
    assert w.read_bytes == row * (4 + 8 + 10) and w.write_bytes == row * 10 and w.write_batches == 3


def test_vector_unit_by_hand():
    ops = dict((n, (c, a)) for n, c, a in u.vector_ops(SHAPE, UNITS))
    c, a = ops["rmsnorm (attention input)"]
    assert c == 3 * (64 // 8 + 4) + 6 and a == {"vec_mul": 192, "vec_add": 128, "vec_lut": 1}
    c, a = ops["silu * up"]
    assert c == 96 // 8 + 4 + 2 and a["vec_lut"] == 96
    total = u.vector_layer(SHAPE, UNITS)
    assert total.cycles == sum(c for c, _ in ops.values())
    q = [n for n, _, _ in u.vector_ops({**SHAPE, "model_type": "qwen2"}, UNITS)]
    assert "rescale q, k, v + bias" in q


def test_lm_head_int8_by_hand():
    w = u.lm_head_int8(SHAPE, ATT, UNITS)
    assert w.cycles == 100 * 64 // 16
    assert w.read_bytes == 100 * 64 + 100 * 3 and w.write_bytes == 400


def test_units_for_array_and_validation():
    a = u.UnitsConfig.for_array(16)
    assert (a.attn_lanes, a.exp_units, a.vec_lanes) == (256, 8, 32)
    with pytest.raises(TritforgeError, match="attn_lanes"):
        u.UnitsConfig(attn_lanes=0)


def test_context_limit():
    assert u.check_context(SHAPE, 256, ATT) == 256
    with pytest.raises(TritforgeError, match="longer than the model's maximum"):
        u.check_context(SHAPE, 257, ATT)
    with pytest.raises(TritforgeError, match="expected an integer"):
        u.check_context(SHAPE, -1, ATT)
