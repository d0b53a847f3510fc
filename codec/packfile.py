"""The packed trit file: quantized matrices in a versioned safetensors container.

Layout of one file (format ``tritforge-packed``, version 2):

* tensor ``<name>.trits``  uint8: the matrix's file stream (``layout.pack_matrix``: groups
  in row-major order, 16*d + 3 trits each, five trits per byte, the last byte padded with
  the trit 0);
* tensor ``<name>.codebook`` uint16 (27,): the codebook words the hardware loads
  (``layout.codebook_word``: mantissa | left shift << F), a check on the metadata;
* metadata ``format``, ``format_version``, ``tensors`` (JSON: per matrix depth, group,
  shape, in_padded, pad, mode, the codebook endpoints as exact hex floats and the SHA-256
  of the raw bytes of its two tensors) and ``model`` (JSON supplied by the writer: source
  by file name and content hash, architecture, ...).

The per-matrix helpers (:func:`matrix_arrays`, :func:`matrix_entry`, :func:`decode_matrix`)
are shared with the packed model folder (``codec.packedmodel``), which stores the same
tensors under module names next to the model's floating-point tensors.

Writes are atomic (staged with the command's other outputs, ``tritforge.atomic``). Reading
checks the format name and version, the metadata against its document
(``tritforge.documents.packfile``: every entry and the model note, within the JSON
limits), every tensor against its role (dtype, shape, bytes), every checksum, every trit
byte (< 243) and the codebook words, and raises ``TritforgeError`` naming the file and
what was wrong.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from . import layout
from ..atomic import atomic_file
from .codebook import Codebook
from ..documents.limits import parse_json
from ..documents.packfile import ModelNote, PackedEntry
from ..documents.validation import validate
from ..errors import TritforgeError
from .quantize import TritTensor

FORMAT = "tritforge-packed"
VERSION = 2
#: Key of the ``model`` metadata where ``tritforge quantize`` records, per matrix,
#: ``[sum err^2, sum w^2]`` against its source (so ``inspect`` can show MSE/SQNR without it).
RECORDED_KEY = "weight_error"


@dataclass(frozen=True)
class PackedInfo:
    """Size figures of one packed matrix."""

    name: str
    shape: tuple[int, int]
    depth: int
    bytes: int

    @property
    def weights(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def info_bpw(self) -> float:
        """Information bits per weight over the unpadded shape, padding included, as the
        physical figure is: trits of the stored groups * log2(3) / weights."""
        n_trits = self.shape[0] * (-(-self.shape[1] // layout.GROUP)) * layout.group_trits(self.depth)
        return n_trits * math.log2(3) / self.weights

    @property
    def physical_bpw(self) -> float:
        return self.bytes * 8 / self.weights


def sha256(array) -> str:
    """Hex SHA-256 of an array's raw bytes (C order, native little-endian), as stored."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def codebook_words(cb: Codebook) -> np.ndarray:
    return np.array([layout.codebook_word(m, s, cb.mant_bits)
                     for m, s in zip(cb.mantissa, cb.left_shift)], dtype=np.uint16)


def info(name: str, t: TritTensor) -> PackedInfo:
    n_trits = t.q.shape[0] * t.groups * layout.group_trits(t.depth)
    return PackedInfo(name, t.shape, t.depth, layout.packed_bytes(n_trits))


def matrix_arrays(t: TritTensor) -> tuple[np.ndarray, np.ndarray]:
    """The two stored tensors of a matrix: (trit stream uint8, codebook words uint16)."""
    return layout.pack_matrix(t.q, t.k, t.depth), codebook_words(t.codebook)


def matrix_entry(t: TritTensor, trits: np.ndarray, words: np.ndarray) -> dict:
    """The metadata entry of a matrix (JSON-able), with the checksums of its tensors."""
    return {"depth": t.depth, "group": layout.GROUP, "shape": list(t.shape),
            "in_padded": t.in_padded, "pad": t.pad, "mode": t.mode,
            "codebook": t.codebook.to_meta(),
            "sha256": {"trits": sha256(trits), "codebook": sha256(words)}}


def entry_geometry(where: str, e) -> tuple[int, tuple[int, int], int, str, Codebook]:
    """Checked (depth, shape, in_padded, mode, codebook) of a metadata entry (its rules:
    ``tritforge.documents.packfile.PackedEntry``)."""
    doc = validate(PackedEntry, e, where)
    cb = Codebook.from_meta(doc.codebook.model_dump())
    return doc.depth, (doc.shape[0], doc.shape[1]), doc.in_padded, doc.mode, cb


def stream_bytes(depth: int, shape: tuple[int, int], in_padded: int) -> int:
    return layout.packed_bytes(shape[0] * (in_padded // layout.GROUP) * layout.group_trits(depth))


def check_sha(where: str, e: dict, part: str, array) -> None:
    """Compare a tensor's SHA-256 with the one its metadata entry records (an entry
    checked by ``entry_geometry``)."""
    if sha256(array) != e["sha256"][part]:
        raise TritforgeError(f"{where}: SHA-256 mismatch of its {part} (the file is corrupted)")


def decode_matrix(where: str, e: dict, stream: np.ndarray, words: np.ndarray,
                  checked: bool = False) -> TritTensor:
    """A fully checked TritTensor from a metadata entry and its two stored tensors.

    ``checked``: the caller has already compared the checksums (the packed folder checks
    every tensor's raw bytes once)."""
    depth, shape, in_padded, mode, cb = entry_geometry(where, e)
    if not checked:
        check_sha(where, e, "trits", stream)
        check_sha(where, e, "codebook", words)
    if not np.array_equal(words, codebook_words(cb)):
        raise TritforgeError(f"{where}: codebook words do not match the codebook metadata")
    q, k = layout.unpack_matrix(stream, shape[0], in_padded, depth, what=where)
    return TritTensor(q, k, cb, depth, shape, mode)


def write_packed(path: str, tensors: dict[str, TritTensor], meta: dict | None = None) -> list[PackedInfo]:
    """Write quantized matrices to ``path`` atomically; returns their size figures."""
    from safetensors.numpy import save_file

    if not tensors:
        raise TritforgeError(f"{path}: nothing to write (no quantized matrices)")
    src = (meta or {}).get("source")
    if isinstance(src, str) and os.path.isabs(src):
        raise TritforgeError(f"{path}: the model note names its source by an absolute path ({src}); "
                             "expected a file name and a content hash")
    arrays, entries, infos = {}, {}, []
    for name, t in tensors.items():
        trits, words = matrix_arrays(t)
        arrays[f"{name}.trits"], arrays[f"{name}.codebook"] = trits, words
        entries[name] = matrix_entry(t, trits, words)
        infos.append(info(name, t))
    metadata = {"format": FORMAT, "format_version": str(VERSION),
                "tensors": json.dumps(entries), "model": json.dumps(meta or {})}
    with atomic_file(path) as tmp:
        save_file(arrays, tmp, metadata=metadata)
    return infos


def parse_metadata(path: str, meta: dict, key: str, default: str | None = None):
    """The JSON of a safetensors metadata string, within the JSON limits."""
    if key not in meta and default is None:
        raise TritforgeError(f"{path}: damaged metadata (no '{key}')")
    text = meta.get(key, default)
    if not isinstance(text, str):
        raise TritforgeError(f"{path}: metadata {key}: expected a JSON string, got {type(text).__name__}")
    return parse_json(text, f"{path}: metadata {key}")


def _header(path: str):
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise TritforgeError(f"{path}: no such packed file")
    try:
        handle = safe_open(path, framework="np")
        meta = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for any corruption
        raise TritforgeError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if meta.get("format") != FORMAT:
        raise TritforgeError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != str(VERSION):
        raise TritforgeError(f"{path}: format version {meta.get('format_version')!r}, "
                             f"this tritforge reads version {VERSION}")
    entries = parse_metadata(path, meta, "tensors")
    if not isinstance(entries, dict) or not entries:
        raise TritforgeError(f"{path}: metadata tensors: expected an object of one entry per matrix")
    model = validate(ModelNote, parse_metadata(path, meta, "model", "{}"), f"{path}: metadata model")
    checked = {name: (e, entry_geometry(f"{path}: {name}", e)) for name, e in entries.items()}
    _check_roles(path, handle, checked)
    return handle, checked, model.model_dump(exclude_unset=True)


def _check_roles(path: str, handle, checked: dict) -> None:
    """Each stored tensor against its role: the trit stream U8 [bytes of the geometry], the
    codebook words U16 [27]; nothing else in the file."""
    want = {}
    for name, (_, (depth, shape, in_padded, _, _)) in checked.items():
        want[f"{name}.trits"] = ("U8", [stream_bytes(depth, shape, in_padded)])
        want[f"{name}.codebook"] = ("U16", [layout.CODEBOOK_SIZE])
    have = set(handle.keys())
    for tname in sorted(have - set(want)):
        raise TritforgeError(f"{path}: tensor {tname} belongs to no matrix of the metadata")
    for tname, (dtype, shape) in want.items():
        if tname not in have:
            raise TritforgeError(f"{path}: tensor {tname} is missing")
        sl = handle.get_slice(tname)
        got = (sl.get_dtype(), list(sl.get_shape()))
        if got != (dtype, shape):
            raise TritforgeError(f"{path}: tensor {tname} is {got[0]} {got[1]}, expected {dtype} {shape}")


def read_info(path: str) -> tuple[list[PackedInfo], dict]:
    """Size figures and model metadata without decoding the streams."""
    handle, checked, model = _header(path)
    infos = [PackedInfo(name, shape, depth, stream_bytes(depth, shape, in_padded))
             for name, (_, (depth, shape, in_padded, _, _)) in checked.items()]
    return infos, model


def read_packed(path: str) -> tuple[dict[str, TritTensor], dict]:
    """Read and fully check a packed file: (name -> TritTensor, model metadata)."""
    handle, checked, model = _header(path)
    out = {}
    for name, (e, _) in checked.items():
        where = f"{path}: {name}"
        try:
            stream = handle.get_tensor(f"{name}.trits")
            words = handle.get_tensor(f"{name}.codebook")
        except Exception as exc:
            raise TritforgeError(f"{where}: tensor missing or truncated ({str(exc).splitlines()[0]})") from None
        out[name] = decode_matrix(where, e, stream, words)
    return out, model
