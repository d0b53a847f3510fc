"""The packed trit file: quantized matrices in a versioned safetensors container.

Layout of one file (format ``tritforge-packed``, version 1):

* tensor ``<name>.trits``  uint8: the matrix's file stream (``layout.pack_matrix``: groups
  in row-major order, 16*d + 3 trits each, five trits per byte);
* tensor ``<name>.codebook`` uint16 (27,): the codebook words the hardware loads
  (``layout.codebook_word``: mantissa | left shift << F), a check on the metadata;
* metadata ``format``, ``format_version``, ``tensors`` (JSON: per matrix depth, group,
  shape, in_padded, pad, mode and the codebook endpoints as exact hex floats) and
  ``model`` (JSON supplied by the writer: source, architecture, ...).

Writes are atomic (temporary file in the same folder, then rename). Reading checks the
format name and version, every size, every trit byte (< 243) and the codebook words, and
raises ``TritforgeError`` naming the file and what was wrong.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from . import layout
from ..atomic import atomic_file
from .codebook import Codebook
from ..errors import TritforgeError
from .quantize import TritTensor

FORMAT = "tritforge-packed"
VERSION = 1
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
        return layout.info_bpw(self.depth)

    @property
    def physical_bpw(self) -> float:
        return self.bytes * 8 / self.weights


def codebook_words(cb: Codebook) -> np.ndarray:
    return np.array([layout.codebook_word(m, s, cb.mant_bits)
                     for m, s in zip(cb.mantissa, cb.left_shift)], dtype=np.uint16)


def info(name: str, t: TritTensor) -> PackedInfo:
    n_trits = t.q.shape[0] * t.groups * layout.group_trits(t.depth)
    return PackedInfo(name, t.shape, t.depth, layout.packed_bytes(n_trits))


def write_packed(path: str, tensors: dict[str, TritTensor], meta: dict | None = None) -> list[PackedInfo]:
    """Write quantized matrices to ``path`` atomically; returns their size figures."""
    from safetensors.numpy import save_file

    if not tensors:
        raise TritforgeError(f"{path}: nothing to write (no quantized matrices)")
    arrays, entries, infos = {}, {}, []
    for name, t in tensors.items():
        arrays[f"{name}.trits"] = layout.pack_matrix(t.q, t.k, t.depth)
        arrays[f"{name}.codebook"] = codebook_words(t.codebook)
        entries[name] = {"depth": t.depth, "group": layout.GROUP, "shape": list(t.shape),
                         "in_padded": t.in_padded, "pad": t.pad, "mode": t.mode,
                         "codebook": t.codebook.to_meta()}
        infos.append(info(name, t))
    metadata = {"format": FORMAT, "format_version": str(VERSION),
                "tensors": json.dumps(entries), "model": json.dumps(meta or {})}
    with atomic_file(path) as tmp:
        save_file(arrays, tmp, metadata=metadata)
    return infos


def _header(path: str):
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise TritforgeError(f"{path}: no such packed file")
    try:
        handle = safe_open(path, framework="np")
    except Exception as exc:  # safetensors raises its own error types for any corruption
        raise TritforgeError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    meta = handle.metadata() or {}
    if meta.get("format") != FORMAT:
        raise TritforgeError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != str(VERSION):
        raise TritforgeError(f"{path}: format version {meta.get('format_version')!r}, "
                             f"this tritforge reads version {VERSION}")
    try:
        entries = json.loads(meta["tensors"])
        model = json.loads(meta.get("model", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise TritforgeError(f"{path}: damaged metadata ({exc})") from None
    return handle, entries, model


def read_info(path: str) -> tuple[list[PackedInfo], dict]:
    """Size figures and model metadata without decoding the streams."""
    handle, entries, model = _header(path)
    infos = []
    for name, e in entries.items():
        try:
            n = handle.get_slice(f"{name}.trits").get_shape()[0]
        except Exception:
            raise TritforgeError(f"{path}: tensor {name}.trits is missing") from None
        infos.append(PackedInfo(name, tuple(e["shape"]), int(e["depth"]), int(n)))
    return infos, model


def read_packed(path: str) -> tuple[dict[str, TritTensor], dict]:
    """Read and fully check a packed file: (name -> TritTensor, model metadata)."""
    handle, entries, model = _header(path)
    out = {}
    for name, e in entries.items():
        where = f"{path}: {name}"
        try:
            depth, shape = int(e["depth"]), (int(e["shape"][0]), int(e["shape"][1]))
            in_padded, mode = int(e["in_padded"]), str(e["mode"])
            cb = Codebook.from_meta(e["codebook"])
            if int(e["group"]) != layout.GROUP:
                raise TritforgeError(f"{where}: group {e['group']}, expected {layout.GROUP}")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TritforgeError(f"{where}: damaged metadata ({exc})") from None
        layout.check_depth(depth)
        if in_padded % layout.GROUP or not shape[1] <= in_padded < shape[1] + layout.GROUP:
            raise TritforgeError(f"{where}: in_padded {in_padded} does not fit shape {shape}")
        try:
            stream = handle.get_tensor(f"{name}.trits")
            words = handle.get_tensor(f"{name}.codebook")
        except Exception as exc:
            raise TritforgeError(f"{where}: tensor missing or truncated ({str(exc).splitlines()[0]})") from None
        if not np.array_equal(words, codebook_words(cb)):
            raise TritforgeError(f"{where}: codebook words do not match the codebook metadata")
        q, k = layout.unpack_matrix(stream, shape[0], in_padded, depth, what=where)
        out[name] = TritTensor(q, k, cb, depth, shape, mode)
    return out, model
