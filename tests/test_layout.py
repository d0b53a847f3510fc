"""Bit layouts: trits <-> bytes, numbers <-> trits, groups, file and hardware streams."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tritforge.codec import layout
from tritforge.errors import TritforgeError


def test_every_byte_value_decodes_to_its_base243_digits():
    for b in range(layout.BYTE_LIMIT):
        trits = layout.byte_trits(b)
        assert sum((t + 1) * 3 ** m for m, t in enumerate(trits)) == b
        assert layout.pack_trits(np.array(trits)).tolist() == [b]
    for b in range(layout.BYTE_LIMIT, 256):
        with pytest.raises(TritforgeError, match="not a trit byte"):
            layout.unpack_trits(np.array([b], np.uint8), 5)


@given(hnp.arrays(np.int8, st.integers(0, 300), elements=st.integers(-1, 1)))
def test_trit_pack_round_trip(trits):
    packed = layout.pack_trits(trits)
    assert packed.size == -(-trits.size // 5)
    assert (packed < 243).all()
    assert np.array_equal(layout.unpack_trits(packed, trits.size), trits)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_balanced_digits_cover_the_range(n):
    lim = (3 ** n - 1) // 2
    v = np.arange(-lim, lim + 1)
    t = layout.to_trits(v, n)
    assert set(np.unique(t)) <= {-1, 0, 1}
    assert np.array_equal(layout.from_trits(t), v)
    with pytest.raises(TritforgeError):
        layout.to_trits(np.array([lim + 1]), n)


def test_short_or_long_streams_are_refused():
    with pytest.raises(TritforgeError, match="expected 2"):
        layout.unpack_trits(np.zeros(1, np.uint8), 7)
    with pytest.raises(TritforgeError, match="expected 2"):
        layout.unpack_trits(np.zeros(3, np.uint8), 7)


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_physical_bpw_within_1_5_percent_of_information(d):
    rows, cols = 64, 576
    n_trits = rows * cols // 16 * layout.group_trits(d)
    physical = layout.packed_bytes(n_trits) * 8 / (rows * cols)
    assert physical / layout.info_bpw(d) - 1 < 0.015
    if d == 2:
        assert physical == 3.5 and round(layout.info_bpw(2), 2) == 3.47


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(layout.DEPTHS), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_matrix_and_hardware_streams_round_trip(d, rows, ng, seed):
    rng = np.random.default_rng(seed)
    L = layout.max_level(d)
    q = rng.integers(-L, L + 1, size=(rows, ng * 16)).astype(np.int8)
    k = rng.integers(0, 27, size=(rows, ng)).astype(np.uint8)
    q2, k2 = layout.unpack_matrix(layout.pack_matrix(q, k, d), rows, ng * 16, d)
    assert np.array_equal(q, q2) and np.array_equal(k, k2)
    for R in (1, 4, 5):
        beats = layout.stream_beats(q, k, d, R)
        tiles = -(-rows // R)
        assert beats.shape == (tiles, ng, layout.beat_bytes(d, R))
        qs, ks = layout.decode_stream(beats, d, R)         # (tiles, ng, R, 16)
        qs = qs.transpose(0, 2, 1, 3).reshape(tiles * R, ng * 16)
        ks = ks.transpose(0, 2, 1).reshape(tiles * R, ng)
        assert np.array_equal(qs[:rows], q) and np.array_equal(ks[:rows], k)
        assert not qs[rows:].any() and not ks[rows:].any()  # padding rows: zero groups
        qb, kb = layout.decode_beat(beats[0, 0], d, R)
        assert np.array_equal(qb, qs.reshape(tiles, R, ng, 16)[0, :, 0])


@pytest.mark.parametrize("d", layout.DEPTHS)
def test_beat_windows_hold_their_rows(d):
    """An engine slice's window of a beat (the engine's slices, hw/ENGINE.md) decodes to
    exactly its rows: its bytes, from the trit offset on."""
    rng = np.random.default_rng(d)
    R = 9
    L = layout.max_level(d)
    q = rng.integers(-L, L + 1, size=(R, 16)).astype(np.int8)
    k = rng.integers(0, 27, size=(R, 1)).astype(np.uint8)
    beat = layout.stream_beats(q, k, d, R)[0, 0]
    gt = layout.group_trits(d)
    covered = set()
    for first, rows in ((0, 4), (4, 4), (8, 1)):
        byte0, nbytes, offset = layout.beat_window(d, first, rows)
        assert 0 <= offset < layout.TRITS_PER_BYTE and byte0 + nbytes <= len(beat)
        trits = layout.unpack_trits(beat[byte0:byte0 + nbytes], nbytes * layout.TRITS_PER_BYTE)
        qw, kw = layout.decode_groups(trits[offset:offset + rows * gt].reshape(rows, gt), d)
        assert np.array_equal(qw, q[first:first + rows]) and np.array_equal(kw, k[first:first + rows, 0])
        covered |= set(range(byte0, byte0 + nbytes))
    assert covered == set(range(len(beat)))
    # a group of 35 trits is 7 bytes: at d = 2 windows of 4 rows start on a byte
    assert layout.beat_window(2, 4, 4) == (28, 28, 0)
    assert layout.beat_window(1, 4, 2) == (15, 8, 1)       # rows 4, 5 at trits 76..113


def test_group_trit_order_is_scale_then_weights_lsd_first():
    q = np.zeros(16, np.int8)
    q[0], q[15] = 1, -3
    t = layout.encode_groups(q, np.array(13 + 2), d=2)
    assert t.tolist()[:3] == [-1, 1, 0]          # 2 = -1 + 3
    assert t.tolist()[3:5] == [1, 0]             # w0 = 1
    assert t.tolist()[-2:] == [0, -1]            # w15 = -3


def test_activation_and_codebook_words():
    x = np.arange(-8, 8, dtype=np.int8) * 15
    assert np.array_equal(layout.unpack_activation_group(layout.pack_activation_group(x)), x)
    w = layout.codebook_word(4095, 15, 12)
    assert layout.split_codebook_word(w, 12) == (4095, 15)
