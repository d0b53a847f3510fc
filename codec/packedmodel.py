"""The packed model folder: a self-contained HF folder that stock ``transformers`` loads
(after ``import tritforge``) with the quantized matrices kept as packed trits.

What :func:`write_packed_model` writes (``tritforge quantize``: ``<config>/packed/``):

* ``config.json``: the source's transformers config, ``dtype`` the dtype of the kept
  tensors, and ``quantization_config`` = ``{"quant_method": "tritforge", "format":
  "tritforge-packed", "format_version": 2 (3 when a matrix has variable depth per group,
  ``codec.packfile``), "depth": d (or null and "depths": {module: d} when they differ; a
  variable-depth matrix's base depth), "mode": ..., "group_size": 16}``;
* ``model.safetensors`` (or shards ``model-0000i-of-0000N.safetensors`` listed in
  ``model.safetensors.index.json``): per quantized ``nn.Linear`` named ``M``, the tensors
  ``M.trits`` (U8, the file stream of ``codec.layout``) and ``M.codebook`` (U16, 27
  codebook words), exactly as in the packed file (``codec.packfile``); every other tensor
  of the source (embeddings, norms, biases, an untied ``lm_head``) in its source dtype;
* safetensors metadata of every file: ``format: pt``; ``packed_format`` /
  ``packed_format_version``; ``tensors`` (JSON, the quantized matrices of this file keyed
  by module name, entries as in the packed file); ``sha256`` (JSON, tensor name -> SHA-256
  of its raw stored bytes, for every tensor of this file); ``model`` (JSON note: source by
  file name and content hash, config, mode, recorded weight errors);
* ``generation_config.json`` and the tokenizer files (as ``codec.export`` copies them).

:func:`read_packed_model` checks a folder completely before anything uses it, and every
problem is one ``TritforgeError`` (a ``ValueError``) naming the file: not a tritforge
``quantization_config`` (another method, another format version), a ``model_type`` that
``transformers`` does not know, shards missing, extra
or out of order (numbering, or a tensor not in the shard the index names), a tensor that
the metadata lists but no file holds (or the reverse), a SHA-256 mismatch (naming the
tensor), bad trit bytes or codebook words. The checksums are computed over the raw bytes
in the files, read through the safetensors header offsets, so the check does not depend
on how the tensors are later loaded.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import layout, packfile
from ..atomic import atomic_file, atomic_folder
from ..errors import TritforgeError
from ..documents.limits import parse_json
from ..documents.packfile import ModelNote
from ..documents.validation import validate
from ..jsonfile import read_json
from .quantize import TritTensor

QUANT_METHOD = "tritforge"
FORMAT = packfile.FORMAT
VERSION = packfile.VERSION
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
_SHARD = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def module_name(weight_name: str) -> str:
    """``model.layers.0.mlp.up_proj.weight`` -> ``model.layers.0.mlp.up_proj``."""
    return weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name


def quantization_config(tensors: dict[str, TritTensor]) -> dict:
    """The ``quantization_config`` entry of config.json for ``tensors`` (module -> matrix)."""
    depths = {n: t.depth for n, t in tensors.items()}
    modes = sorted({t.mode for t in tensors.values()})
    version = max(packfile.VARIABLE_VERSION if t.variable else VERSION for t in tensors.values())
    cfg = {"quant_method": QUANT_METHOD, "format": FORMAT, "format_version": version,
           "depth": next(iter(depths.values())) if len(set(depths.values())) == 1 else None,
           "mode": modes[0] if len(modes) == 1 else modes, "group_size": layout.GROUP}
    if cfg["depth"] is None:
        cfg["depths"] = depths
    return cfg


def tensor_sha256(t) -> str:
    """SHA-256 of a torch tensor's or numpy array's raw bytes as safetensors stores them."""
    if hasattr(t, "detach"):
        import torch

        t = t.detach().contiguous().cpu().reshape(-1)
        return hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()
    return packfile.sha256(t)


# --- writing -----------------------------------------------------------------------------

def _shards(names: list[str], sizes: dict[str, int], max_bytes: int | None) -> list[list[str]]:
    if not max_bytes:
        return [names]
    out, cur, size = [], [], 0
    for n in names:
        if cur and size + sizes[n] > max_bytes:
            out.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += sizes[n]
    return out + ([cur] if cur else [])


def write_state(folder: str, state: dict, entries: dict, note: dict,
                max_shard_bytes: int | None = None) -> list[str]:
    """Write ``state`` (name -> torch tensor) into ``folder`` as one file or shards, each
    with the metadata of the module docstring; returns the file names."""
    from safetensors.torch import save_file

    names = sorted(state)
    version = max([VERSION] + [packfile.entry_version(e) for e in entries.values()])
    sizes = {n: state[n].numel() * state[n].element_size() for n in names}
    groups = _shards(names, sizes, max_shard_bytes)
    files = ([WEIGHTS_NAME] if len(groups) == 1 else
             [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))])
    weight_map = {}
    for fname, group in zip(files, groups):
        mods = {n.rsplit(".", 1)[0] for n in group if n.endswith((".trits", ".codebook"))}
        meta = {"format": "pt", "packed_format": FORMAT, "packed_format_version": str(version),
                "tensors": json.dumps({m: entries[m] for m in sorted(mods) if m in entries}),
                "sha256": json.dumps({n: tensor_sha256(state[n]) for n in group}),
                "model": json.dumps(note)}
        with atomic_file(os.path.join(folder, fname)) as tmp:
            save_file({n: state[n].contiguous() for n in group}, tmp, metadata=meta)
        weight_map.update({n: fname for n in group})
    if len(files) > 1:
        with atomic_file(os.path.join(folder, INDEX_NAME)) as tmp:
            with open(tmp, "w") as f:
                json.dump({"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}, f, indent=1)
    return files


def write_packed_model(ckpt, quantized: dict[str, TritTensor], folder: str, note: dict | None = None,
                       max_shard_bytes: int | None = None) -> dict:
    """Write the packed model folder of ``ckpt`` with ``quantized`` (weight name ->
    TritTensor); returns its size figures (:func:`folder_sizes`)."""
    import torch

    from .export import copy_tokenizer_and_generation, export_config, model_tensors

    state, entries, mods = {}, {}, {}
    for name, t, q in model_tensors(ckpt, quantized):
        if q is not None:
            m = module_name(name)
            trits, words = packfile.matrix_arrays(q)
            state[f"{m}.trits"] = torch.from_numpy(trits)
            state[f"{m}.codebook"] = torch.from_numpy(words.view(np.int16)).view(torch.uint16)
            entries[m] = packfile.matrix_entry(q, trits, words)
            mods[m] = q
        else:
            state[name] = t.contiguous()
    floats = [t for n, t in state.items() if t.is_floating_point()]
    config = export_config(ckpt, floats[0].dtype if floats else torch.float32)
    config.quantization_config = quantization_config(mods)
    with atomic_folder(folder) as tmp:
        write_state(tmp, state, entries, note or {}, max_shard_bytes)
        config.save_pretrained(tmp)
        copy_tokenizer_and_generation(ckpt, config, tmp)
    return folder_sizes(folder)


# --- reading -----------------------------------------------------------------------------

def read_header(path: str) -> tuple[dict, dict, int]:
    """(tensor entries, metadata, start of the data) of a safetensors file, checked
    against the file size."""
    if not os.path.isfile(path):
        raise TritforgeError(f"{path}: missing")
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                raise ValueError(f"header length {n} does not fit the file ({size} bytes)")
            text = f.read(n).decode("utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TritforgeError(f"{path}: not a readable safetensors file ({exc})") from None
    header = parse_json(text, f"{path}: header")
    if not isinstance(header, dict):
        raise TritforgeError(f"{path}: not a readable safetensors file (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    end = 8 + n
    for name, e in header.items():
        try:
            b, e_ = (int(x) for x in e["data_offsets"])
            want = int(np.prod(e["shape"], dtype=np.int64)) * _DTYPE_BYTES[e["dtype"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise TritforgeError(f"{path}: tensor {name}: damaged header entry ({exc})") from None
        if e_ - b != want or end + e_ > size or b < 0:
            raise TritforgeError(f"{path}: tensor {name} is truncated or its size does not match its shape")
    return header, meta, end


@dataclass
class PackedModel:
    """A checked packed model folder."""

    folder: str
    config: dict                       #: config.json as a dict
    qconfig: dict                      #: its quantization_config
    files: list                        #: weight file names, in order
    entries: dict                      #: module -> metadata entry
    where: dict                        #: tensor name -> file name
    headers: dict                      #: file name -> (header, data start)
    note: dict = field(default_factory=dict)

    @property
    def quantized_bytes(self) -> int:
        return sum(packfile.stream_bytes(*packfile.entry_geometry(m, e)[:3], packfile.entry_trits(e))
                   + 2 * layout.CODEBOOK_SIZE for m, e in self.entries.items())

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of one tensor as a numpy array of its dtype."""
        fname = self.where[name]
        header, start = self.headers[fname]
        e = header[name]
        b, end = e["data_offsets"]
        dt = {"U8": np.uint8, "U16": np.uint16}.get(e["dtype"])
        if dt is None:
            raise TritforgeError(f"{os.path.join(self.folder, fname)}: tensor {name} has dtype "
                                 f"{e['dtype']}, expected U8 or U16")
        with open(os.path.join(self.folder, fname), "rb") as f:
            f.seek(start + b)
            return np.frombuffer(f.read(end - b), dtype=dt).reshape(e["shape"])

    def trit_tensors(self) -> dict[str, TritTensor]:
        """Every quantized matrix, decoded and checked (weight name -> TritTensor)."""
        out = {}
        for m, e in self.entries.items():
            where = f"{os.path.join(self.folder, self.where[m + '.trits'])}: {m}"
            out[f"{m}.weight"] = packfile.decode_matrix(where, e, self.raw(f"{m}.trits"),
                                                        self.raw(f"{m}.codebook"), checked=True)
        return out


def check_quantization_config(path: str, qc) -> dict:
    if not isinstance(qc, dict):
        raise TritforgeError(f"{path}: no quantization_config; not a tritforge packed model folder")
    if qc.get("quant_method") != QUANT_METHOD:
        raise TritforgeError(f"{path}: quantization_config of method {qc.get('quant_method')!r}, "
                             f"expected {QUANT_METHOD!r}")
    if qc.get("format", FORMAT) != FORMAT or str(qc.get("format_version")) not in map(str, packfile.VERSIONS):
        raise TritforgeError(f"{path}: quantization_config format {qc.get('format')!r} version "
                             f"{qc.get('format_version')!r}, this tritforge reads {FORMAT!r} versions "
                             f"{' and '.join(map(str, packfile.VERSIONS))}")
    if int(qc.get("group_size", layout.GROUP)) != layout.GROUP:
        raise TritforgeError(f"{path}: quantization_config group_size {qc.get('group_size')}, expected {layout.GROUP}")
    return qc


def _weight_files(folder: str) -> tuple[list[str], dict | None]:
    single, index = os.path.join(folder, WEIGHTS_NAME), os.path.join(folder, INDEX_NAME)
    if os.path.isfile(single):
        return [WEIGHTS_NAME], None
    if not os.path.isfile(index):
        raise TritforgeError(f"{folder}: neither {WEIGHTS_NAME} nor {INDEX_NAME} found")
    try:
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TritforgeError(f"{index}: not a safetensors index with a weight_map ({exc})") from None
    files = sorted(set(weight_map.values()))
    totals = set()
    for i, fname in enumerate(files):
        m = _SHARD.match(str(fname))
        if not m:
            raise TritforgeError(f"{index}: shard name {fname!r}, expected model-XXXXX-of-YYYYY.safetensors")
        totals.add(int(m.group(2)))
        if int(m.group(1)) != i + 1:
            raise TritforgeError(f"{index}: shards out of order: {fname} is listed where shard "
                                 f"{i + 1:05d} belongs")
    if len(totals) != 1 or totals.pop() != len(files):
        raise TritforgeError(f"{index}: shards out of order: the index lists {len(files)} shards, "
                             f"their names say otherwise")
    return files, weight_map


def read_packed_model(folder: str, verify: bool = True) -> PackedModel:
    """Check a packed model folder completely (module docstring); ``verify``: also the
    SHA-256 of every tensor's stored bytes."""
    folder = os.path.abspath(folder)
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isdir(folder):
        raise TritforgeError(f"{folder}: no such packed model folder")
    config = read_json(cfg_path, "the packed model's config (an HF config.json)")
    qc = check_quantization_config(cfg_path, config.get("quantization_config"))
    from .checkpoint import check_known_architecture

    check_known_architecture(config.get("model_type"), cfg_path)
    files, weight_map = _weight_files(folder)
    entries, shas, where, headers, note, listed = {}, {}, {}, {}, {}, {}
    for fname in files:
        path = os.path.join(folder, fname)
        header, meta, start = read_header(path)
        headers[fname] = (header, start)
        if meta.get("packed_format") != FORMAT or meta.get("packed_format_version") not in map(str, packfile.VERSIONS):
            raise TritforgeError(f"{path}: packed format {meta.get('packed_format')!r} version "
                                 f"{meta.get('packed_format_version')!r}, this tritforge reads {FORMAT!r} versions "
                                 f"{' and '.join(map(str, packfile.VERSIONS))}")
        if not isinstance(meta, dict):
            raise TritforgeError(f"{path}: damaged metadata (expected an object of strings)")
        ents, sha, nt = (packfile.parse_metadata(path, meta, k) for k in ("tensors", "sha256", "model"))
        if not all(isinstance(x, dict) for x in (ents, sha, nt)):
            raise TritforgeError(f"{path}: damaged metadata (tensors, sha256 and model must be JSON objects)")
        nt = validate(ModelNote, nt, f"{path}: metadata model").model_dump(exclude_unset=True)
        packfile.check_entry_versions(path, int(meta["packed_format_version"]), ents)
        note = note or nt
        for name in header:
            if name in where:
                raise TritforgeError(f"{path}: tensor {name} is also in {where[name]}")
            if weight_map is not None and weight_map.get(name) != fname:
                raise TritforgeError(f"{path}: tensor {name} is here, the index names "
                                     f"{weight_map.get(name)!r}: shards out of order")
            where[name] = fname
        listed.update({n: fname for n in sha})
        listed.update({f"{m}.{p}": fname for m in ents for p in ("trits", "codebook")})
        entries.update(ents)
        shas.update(sha)
    # the metadata of one file may list tensors of other shards (save_pretrained writes the
    # same metadata into every shard): the union is checked against the union of headers
    for name, fname in sorted(listed.items()):
        if name not in where:
            raise TritforgeError(f"{os.path.join(folder, fname)}: tensor {name} is missing "
                                 f"(listed in the metadata, in no weight file)")
    for name, fname in where.items():
        if name not in shas:
            raise TritforgeError(f"{os.path.join(folder, fname)}: tensor {name} has no SHA-256 in the metadata")
    if weight_map is not None:
        lost = sorted(set(weight_map) - set(where))
        if lost:
            raise TritforgeError(f"{os.path.join(folder, INDEX_NAME)}: tensor {lost[0]} is missing "
                                 f"from {weight_map[lost[0]]}")
    if not entries:
        raise TritforgeError(f"{folder}: no quantized matrices in the packed model")
    for m, e in entries.items():
        path = os.path.join(folder, where[f"{m}.trits"])
        depth, shape, in_padded, _, _ = packfile.entry_geometry(f"{path}: {m}", e)
        nbytes = packfile.stream_bytes(depth, shape, in_padded, packfile.entry_trits(e))
        ht, hc = headers[where[f"{m}.trits"]][0][f"{m}.trits"], headers[where[f"{m}.codebook"]][0][f"{m}.codebook"]
        if ht["dtype"] != "U8" or ht["shape"] != [nbytes]:
            raise TritforgeError(f"{path}: tensor {m}.trits is {ht['dtype']} {ht['shape']}, expected U8 "
                                 f"[{nbytes}]")
        if hc["dtype"] != "U16" or hc["shape"] != [layout.CODEBOOK_SIZE]:
            raise TritforgeError(f"{path}: tensor {m}.codebook is {hc['dtype']} {hc['shape']}, "
                                 f"expected U16 [{layout.CODEBOOK_SIZE}]")
        for part in ("trits", "codebook"):
            if (e.get("sha256") or {}).get(part) != shas.get(f"{m}.{part}"):
                raise TritforgeError(f"{path}: {m}: the {part} checksum of its entry differs from the file's sha256 list")
    pm = PackedModel(folder, config, qc, files, entries, where, headers, note)
    if verify:
        verify_checksums(pm, shas)
    return pm


def verify_checksums(pm: PackedModel, shas: dict) -> None:
    """SHA-256 of every tensor's stored bytes against the metadata; names the tensor."""
    for fname in pm.files:
        path = os.path.join(pm.folder, fname)
        header, start = pm.headers[fname]
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for name, e in header.items():
                b, end = e["data_offsets"]
                if hashlib.sha256(mm[start + b: start + end]).hexdigest() != shas[name]:
                    raise TritforgeError(f"{path}: tensor {name}: SHA-256 mismatch (the file is corrupted)")


def is_packed_model(path: str) -> bool:
    """True if ``path`` is a folder whose config.json names the tritforge quantization."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            qc = json.load(f).get("quantization_config")
        return isinstance(qc, dict) and qc.get("quant_method") == QUANT_METHOD
    except (OSError, ValueError, AttributeError):
        return False


def folder_sizes(folder: str) -> dict:
    """Bytes on disk of a packed model folder, split into the quantized matrices (trits and
    codebook words), the rest of the weights, and the other files."""
    pm = read_packed_model(folder, verify=False)
    weights = sum(int(np.prod(e["shape"])) for e in pm.entries.values())
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                if os.path.isfile(os.path.join(folder, f)))
    wfiles = sum(os.path.getsize(os.path.join(folder, f)) for f in pm.files)
    qbytes = sum(pm.headers[pm.where[f"{m}.{p}"]][0][f"{m}.{p}"]["data_offsets"][1]
                 - pm.headers[pm.where[f"{m}.{p}"]][0][f"{m}.{p}"]["data_offsets"][0]
                 for m in pm.entries for p in ("trits", "codebook"))
    return {"folder_bytes": total, "weight_file_bytes": wfiles, "quantized_bytes": qbytes,
            "quantized_weights": weights, "quantized_bpw": qbytes * 8 / weights,
            "other_tensor_bytes": sum(e["data_offsets"][1] - e["data_offsets"][0]
                                      for h, _ in pm.headers.values() for e in h.values()) - qbytes}


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(folder) for f in fs)
