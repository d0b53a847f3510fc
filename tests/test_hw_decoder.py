"""Trit decoder (hw/decoder.py) in Amaranth's simulator: every byte value at every byte
position of a beat, both styles, random valid/ready stalls, against codec.layout."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.codec import layout
from tritforge.errors import TritforgeError
from tritforge.hw.decoder import TritDecoder
from tritforge.hw.simdriver import run_stream
from tritforge.hwconfig import HwConfig


def exhaustive_beats(cfg: HwConfig) -> list[bytes]:
    """256 beats; byte position b of beat n holds (n + 37 b) mod 256: every position sees
    every value, invalid ones (243..255) included."""
    return [bytes((n + 37 * b) % 256 for b in range(cfg.beat_bytes)) for n in range(256)]


def expected(cfg: HwConfig, beat: bytes):
    """(trits [r][plane][lane], k [r], err) as codec.layout defines them; invalid bytes -> 0 trits."""
    clean = np.array([b if b < layout.BYTE_LIMIT else layout.ZERO_BYTE for b in beat], dtype=np.uint8)
    q, k = layout.decode_beat(clean, cfg.depth, cfg.rows)
    t = layout.to_trits(q, cfg.depth)                          # (R, 16, d)
    return t.transpose(0, 2, 1).tolist(), k.tolist(), any(b >= layout.BYTE_LIMIT for b in beat)


def decode_outputs(dec: TritDecoder, words):
    out = []
    for w in words:
        c = dec.out_layout.from_bits(w)
        planes = [[[int(c["planes"][r][i][j]) for j in range(16)] for i in range(dec.cfg.depth)]
                  for r in range(dec.cfg.rows)]
        out.append((planes, [int(c["k"][r]) for r in range(dec.cfg.rows)], bool(c["err"]),
                    int(c["tag"])))
    return out


CASES = [(1, 1, "arith"), (2, 4, "arith"), (3, 1, "arith"), (4, 2, "arith"),
         (1, 4, "rom"), (2, 4, "rom"), (4, 1, "rom"), (1, 1, "nibble"), (2, 4, "nibble"), (3, 2, "nibble")]


@pytest.mark.parametrize("depth,rows,style", CASES, ids=[f"d{d}-R{r}-{s}" for d, r, s in CASES])
def test_every_byte_value_every_position(depth, rows, style):
    cfg = HwConfig(depth=depth, rows=rows)
    dec = TritDecoder(cfg, style=style, tag_shape=8)
    beats = exhaustive_beats(cfg)
    items = [dec.in_layout.const({"beat": int.from_bytes(b, "little"), "tag": n}).as_value().value
             for n, b in enumerate(beats)]
    got = decode_outputs(dec, run_stream(dec, items, seed=depth * 10 + rows, p_valid=0.7, p_ready=0.6))
    assert len(got) == len(beats)
    for n, (beat, (planes, k, err, tag)) in enumerate(zip(beats, got)):
        exp_planes, exp_k, exp_err = expected(cfg, beat)
        assert tag == n % 256
        assert (planes, k, err) == (exp_planes, exp_k, exp_err), f"beat {n}: {beat.hex()}"


def test_directed_groups_round_trip():
    """Beats made by codec.layout.stream_beats decode to their q digits and k exactly."""
    cfg = HwConfig(depth=3, rows=4)
    L = cfg.level
    q = np.array([[0] * 16, [1] * 16, [-1] * 16, [L, -L] * 8,
                  [L] * 16, [-L] * 16, [0, 0, 0, 5] * 4, list(range(-8, 8))], dtype=np.int8)
    k = np.array([[0], [26], [13], [1], [25], [7], [19], [3]], dtype=np.uint8)
    beats = layout.stream_beats(q, k, cfg.depth, cfg.rows).reshape(-1, cfg.beat_bytes)
    dec = TritDecoder(cfg)
    items = [int.from_bytes(bytes(b), "little") for b in beats]
    got = decode_outputs(dec, run_stream(dec, items, seed=5, p_valid=0.5, p_ready=0.5))
    for t, (planes, kk, err, _) in enumerate(got):
        assert not err
        assert kk == k[4 * t:4 * t + 4, 0].tolist()
        digits = np.array(planes).transpose(0, 2, 1)           # (R, 16, d)
        assert layout.from_trits(digits).tolist() == q[4 * t:4 * t + 4].tolist()


def test_rejects_bad_parameters(recwarn):
    with pytest.raises(TritforgeError, match="style"):
        TritDecoder(HwConfig(), style="lut")
    with pytest.raises(TypeError, match="HwConfig"):
        TritDecoder({"depth": 2})
    assert not [w for w in recwarn if "never used" in str(w.message)]   # refused before construction
