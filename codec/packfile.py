"""The packed trit file: quantized matrices in a versioned safetensors container.

Layout of one file (format ``tritforge-packed``, version 2; version 3 when it holds a
variable-depth matrix, the only difference):

* tensor ``<name>.trits``  uint8: the matrix's file stream (``layout.pack_matrix``: groups
  in row-major order, 16*d + 3 trits each, five trits per byte, the last byte padded with
  the trit 0; for a variable-depth matrix ``layout.pack_var_matrix``: groups of 4 + 16*k
  trits, k each group's own depth);
* tensor ``<name>.codebook`` uint16 (27,): the codebook words the hardware loads
  (``layout.codebook_word``: mantissa | left shift << F), a check on the metadata;
* metadata ``format``, ``format_version``, ``tensors`` (JSON: per matrix depth, group,
  shape, in_padded, pad, mode, the codebook endpoints as exact hex floats and the SHA-256
  of the raw bytes of its two tensors; a variable-depth matrix adds ``variable_depth``:
  ``stream_trits``, the trit count of its stream, and ``groups_by_depth``, its groups per
  depth 0..d, which the reader checks against the decoded stream) and ``model`` (JSON supplied by the writer: source
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
#: the version of a file that holds a variable-depth matrix (a version-2 reader refuses it
#: by its version, not by a field it does not know); uniform files stay version 2
VARIABLE_VERSION = 3
VERSIONS = (VERSION, VARIABLE_VERSION)
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
    trits: int                  #: trits of the stream (before the last byte's padding)
    groups_by_depth: tuple[int, ...] = ()   #: groups per depth 0..depth

    @property
    def weights(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def info_bpw(self) -> float:
        """Information bits per weight over the unpadded shape, padding included, as the
        physical figure is: trits of the stored groups * log2(3) / weights."""
        return self.trits * math.log2(3) / self.weights

    @property
    def physical_bpw(self) -> float:
        return self.bytes * 8 / self.weights


def sha256(array) -> str:
    """Hex SHA-256 of an array's raw bytes (C order, native little-endian), as stored."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def codebook_words(cb: Codebook) -> np.ndarray:
    return np.array([layout.codebook_word(m, s, cb.mant_bits)
                     for m, s in zip(cb.mantissa, cb.left_shift)], dtype=np.uint16)


def stream_trits(t: TritTensor) -> int:
    """Trits of a matrix's file stream (uniform or variable-depth)."""
    if t.variable:
        return layout.var_stream_trits(t.group_depth)
    return t.q.shape[0] * t.groups * layout.group_trits(t.depth)


def info(name: str, t: TritTensor) -> PackedInfo:
    n_trits = stream_trits(t)
    return PackedInfo(name, t.shape, t.depth, layout.packed_bytes(n_trits), n_trits,
                      tuple(t.depth_histogram()))


def matrix_arrays(t: TritTensor) -> tuple[np.ndarray, np.ndarray]:
    """The two stored tensors of a matrix: (trit stream uint8, codebook words uint16)."""
    if t.variable:
        return layout.pack_var_matrix(t.q, t.k, t.group_depth, t.depth), codebook_words(t.codebook)
    return layout.pack_matrix(t.q, t.k, t.depth), codebook_words(t.codebook)


def matrix_entry(t: TritTensor, trits: np.ndarray, words: np.ndarray) -> dict:
    """The metadata entry of a matrix (JSON-able), with the checksums of its tensors."""
    e = {"depth": t.depth, "group": layout.GROUP, "shape": list(t.shape),
         "in_padded": t.in_padded, "pad": t.pad, "mode": t.mode,
         "codebook": t.codebook.to_meta(),
         "sha256": {"trits": sha256(trits), "codebook": sha256(words)}}
    if t.variable:
        e["variable_depth"] = {"stream_trits": stream_trits(t), "groups_by_depth": t.depth_histogram()}
    return e


def entry_geometry(where: str, e) -> tuple[int, tuple[int, int], int, str, Codebook]:
    """Checked (depth, shape, in_padded, mode, codebook) of a metadata entry (its rules:
    ``tritforge.documents.packfile.PackedEntry``)."""
    doc = validate(PackedEntry, e, where)
    cb = Codebook.from_meta(doc.codebook.model_dump())
    return doc.depth, (doc.shape[0], doc.shape[1]), doc.in_padded, doc.mode, cb


def entry_trits(e: dict) -> int | None:
    """A variable-depth entry's stream trits (an entry checked by ``entry_geometry``), else None."""
    v = e.get("variable_depth")
    return None if v is None else int(v["stream_trits"])


def entry_version(e: dict) -> int:
    """The format version a file holding this entry needs."""
    return VERSION if e.get("variable_depth") is None else VARIABLE_VERSION


def stream_bytes(depth: int, shape: tuple[int, int], in_padded: int, trits: int | None = None) -> int:
    """Bytes of a matrix's stream: uniform from its geometry, variable-depth from its trits."""
    if trits is not None:
        return layout.packed_bytes(trits)
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
    n_trits = entry_trits(e)
    if n_trits is None:
        q, k = layout.unpack_matrix(stream, shape[0], in_padded, depth, what=where)
        return TritTensor(q, k, cb, depth, shape, mode)
    q, k, gd = layout.unpack_var_matrix(stream, n_trits, shape[0], in_padded, depth, what=where)
    t = TritTensor(q, k, cb, depth, shape, mode, group_depth=gd)
    if t.depth_histogram() != list(e["variable_depth"]["groups_by_depth"]):
        raise TritforgeError(f"{where}: groups by depth {t.depth_histogram()} in the stream, the "
                             f"metadata says {e['variable_depth']['groups_by_depth']}")
    return t


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
    version = max(entry_version(e) for e in entries.values())
    metadata = {"format": FORMAT, "format_version": str(version),
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
    version = check_version(path, meta.get("format_version"))
    entries = parse_metadata(path, meta, "tensors")
    if not isinstance(entries, dict) or not entries:
        raise TritforgeError(f"{path}: metadata tensors: expected an object of one entry per matrix")
    model = validate(ModelNote, parse_metadata(path, meta, "model", "{}"), f"{path}: metadata model")
    checked = {name: (e, entry_geometry(f"{path}: {name}", e)) for name, e in entries.items()}
    check_entry_versions(path, version, entries)
    _check_roles(path, handle, checked)
    return handle, checked, model.model_dump(exclude_unset=True)


def check_version(path: str, version) -> int:
    """The format version of a file's metadata (a string), one this tritforge reads."""
    if version not in [str(v) for v in VERSIONS]:
        raise TritforgeError(f"{path}: format version {version!r}, this tritforge reads versions "
                             f"{' and '.join(map(str, VERSIONS))}")
    return int(version)


def check_entry_versions(path: str, version: int, entries: dict) -> None:
    """Variable-depth entries only in a version-3 file."""
    for name, e in entries.items():
        if entry_version(e) > version:
            raise TritforgeError(f"{path}: {name} is a variable-depth matrix in a version-{version} "
                                 f"file; expected version {entry_version(e)}")


def _check_roles(path: str, handle, checked: dict) -> None:
    """Each stored tensor against its role: the trit stream U8 [bytes of the geometry], the
    codebook words U16 [27]; nothing else in the file."""
    want = {}
    for name, (e, (depth, shape, in_padded, _, _)) in checked.items():
        want[f"{name}.trits"] = ("U8", [stream_bytes(depth, shape, in_padded, entry_trits(e))])
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
    infos = []
    for name, (e, (depth, shape, in_padded, _, _)) in checked.items():
        trits = entry_trits(e)
        groups = shape[0] * (in_padded // layout.GROUP)
        if trits is None:
            hist = (0,) * depth + (groups,)
            trits = groups * layout.group_trits(depth)
        else:
            hist = tuple(e["variable_depth"]["groups_by_depth"])
        infos.append(PackedInfo(name, shape, depth, layout.packed_bytes(trits), trits, hist))
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
