"""HwConfig: validation with clear errors, derived values, JSON round trip."""
import json

import pytest

from tritforge.codec import layout
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig


@pytest.mark.parametrize("kwargs,match", [
    ({"depth": 5}, "depth"),
    ({"rows": 0}, "rows"),
    ({"rows": 2.5}, "rows"),
    ({"vectors": 0}, "vectors"),
    ({"group": 32}, "group"),
    ({"act_bits": 4}, "act_bits"),
    ({"mant_bits": 10}, "mant_bits"),
    ({"max_in_features": 100}, "multiple of 16"),
    ({"clock_mhz": -1}, "clock_mhz"),
])
def test_invalid_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(TritforgeError, match=match):
        HwConfig(**kwargs)


@pytest.mark.parametrize("d", layout.DEPTHS)
@pytest.mark.parametrize("rows", [1, 4, 16])
def test_derived_values(d, rows):
    c = HwConfig(depth=d, rows=rows)
    assert c.beat_bytes * 5 >= rows * (16 * d + 3) > (c.beat_bytes - 1) * 5
    assert c.macs_per_cycle == 16 * rows
    assert c.widths.acc <= 63 and c.widths.dot < c.widths.product < c.widths.acc
    if d == 2:
        assert c.beat_bytes == 7 * rows


def test_json_round_trip_and_errors(tmp_path):
    c = HwConfig(depth=3, rows=16, vectors=4, clock_mhz=150.0)
    p = tmp_path / "hw.json"
    p.write_text(json.dumps({"hwconfig": c.to_dict()}))
    assert HwConfig.from_json(str(p)) == c
    p.write_text(json.dumps({"depth": 2, "lanes": 3}))
    with pytest.raises(TritforgeError, match="hw.json: lanes: unknown field"):
        HwConfig.from_json(str(p))
    p.write_text("{")
    with pytest.raises(TritforgeError, match="not valid JSON"):
        HwConfig.from_json(str(p))
    with pytest.raises(TritforgeError, match="cannot read"):
        HwConfig.from_json(str(tmp_path / "missing.json"))


def test_shape_check():
    c = HwConfig(max_in_features=1024)
    c.check_shape(10, 1024)
    with pytest.raises(TritforgeError, match="in_features=1040"):
        c.check_shape(10, 1040, "layer")


def test_slices_of_wide_engines():
    """Engines of more than SLICE_ROWS rows are lockstep slices (hw/ENGINE.md, "Slices")."""
    assert HwConfig(rows=4).slices == ((0, 4),)
    assert HwConfig(rows=16).slices == ((0, 4), (4, 4), (8, 4), (12, 4))
    wide = HwConfig(depth=4, rows=5, max_out_features=100)
    assert wide.slices == ((0, 4), (4, 1))
    for _, rows in wide.slices:
        part = wide.slice_config(rows)
        assert part.rows == rows and part.tiles_max == wide.tiles_max == 20
        assert (part.depth, part.vectors, part.widths) == (wide.depth, wide.vectors, wide.widths)
    # err_latency follows the widest slice's bytes: at R = 16, 28 bytes (not 112)
    assert HwConfig(rows=16).err_latency == HwConfig(rows=4).err_latency == 6
    assert HwConfig(rows=1).err_latency == 5
