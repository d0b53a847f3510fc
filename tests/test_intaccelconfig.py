"""tritforge.accelconfig: validation with one-line errors naming the field, JSON round trip."""
import json

import pytest

from tritforge.accelconfig import AccelConfig, AttentionConfig, VectorConfig
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig


@pytest.mark.parametrize("cls,kwargs,match", [
    (AttentionConfig, {"max_head_dim": 7}, "max_head_dim"),
    (AttentionConfig, {"max_context": 0}, "max_context"),
    (AttentionConfig, {"kv_format": "fp8"}, "kv_format"),
    (AttentionConfig, {"exp_method": "taylor"}, "exp_method"),
    (AttentionConfig, {"exp_lut_bits": 13}, "exp_lut_bits"),
    (AttentionConfig, {"block": True}, "block"),
    (VectorConfig, {"resid_frac_bits": 31}, "resid_frac_bits"),
    (VectorConfig, {"rsqrt_lut_bits": 1}, "rsqrt_lut_bits"),
    (VectorConfig, {"silu_method": "poly"}, "silu_method"),
    (VectorConfig, {"scale_bits": 16.0}, "scale_bits"),
    (AccelConfig, {"lm_head": "fp32"}, "lm_head"),
    (AccelConfig, {"engine": {"depth": 2}}, "engine"),
])
def test_invalid_fields_name_the_field(cls, kwargs, match):
    with pytest.raises(TritforgeError, match=match) as exc:
        cls(**kwargs)
    assert "\n" not in str(exc.value)


def test_round_trip_and_unknown_keys(tmp_path):
    c = AccelConfig(engine=HwConfig(depth=3, rows=8), attention=AttentionConfig(block=32, exp_method="poly2"),
                    vector=VectorConfig(resid_frac_bits=12), lm_head="ternary")
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"accelconfig": c.to_dict()}))
    assert AccelConfig.from_json(str(p)) == c
    assert AccelConfig.from_dict({}) == AccelConfig()
    for bad, key in (({"lanes": 1}, "lanes"), ({"attention": {"blocks": 2}}, "blocks"),
                     ({"vector": {"x": 1}}, "vector.x: unknown field"), ({"engine": {"lane": 1}}, "lane")):
        with pytest.raises(TritforgeError, match=key):
            AccelConfig.from_dict(bad)
