"""Shared test vectors: written once, read by the Amaranth tests, the cocotb tests and the cycle model.

A *vector set* is a directory::

    meta.json                 format, version, seed, and one entry per case (below)
    <case>.beats.bin          the packed hardware weight stream (codec.layout.stream_beats),
                              raw bytes, tiles x groups x beat_bytes, beat order tile-major
    <case>.xq.npy             int8 (n, in_pad) activations (the act stream words are
                              layout.pack_activation_group of each 16-lane group)
    <case>.acc.npy            int64 (n, out) expected accumulators (codec.golden)

A case's metadata holds the hardware parameters it was written for (``hwconfig``: the
fields of ``tritforge.hwconfig.HwConfig`` as a dict; the codec does not import it), the
matrix shape and depth, the codebook (endpoints as exact hex floats and its integer words
``[index, mantissa, left_shift]``), optionally the expected cycle count from the cycle model
(no stalls) and a stall pattern description for testbenches, and the SHA-256 of every blob.

The reader checks the format, the hashes, that the beats decode (``layout.decode_stream``)
and that the codebook words match the endpoints, and gives back :class:`VectorCase`
objects with a ``TritTensor`` rebuilt from the packed stream, so every consumer starts
from the very bytes the RTL is fed.

Directed cases (:func:`directed_cases`): all zero, all trits +1, all trits -1, the extreme
magnitudes of the accumulator bound (both signs), sparse, dense; plus seeded random
matrices quantized with the codec (:func:`random_case`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import golden, layout
from .codebook import SHIFT_LIMIT, Codebook
from ..atomic import atomic_folder
from ..errors import TritforgeError
from .quantize import TritTensor, quantize_matrix

FORMAT = "tritforge-vectors"
VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


@dataclass
class VectorCase:
    """One matrix, its activations and what the hardware must produce."""

    name: str
    tensor: TritTensor
    xq: np.ndarray                 #: int8 (n, in_pad)
    expected: np.ndarray           #: int64 (n, out): golden accumulators
    hwconfig: dict                 #: HwConfig parameters (depth and rows must match)
    cycles: int | None = None      #: expected cycles (cycle model, no stalls), if known
    stalls: dict = field(default_factory=dict)   #: stall pattern for testbenches, free form
    beats: np.ndarray | None = None  #: uint8 (tiles, ng, beat_bytes); derived if None

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise TritforgeError(f"vector case name {self.name!r}: expected letters, digits, _ . -")
        rows = self.rows
        if self.hwconfig.get("depth", self.tensor.depth) != self.tensor.depth:
            raise TritforgeError(f"vector case {self.name}: hwconfig depth "
                                 f"{self.hwconfig.get('depth')} != matrix depth {self.tensor.depth}")
        if self.beats is None:
            self.beats = layout.stream_beats(self.tensor.q, self.tensor.k, self.tensor.depth, rows)
        self.xq = np.asarray(self.xq, dtype=np.int8)
        if self.xq.ndim != 2 or self.xq.shape[1] != self.tensor.in_padded:
            raise TritforgeError(f"vector case {self.name}: activations {self.xq.shape}, "
                                 f"expected (n, {self.tensor.in_padded})")

    # --- views the testbenches drive ----------------------------------------------------
    @property
    def rows(self) -> int:
        r = self.hwconfig.get("rows")
        if not isinstance(r, int) or r < 1:
            raise TritforgeError(f"vector case {self.name}: hwconfig rows={r!r}, expected an integer >= 1")
        return r

    @property
    def vectors(self) -> int:
        return int(self.hwconfig.get("vectors", 1))

    @property
    def out_features(self) -> int:
        return self.tensor.shape[0]

    @property
    def groups(self) -> int:
        return self.tensor.groups

    @property
    def tiles(self) -> int:
        return self.beats.shape[0]

    def beat_words(self) -> list[int]:
        """Weight beats as little-endian integers (byte b in bits 8b..8b+7), stream order."""
        flat = self.beats.reshape(-1, self.beats.shape[-1])
        return [int.from_bytes(b.tobytes(), "little") for b in flat]

    def act_words(self, xq: np.ndarray | None = None) -> list[int]:
        """Activation words of the vectors ``xq`` (default all), vector-major then group."""
        x = self.xq if xq is None else np.asarray(xq, dtype=np.int8)
        g = x.reshape(x.shape[0], -1, layout.GROUP)
        return [layout.pack_activation_group(g[v, j]) for v in range(g.shape[0])
                for j in range(g.shape[1])]

    def codebook_words(self) -> list[tuple[int, int, int]]:
        """(index, mantissa, left_shift) for the 27 entries: the ``cb`` stream payloads."""
        cb = self.tensor.codebook
        return [(i, int(cb.mantissa[i]), int(cb.left_shift[i])) for i in range(layout.CODEBOOK_SIZE)]


# --- building cases ---------------------------------------------------------------------

def make_case(name: str, t: TritTensor, xq, hwconfig: dict, cycles: int | None = None,
              stalls: dict | None = None) -> VectorCase:
    """A case with its expected accumulators from the golden reference."""
    xq = np.asarray(xq, dtype=np.int8)
    if xq.ndim == 1:
        xq = xq[None]
    expected = golden.accumulators(t, xq)
    return VectorCase(name, t, xq, expected, dict(hwconfig), cycles, dict(stalls or {}))


def extreme_codebook() -> Codebook:
    """A codebook spanning the largest shift: entry 26 has the largest m * 2**delta."""
    return Codebook(2.0 ** -SHIFT_LIMIT, 1.0)


def _tensor(q: np.ndarray, k: np.ndarray, cb: Codebook, d: int, in_features: int) -> TritTensor:
    return TritTensor(q.astype(np.int8), k.astype(np.uint8), cb, d, (q.shape[0], in_features))


def directed_cases(d: int, out_features: int, in_features: int, n: int,
                   seed: int = 0) -> list[tuple[str, TritTensor, np.ndarray]]:
    """Directed (name, matrix, activations) triples for one depth and shape.

    all_zero, trits_plus (every trit +1, q = +L), trits_minus (q = -L), max_pos / max_neg
    (x = -128 everywhere, the int8 minimum, against q = -L / +L, every group at the entry
    with the largest m * 2**delta: +/- the accumulator bound of ``golden.widths`` for the
    largest shift),
    alternating (+L/-L lanes against alternating activations), sparse (95 % zero levels),
    dense (no zero level).
    """
    rng = np.random.default_rng(seed)
    L = layout.max_level(d)
    in_pad = -(-in_features // layout.GROUP) * layout.GROUP
    ng = in_pad // layout.GROUP
    shape = (out_features, in_pad)
    cb = extreme_codebook()
    top = int(np.argmax(cb.mantissa << cb.left_shift))
    col_ok = np.arange(in_pad) < in_features          # padding columns stay zero

    def levels(a):
        return np.where(col_ok, a, 0)

    def xrand():
        x = rng.integers(golden.ACT_MIN, golden.ACT_MAX + 1, size=(n, in_pad))
        return np.where(col_ok, x, 0).astype(np.int8)

    xmin = np.where(col_ok, golden.ACT_MIN, 0)[None].repeat(n, 0).astype(np.int8)
    k_rand = rng.integers(0, layout.CODEBOOK_SIZE, size=(out_features, ng))
    k_top = np.full((out_features, ng), top)
    ones = np.ones(shape, dtype=np.int64)
    alt = np.where(np.arange(in_pad) % 2 == 0, 1, -1)
    cases = [
        ("all_zero", _tensor(np.zeros(shape), k_rand, cb, d, in_features), xrand()),
        ("trits_plus", _tensor(levels(L * ones), k_rand, cb, d, in_features), xrand()),
        ("trits_minus", _tensor(levels(-L * ones), k_rand, cb, d, in_features), xrand()),
        ("max_pos", _tensor(levels(-L * ones), k_top, cb, d, in_features), xmin),
        ("max_neg", _tensor(levels(L * ones), k_top, cb, d, in_features), xmin),
        ("alternating", _tensor(levels(L * alt * ones), k_rand, cb, d, in_features),
         np.where(col_ok, 127 * alt, 0)[None].repeat(n, 0).astype(np.int8)),
    ]
    sparse = rng.integers(-L, L + 1, size=shape) * (rng.random(shape) < 0.05)
    cases.append(("sparse", _tensor(levels(sparse), k_rand, cb, d, in_features), xrand()))
    dense = rng.integers(1, L + 1, size=shape) * rng.choice([-1, 1], size=shape)
    cases.append(("dense", _tensor(levels(dense), k_rand, cb, d, in_features), xrand()))
    return cases


def random_case(rng: np.random.Generator, d: int, out_features: int, in_features: int,
                n: int, mode: str = "tritllm-v2") -> tuple[TritTensor, np.ndarray]:
    """A seeded random matrix quantized with the codec, and int8 activations.

    The weight distribution is drawn too (gaussian, heavy-tailed, or with dead groups), so
    codebooks, sparsity and scales vary from case to case.
    """
    kind = rng.integers(0, 3)
    w = rng.standard_normal((out_features, in_features))
    if kind == 1:
        w = rng.standard_t(3, size=w.shape)
    elif kind == 2:
        w = w * (rng.random((out_features, 1)) < 0.8) * (rng.random(w.shape) < 0.7)
    if not np.any(w):
        w[0, 0] = 1.0
    t = quantize_matrix(w.astype(np.float32), d, mode)
    x = rng.standard_normal((n, in_features)) * rng.uniform(0.1, 10)
    xq, _ = golden.quantize_activations(x, t.in_padded)
    return t, xq


# --- files ------------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(a: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def write_set(path: str, cases: list[VectorCase], meta: dict | None = None,
              overwrite: bool = False) -> str:
    """Write a vector set directory atomically (temp dir, then rename); returns the path."""
    path = os.path.abspath(path)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise TritforgeError(f"vector set {path}: duplicate case names")
    if os.path.exists(path) and not overwrite:
        raise TritforgeError(f"vector set {path}: already exists (pass overwrite=True)")
    with atomic_folder(path) as tmp:
        entries = []
        for c in cases:
            t = c.tensor
            blobs = {"beats": (f"{c.name}.beats.bin", np.ascontiguousarray(c.beats, np.uint8).tobytes()),
                     "xq": (f"{c.name}.xq.npy", _npy_bytes(np.ascontiguousarray(c.xq, np.int8))),
                     "acc": (f"{c.name}.acc.npy", _npy_bytes(np.ascontiguousarray(c.expected, np.int64)))}
            for fname, data in blobs.values():
                with open(os.path.join(tmp, fname), "wb") as f:
                    f.write(data)
            entries.append({
                "name": c.name, "hwconfig": c.hwconfig, "depth": t.depth, "rows": c.rows,
                "shape": list(t.shape), "in_padded": t.in_padded, "mode": t.mode,
                "n": int(c.xq.shape[0]), "tiles": int(c.beats.shape[0]),
                "groups": int(c.beats.shape[1]), "beat_bytes": int(c.beats.shape[2]),
                "codebook": t.codebook.to_meta(), "codebook_words": [list(w) for w in c.codebook_words()],
                "cycles": None if c.cycles is None else int(c.cycles), "stalls": c.stalls,
                "files": {key: {"file": fname, "sha256": _sha(data)}
                          for key, (fname, data) in blobs.items()},
            })
        doc = {"format": FORMAT, "version": VERSION, "meta": meta or {}, "cases": entries}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(doc, f, indent=1)
    return path


@dataclass
class VectorSet:
    path: str
    meta: dict
    cases: list[VectorCase]

    def case(self, name: str) -> VectorCase:
        for c in self.cases:
            if c.name == name:
                return c
        raise TritforgeError(f"vector set {self.path}: no case {name!r}")

    def __iter__(self):
        return iter(self.cases)

    def __len__(self):
        return len(self.cases)


def _read_blob(path: str, entry: dict, key: str) -> bytes:
    try:
        spec = entry["files"][key]
        with open(os.path.join(path, spec["file"]), "rb") as f:
            data = f.read()
    except (KeyError, TypeError):
        raise TritforgeError(f"vector set {path}: case {entry.get('name')!r} lists no {key} file") from None
    except OSError as exc:
        raise TritforgeError(f"vector set {path}: cannot read {key} of case "
                             f"{entry.get('name')!r} ({exc.strerror})") from None
    if _sha(data) != spec.get("sha256"):
        raise TritforgeError(f"vector set {path}: {spec['file']} does not match its SHA-256")
    return data


def _load_npy(data: bytes, what: str, dtype) -> np.ndarray:
    import io
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise TritforgeError(f"{what}: not a .npy array ({exc})") from None
    if a.dtype != dtype:
        raise TritforgeError(f"{what}: dtype {a.dtype}, expected {np.dtype(dtype)}")
    return a


def read_set(path: str, names: list[str] | None = None) -> VectorSet:
    """Read (and check) a vector set; ``names`` restricts it to some cases."""
    path = os.path.abspath(path)
    try:
        with open(os.path.join(path, "meta.json")) as f:
            doc = json.load(f)
    except OSError as exc:
        raise TritforgeError(f"vector set {path}: cannot read meta.json ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise TritforgeError(f"vector set {path}: meta.json is not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TritforgeError(f"vector set {path}: format {doc.get('format') if isinstance(doc, dict) else None!r}, "
                             f"expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise TritforgeError(f"vector set {path}: version {doc.get('version')!r}, expected {VERSION}")
    cases = []
    for e in doc.get("cases", []):
        if names is not None and e.get("name") not in names:
            continue
        try:
            d, rows = int(e["depth"]), int(e["rows"])
            tiles, ng, nb = int(e["tiles"]), int(e["groups"]), int(e["beat_bytes"])
            shape = (int(e["shape"][0]), int(e["shape"][1]))
            cb = Codebook.from_meta(e["codebook"])
            name, hw, mode = e["name"], dict(e["hwconfig"]), e.get("mode", "tritllm-v2")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TritforgeError(f"vector set {path}: malformed case entry ({exc!r})") from None
        what = f"vector set {path}: case {name}"
        raw = np.frombuffer(_read_blob(path, e, "beats"), dtype=np.uint8)
        if nb != layout.beat_bytes(d, rows) or raw.size != tiles * ng * nb:
            raise TritforgeError(f"{what}: {raw.size} weight-stream bytes, expected "
                                 f"{tiles}x{ng}x{layout.beat_bytes(d, rows)}")
        beats = raw.reshape(tiles, ng, nb)
        q, k = layout.decode_stream(beats, d, rows)
        q = q.transpose(0, 2, 1, 3).reshape(tiles * rows, ng * layout.GROUP)[:shape[0]]
        k = k.transpose(0, 2, 1).reshape(tiles * rows, ng)[:shape[0]]
        words = [(i, int(cb.mantissa[i]), int(cb.left_shift[i])) for i in range(layout.CODEBOOK_SIZE)]
        if [tuple(w) for w in e.get("codebook_words", [])] != words:
            raise TritforgeError(f"{what}: codebook words do not match the codebook endpoints")
        t = TritTensor(q, k, cb, d, shape, mode)
        xq = _load_npy(_read_blob(path, e, "xq"), f"{what} activations", np.int8)
        acc = _load_npy(_read_blob(path, e, "acc"), f"{what} expected accumulators", np.int64)
        if xq.ndim != 2 or acc.shape != (xq.shape[0], shape[0]):
            raise TritforgeError(f"{what}: activations {xq.shape} and expected {acc.shape} do not match")
        cases.append(VectorCase(name, t, xq, acc, hw, e.get("cycles"), dict(e.get("stalls") or {}), beats))
    if names is not None and len(cases) != len(set(names)):
        missing = sorted(set(names) - {c.name for c in cases})
        raise TritforgeError(f"vector set {path}: no cases {missing}")
    return VectorSet(path, doc.get("meta", {}), cases)
