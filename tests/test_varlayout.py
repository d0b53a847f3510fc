"""The variable-depth hardware stream (codec.layout): columns of R groups, round trip and refusals."""
import numpy as np
import pytest

from tritforge.codec import layout
from tritforge.errors import TritforgeError


def random_var(rng, out, ng, base):
    gd = rng.choice(layout.var_depths(base), size=(out, ng)).astype(np.uint8)
    k = rng.integers(0, 27, (out, ng)).astype(np.uint8)
    k[gd == 0] = 0
    lim = np.array([layout.max_level(int(d)) if d else 0 for d in gd.reshape(-1)]).reshape(out, ng)
    lev = np.clip(rng.integers(-40, 41, (out, ng, 16)), -lim[..., None], lim[..., None])
    q = (lev * 3 ** (base - gd.astype(np.int64))[..., None]).reshape(out, ng * 16).astype(np.int8)
    return q, k, gd


@pytest.mark.parametrize("base", layout.DEPTHS)
@pytest.mark.parametrize("rows", [1, 4, 5, 16])
def test_round_trip_and_column_lengths(base, rows):
    rng = np.random.default_rng(base * 100 + rows)
    q, k, gd = random_var(rng, 11, 5, base)
    data, starts = layout.var_stream_columns(q, k, gd, base, rows)
    tiles = -(-11 // rows)
    assert starts.size == tiles * 5 + 1 and starts[-1] == data.size
    # every column's length follows from its depths
    dt = layout.var_tile_depths(gd, base, rows).reshape(-1, rows)
    assert np.array_equal(np.diff(starts), layout.var_column_bytes(dt))
    q2, k2, g2 = layout.unpack_var_stream(data, 11, 80, base, rows)
    assert np.array_equal(q2, q) and np.array_equal(k2, k) and np.array_equal(g2, gd)


def test_bytes_fall_with_the_depth():
    rng = np.random.default_rng(0)
    q, k, gd = random_var(rng, 16, 8, 3)
    full = layout.var_stream_columns(q * 0, k, np.full_like(gd, 3), 3, 16)[0].size
    half = layout.var_stream_columns(q, k, gd, 3, 16)[0].size
    assert half < full
    assert full == 8 * -(-(4 * 16 + 16 * 3 * 16) // 5)


def _stream(base=2, rows=4):
    rng = np.random.default_rng(5)
    q, k, gd = random_var(rng, 8, 3, base)
    gd[0, 0] = base                        # column 0 row 0 has planes
    q[0, :16] = 1 * 3 ** 0
    data, starts = layout.var_stream_columns(q, k, gd, base, rows)
    return data, starts


def test_refusals_are_one_line():
    data, starts = _stream()
    with pytest.raises(TritforgeError, match=r"column 5 \(tile 1, group column 2\) runs past the end") as e:
        layout.unpack_var_stream(data[:-1], 8, 48, 2, 4)
    assert "\n" not in str(e.value)
    with pytest.raises(TritforgeError, match="bytes left after the last column"):
        layout.unpack_var_stream(np.concatenate([data, [121]]).astype(np.uint8), 8, 48, 2, 4)
    bad = data.copy()
    bad[int(starts[2]) + 2] = 250
    with pytest.raises(TritforgeError, match="column 2 .* holds a byte >= 243"):
        layout.unpack_var_stream(bad, 8, 48, 2, 4)


def test_depth_zero_with_an_index_and_depth_below_zero_are_refused():
    # base 2, column 0: make row 1 depth 0 (f = -1) with a non-zero index
    q = np.zeros((4, 16), np.int8)
    k = np.zeros((4, 1), np.uint8)
    gd = np.zeros((4, 1), np.uint8)
    data, _ = layout.var_stream_columns(q, k, gd, 2, 4)
    t = layout.unpack_trits(data, data.size * 5)
    t = t.copy()
    t[4 + 1] = 1                           # row 1's index trit s0: index 0 becomes 2
    bad = layout.pack_trits(t)
    with pytest.raises(TritforgeError, match="row 1 has depth 0 and codebook index 2"):
        layout.unpack_var_stream(bad, 4, 16, 2, 4)
    # base 1: f = -1 is depth -1
    data1, _ = layout.var_stream_columns(q, k, np.ones_like(gd), 1, 4)
    t = layout.unpack_trits(data1, data1.size * 5).copy()
    t[8] = -1                              # row 2's depth trit
    with pytest.raises(TritforgeError, match="row 2 has depth -1; expected one of"):
        layout.unpack_var_stream(layout.pack_trits(t)[:data1.size], 4, 16, 1, 4)


def test_scan_flags_what_the_engine_flags():
    data, starts = _stream()
    bad = data.copy()
    bad[int(starts[4])] = 243
    s = layout.scan_var_columns(bad, 6, 2, 4)
    # the invalid byte reads as zero trits (row 0's depth field 0: depth D-1), so the columns
    # after it may be misread too; err is set from the first bad column on
    assert s["bad"][:5].tolist() == [False, False, False, False, True]
    assert not layout.scan_var_columns(data, 6, 2, 4)["bad"].any()
