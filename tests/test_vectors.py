"""Shared test-vector sets (codec/vectors.py): written once, read back exactly, checked on read."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tritforge.codec import golden, layout, vectors
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim import fastmodel


def _set(tmp_path, d=2, rows=3, T=2, name="set"):
    cfg = HwConfig(depth=d, rows=rows, vectors=T, max_in_features=256, max_out_features=64)
    cases = []
    for cname, t, x in vectors.directed_cases(d, 7, 40, T, seed=1):
        cases.append(vectors.make_case(cname, t, x, cfg.to_dict(),
                                       fastmodel.run_matrix(cfg, t, x).cycles, {"bp": 0.5}))
    rng = np.random.default_rng(2)
    for i in range(3):
        t, x = vectors.random_case(rng, d, 5 + i, 17 + 13 * i, 1 + i)
        cases.append(vectors.make_case(f"rand{i}", t, x, cfg.to_dict()))
    return cfg, cases, vectors.write_set(str(tmp_path / name), cases, meta={"seed": 2})


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_roundtrip(tmp_path, d):
    cfg, cases, path = _set(tmp_path, d=d)
    s = vectors.read_set(path)
    assert s.meta == {"seed": 2} and len(s) == len(cases)
    for a, b in zip(cases, s):
        assert a.name == b.name and a.hwconfig == b.hwconfig == cfg.to_dict()
        np.testing.assert_array_equal(a.beats, b.beats)
        np.testing.assert_array_equal(a.tensor.q, b.tensor.q)       # rebuilt from the packed beats
        np.testing.assert_array_equal(a.tensor.k, b.tensor.k)
        np.testing.assert_array_equal(a.xq, b.xq)
        np.testing.assert_array_equal(b.expected, golden.accumulators(b.tensor, b.xq))
        assert b.cycles == a.cycles and b.stalls == a.stalls
        assert b.tensor.shape == a.tensor.shape and b.tensor.codebook == a.tensor.codebook
        np.testing.assert_array_equal(b.tensor.codebook.mantissa, a.tensor.codebook.mantissa)
    c = s.case("dense")
    # the words the testbenches drive are the codec's layouts
    assert c.beat_words()[0] == int.from_bytes(c.beats[0, 0].tobytes(), "little")
    assert len(c.act_words()) == c.xq.shape[0] * c.groups
    assert layout.unpack_activation_group(c.act_words()[1]).tolist() == c.xq[0, 16:32].tolist()
    assert c.codebook_words()[26] == (26, int(c.tensor.codebook.mantissa[26]),
                                      int(c.tensor.codebook.left_shift[26]))


def test_cycle_model_reads_the_same_files(tmp_path):
    cfg, _, path = _set(tmp_path)
    for c in vectors.read_set(path):
        run = fastmodel.run_stream(cfg, c.beats, c.tensor.codebook.mantissa,
                                   c.tensor.codebook.left_shift, c.xq, c.out_features)
        np.testing.assert_array_equal(run.acc, c.expected)
        if c.cycles is not None:
            assert run.cycles == c.cycles


def test_directed_cases_are_what_they_say():
    d, L = 3, 13
    cases = {n: (t, x) for n, t, x in vectors.directed_cases(d, 6, 40, 2)}
    assert set(cases) == {"all_zero", "trits_plus", "trits_minus", "max_pos", "max_neg",
                          "alternating", "sparse", "dense"}
    assert not cases["all_zero"][0].q.any()
    assert (layout.to_trits(cases["trits_plus"][0].q[:, :40], d) == 1).all()
    assert (layout.to_trits(cases["trits_minus"][0].q[:, :40], d) == -1).all()
    assert not cases["trits_plus"][0].q[:, 40:].any()            # padding stays zero
    assert (cases["dense"][0].q[:, :40] != 0).all()
    assert (cases["sparse"][0].q != 0).mean() < 0.2
    # the extreme case reaches the largest term: 16 * L * 128 * m * 2**delta per group, with
    # the int8 minimum x = -128 on every lane
    t, x = cases["max_pos"]
    cb = t.codebook
    top = int(cb.mantissa[26]) << int(cb.left_shift[26])
    assert top == max(int(m) << int(s) for m, s in zip(cb.mantissa, cb.left_shift))
    assert cb.left_shift[26] == 15
    acc = golden.accumulators(t, x)
    assert (x[:, :40] == -128).all() and (acc == 40 * L * 128 * top).all()  # 40 real columns
    assert (golden.accumulators(*cases["max_neg"]) == -acc).all()
    w = golden.widths(d, t.in_padded, cb.mant_bits, cb.shift_limit)
    assert int(acc.max()) <= w.bound and int(acc.max()).bit_length() + 1 <= w.acc


def test_refuses_overwrite_and_replaces_atomically(tmp_path):
    _, cases, path = _set(tmp_path)
    with pytest.raises(TritforgeError, match="already exists"):
        vectors.write_set(path, cases)
    vectors.write_set(path, cases[:2], overwrite=True)
    assert len(vectors.read_set(path)) == 2
    assert sorted(os.listdir(tmp_path)) == ["set"]              # no temp dirs left behind


def test_failed_write_leaves_nothing(tmp_path):
    _, cases, _ = _set(tmp_path)
    bad = cases[:1] + cases[:1]
    with pytest.raises(TritforgeError, match="duplicate"):
        vectors.write_set(str(tmp_path / "other"), bad)
    assert sorted(os.listdir(tmp_path)) == ["set"]


def test_read_checks(tmp_path):
    _, cases, path = _set(tmp_path)
    s = vectors.read_set(path, names=["dense", "rand1"])
    assert [c.name for c in s] == ["dense", "rand1"]
    with pytest.raises(TritforgeError, match="no cases"):
        vectors.read_set(path, names=["nope"])
    with pytest.raises(TritforgeError, match="no case"):
        s.case("nope")
    # a flipped byte in a blob is caught by its hash
    blob = os.path.join(path, "dense.beats.bin")
    data = bytearray(open(blob, "rb").read())
    data[0] ^= 1
    open(blob, "wb").write(bytes(data))
    with pytest.raises(TritforgeError, match="SHA-256"):
        vectors.read_set(path)
    # wrong format / version / broken JSON / missing dir
    meta = os.path.join(path, "meta.json")
    doc = json.load(open(meta))
    json.dump({**doc, "version": 99}, open(meta, "w"))
    with pytest.raises(TritforgeError, match="version 99"):
        vectors.read_set(path)
    json.dump({**doc, "format": "x"}, open(meta, "w"))
    with pytest.raises(TritforgeError, match="format"):
        vectors.read_set(path)
    open(meta, "w").write("{")
    with pytest.raises(TritforgeError, match="not valid JSON"):
        vectors.read_set(path)
    with pytest.raises(TritforgeError, match="cannot read"):
        vectors.read_set(str(tmp_path / "missing"))


def test_codebook_words_must_match(tmp_path):
    _, _, path = _set(tmp_path)
    meta = os.path.join(path, "meta.json")
    doc = json.load(open(meta))
    doc["cases"][0]["codebook_words"][3][1] += 1
    json.dump(doc, open(meta, "w"))
    with pytest.raises(TritforgeError, match="codebook words"):
        vectors.read_set(path)


def test_case_validation():
    t, x = vectors.random_case(np.random.default_rng(0), 2, 3, 16, 1)
    with pytest.raises(TritforgeError, match="name"):
        vectors.make_case("bad name/", t, x, {"rows": 4, "depth": 2})
    with pytest.raises(TritforgeError, match="depth"):
        vectors.make_case("a", t, x, {"rows": 4, "depth": 3})
    with pytest.raises(TritforgeError, match="rows"):
        vectors.make_case("a", t, x, {"depth": 2})
    with pytest.raises(TritforgeError, match="activations"):
        vectors.VectorCase("a", t, np.zeros((1, 32), np.int8), np.zeros((1, 3), np.int64), {"rows": 4})
