"""The packed file: exact round trip, sizes, and every way a file can be bad."""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from tritforge.codec import layout, packfile
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import quantize_matrix


@pytest.fixture
def tensors():
    rng = np.random.default_rng(0)
    return {f"layers.{d}.proj": quantize_matrix(rng.standard_normal((24, 96)).astype(np.float32), d)
            for d in layout.DEPTHS}


def test_round_trip_is_exact(tmp_path, tensors):
    path = str(tmp_path / "m.trit.safetensors")
    infos = packfile.write_packed(path, tensors, {"source": "test"})
    back, meta = packfile.read_packed(path)
    assert meta == {"source": "test"}
    for name, t in tensors.items():
        b = back[name]
        assert np.array_equal(b.q, t.q) and np.array_equal(b.k, t.k)
        assert b.codebook == t.codebook and b.shape == t.shape and b.depth == t.depth
        assert np.array_equal(b.dequantize(), t.dequantize())
    for i in infos:
        assert i.physical_bpw / i.info_bpw - 1 < 0.015
    assert [i.bytes for i in packfile.read_info(path)[0]] == [i.bytes for i in infos]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_truncated_file(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    packfile.write_packed(str(path), tensors)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(TritforgeError, match=str(path)):
        packfile.read_packed(str(path))


def test_invalid_trit_byte(tmp_path, tensors):
    path = str(tmp_path / "m.safetensors")
    packfile.write_packed(path, tensors)
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    arrays["layers.2.proj.trits"][5] = 250
    save_file(arrays, path, metadata=meta)
    with pytest.raises(TritforgeError, match="layers.2.proj: SHA-256 mismatch of its trits"):
        packfile.read_packed(path)
    entries = json.loads(meta["tensors"])            # a consistent checksum: the byte check
    entries["layers.2.proj"]["sha256"]["trits"] = packfile.sha256(arrays["layers.2.proj.trits"])
    save_file(arrays, path, metadata={**meta, "tensors": json.dumps(entries)})
    with pytest.raises(TritforgeError, match="byte 250 at offset 5"):
        packfile.read_packed(path)


def test_checksums_and_provenance(tmp_path, tensors):
    """Every tensor's SHA-256 is in the metadata; the source is never an absolute path."""
    path = str(tmp_path / "m.safetensors")
    packfile.write_packed(path, tensors, {"source": "model.gguf", "source_sha256": "ab" * 32})
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        entries = json.loads(f.metadata()["tensors"])
        for name, e in entries.items():
            assert e["sha256"]["trits"] == packfile.sha256(f.get_tensor(f"{name}.trits"))
            assert e["sha256"]["codebook"] == packfile.sha256(f.get_tensor(f"{name}.codebook"))
    with pytest.raises(TritforgeError, match="absolute path"):
        packfile.write_packed(str(tmp_path / "n.safetensors"), tensors, {"source": str(tmp_path)})


def test_information_bpw_counts_padding_like_physical(tmp_path):
    """88 columns pad to 96: both figures are over the 88 real columns, padding included."""
    import math
    t = quantize_matrix(np.random.default_rng(1).standard_normal((10, 88)).astype(np.float32), 2)
    i = packfile.info("m", t)
    assert i.info_bpw == pytest.approx(10 * 6 * 35 * math.log2(3) / 880)
    assert i.physical_bpw == pytest.approx(layout.packed_bytes(10 * 6 * 35) * 8 / 880)
    assert i.physical_bpw / i.info_bpw - 1 < 0.015


@pytest.mark.parametrize("field,value,match", [
    ("format", "gguf", "format"),
    ("format_version", "99", "version"),
    ("tensors", "{broken", "metadata tensors: not valid JSON"),
])
def test_bad_metadata(tmp_path, tensors, field, value, match):
    path = str(tmp_path / "m.safetensors")
    packfile.write_packed(path, tensors)
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    meta[field] = value
    save_file(arrays, path, metadata=meta)
    with pytest.raises(TritforgeError, match=match):
        packfile.read_packed(path)


def test_codebook_mismatch_is_detected(tmp_path, tensors):
    path = str(tmp_path / "m.safetensors")
    packfile.write_packed(path, tensors)
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    entries = json.loads(meta["tensors"])
    entries["layers.1.proj"]["codebook"]["lo"] = float(1e-3).hex()
    meta["tensors"] = json.dumps(entries)
    save_file(arrays, path, metadata=meta)
    with pytest.raises(TritforgeError, match="codebook words"):
        packfile.read_packed(path)


def test_missing_and_not_safetensors(tmp_path):
    with pytest.raises(TritforgeError, match="no such packed file"):
        packfile.read_packed(str(tmp_path / "nope"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 5)
    with pytest.raises(TritforgeError, match="not a readable safetensors"):
        packfile.read_packed(str(junk))
    with pytest.raises(TritforgeError, match="nothing to write"):
        packfile.write_packed(str(tmp_path / "e"), {})
