"""codec.introtary: integer RoPE against the float rotation, extreme inputs."""
import numpy as np
import pytest

from tritforge.codec import introtary
from tritforge.errors import TritforgeError

RF = 14


def test_rope_matches_float_rotation():
    rng = np.random.default_rng(0)
    hd, T = 64, 40
    inv = 1.0 / (100000 ** (np.arange(0, hd, 2) / hd))
    pos = np.arange(1000, 1000 + T)
    x = rng.normal(size=(T, 3, hd)) * 20
    xi = np.rint(x * 2 ** 14).astype(np.int64)
    c, s = introtary.rope_tables(pos, inv, RF, 1.0, 8192)
    got = introtary.apply_rope(xi, c, s, RF, 31) / 2 ** 14
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    xr = xi / 2 ** 14
    a, b = xr[..., :hd // 2], xr[..., hd // 2:]
    ref = np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)
    assert np.abs(got - ref).max() <= np.abs(xr).max() * 2 * 2.0 ** -RF + 2 ** -14


def test_rope_extreme_inputs():
    top = 2 ** 31 - 1
    x = np.full((1, 1, 4), top, np.int64)
    x[..., 2:] = -top
    c, s = introtary.rope_tables([0, 1], [np.pi / 4, 0.0], RF)
    out = introtary.apply_rope(x, c[1:], s[1:], RF, 31)           # 45 degrees: |x| · sqrt(2)
    assert np.abs(out).max() > 2 ** 31                            # grows by up to sqrt(2) ...
    assert np.abs(out).max() < 2 ** 32                            # ... within x_bits + 1
    with pytest.raises(AssertionError, match="RoPE input"):
        introtary.apply_rope(x + 1, c[1:], s[1:], RF, 31)


def test_table_limits():
    with pytest.raises(TritforgeError, match="max_context=16"):
        introtary.rope_tables([16], [1.0], RF, 1.0, 16)
    with pytest.raises(TritforgeError, match="head_dim"):
        introtary.apply_rope(np.zeros((1, 1, 6), np.int64), np.zeros((1, 2), np.int64),
                             np.zeros((1, 2), np.int64), RF, 31)
