"""Fuzzing the README's promise: "Bad input ends with one line on stderr naming the input and
exit status 2, and leaves no partial output."

Every input kind is mutated from a valid instance, seeded (``random.Random(seed)``) or
drawn by hypothesis, and run through the CLI in this process (``cli.main``); interrupts
run the CLI as a subprocess and send SIGINT or SIGTERM at a random time. Each case ends in
one of:

* ``accepted``   exit 0, outputs complete, no staging folder left;
* ``refused``    exit 2, one line on stderr that names the input, every output folder as
                 it was (an existing output untouched);
* a failure:     ``traceback`` (an exception escaped), ``accepted-malformed`` (a mutation
                 that breaks the document's rules ended in exit 0), ``message`` (not one
                 line, or the input not named), ``partial`` (outputs changed or staging left
                 after a refusal or an interrupt).

``make test`` runs a few hundred cases (the default selection); ``make test-full`` adds the
``slow`` tests, over 2,000 more. ``TRITFORGE_FUZZ_REPORT=FILE`` appends each test's counts
by input kind to FILE (one JSON line per test), for the summary table.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritforge import cli
from tritforge.atomic import STAGE_PREFIX
from tritforge.codec import packfile
from tritforge.codec.quantize import quantize_matrix
from tritforge.hwconfig import HwConfig

FAILURES = ("traceback", "accepted-malformed", "message", "partial")

# --- running one case --------------------------------------------------------------------------


def _tree(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), root) + "/"] = b""
    return out


def _leftovers(root) -> list[str]:
    return [p for p in _tree(root) if os.path.basename(p.rstrip("/")).startswith((STAGE_PREFIX, ".tmp-"))]


class Tally:
    """Outcomes of the cases of one input kind."""

    def __init__(self, kind: str):
        self.kind, self.counts, self.examples = kind, {}, []

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome in FAILURES and len(self.examples) < 5:
            self.examples.append(f"{outcome}: {detail}")

    def check(self, minimum: int) -> None:
        path = os.environ.get("TRITFORGE_FUZZ_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"kind": self.kind, **self.counts}) + "\n")
        total = sum(self.counts.values())
        assert total >= minimum, (self.kind, self.counts)
        assert not self.examples, f"{self.kind} {self.counts}:\n" + "\n".join(self.examples)


def run_case(tally: Tally, argv: list[str], names: list[str], watch: str, malformed: bool) -> str:
    """Run ``tritforge argv`` in this process and classify it; ``names``: strings of which the
    error line must contain one (the input's path or option); ``watch``: the folder that
    holds the outputs; ``malformed``: the input breaks its document's rules."""
    before = _tree(watch)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(argv)
            except SystemExit as exc:      # argparse
                rc = exc.code
    except Exception:
        tally.add("traceback", f"{argv}: {traceback.format_exc().splitlines()[-1]}")
        return "traceback"
    text = err.getvalue()
    after = _tree(watch)
    if rc == 0:
        if _leftovers(watch):
            tally.add("partial", f"{argv}: staging left {_leftovers(watch)}")
            return "partial"
        if malformed:
            tally.add("accepted-malformed", f"{argv}")
            return "accepted-malformed"
        tally.add("accepted")
        return "accepted"
    lines = text.splitlines()
    if rc != 2 or len(lines) != 1 or "error:" not in lines[0] or not any(n in lines[0] for n in names):
        tally.add("message", f"{argv}: rc {rc}: {text[:300]!r}")
        return "message"
    if after != before:
        changed = sorted(set(after) ^ set(before) | {k for k in after if after.get(k) != before.get(k)})
        tally.add("partial", f"{argv}: changed {changed[:4]}")
        return "partial"
    tally.add("refused")
    return "refused"


# --- mutation of JSON documents --------------------------------------------------------------------

#: values of the wrong JSON type for a field that holds a number or a string
WRONG_FOR_NUMBER = (None, True, False, "4", [], {}, [1, 2], {"a": 1})
WRONG_FOR_STRING = (None, True, 4, 2.5, [], {})
#: values that may or may not suit a number field (a case must not end in a traceback)
ODD_NUMBERS = (0, -1, -5, 1, 2.5, 1e300, -1e300, 10 ** 30, 2 ** 63, 3, 16, 17, 1e-300)


def _paths(doc, prefix=()):
    """Every (path, value) leaf of a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix, doc


def _set(doc, path, value):
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _drop(doc, path):
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return doc


def mutate_json(rng: random.Random, doc: dict, typed, nullable=lambda path: False) -> tuple[str | bytes, bool]:
    """One mutation of ``doc``: (the file's text or bytes, whether it breaks the rules).
    ``typed(path)``: the path is a field the document types (its rules must refuse a wrong
    type there), else it is the writer's own (any value may be accepted); ``nullable(path)``:
    null is a valid value there."""
    leaves = [(p, v) for p, v in _paths(doc) if p]
    kind = rng.choice(("wrong-type", "wrong-type", "odd-number", "drop", "unknown", "root", "syntax",
                       "deep", "digits", "utf8", "huge-string", "nan"))
    if kind in ("wrong-type", "odd-number", "drop"):
        path, value = rng.choice(leaves)
        strict = typed(path)
        if kind == "drop":
            return json.dumps(_drop(doc, path)), False
        if kind == "odd-number":
            return json.dumps(_set(doc, path, rng.choice(ODD_NUMBERS))), False
        if isinstance(value, bool) or value is None:
            return json.dumps(_set(doc, path, rng.choice(("x", 3, [])))), False
        wrong = rng.choice(WRONG_FOR_NUMBER if isinstance(value, (int, float)) else WRONG_FOR_STRING)
        return json.dumps(_set(doc, path, wrong)), strict and not (wrong is None and nullable(path))
    if kind == "unknown":
        return json.dumps({**doc, "zz_unknown_field": 1}), False
    if kind == "root":
        return json.dumps(rng.choice(([], 5, "text", None, [doc]))), True
    if kind == "syntax":
        text = json.dumps(doc)
        return text[: rng.randrange(1, max(2, len(text) - 1))], True
    if kind == "deep":
        n = rng.choice((40, 1000, 30000))
        return "[" * n + "]" * n, True
    if kind == "digits":
        path, _ = rng.choice(leaves)
        return json.dumps(_set(doc, path, "__SENTINEL__")).replace('"__SENTINEL__"', "9" * 10000), True
    if kind == "utf8":
        return b"\xff\xfe" + json.dumps(doc).encode(), True
    if kind == "huge-string":
        path, _ = rng.choice(leaves)
        return json.dumps(_set(doc, path, "x" * (1 << 21))), True
    path, _ = rng.choice(leaves)
    return json.dumps(_set(doc, path, "__SENTINEL__")).replace('"__SENTINEL__"', rng.choice(("NaN", "Infinity", "1e999"))), True


def _write(path, content) -> None:
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)


# --- the input kinds ------------------------------------------------------------------------------

HW_DOC = HwConfig().to_dict()


def _accel_doc():
    from tritforge.accelconfig import AccelConfig

    return AccelConfig().to_dict()


def _shape_doc():
    return {"model_type": "llama", "hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
            "max_position_embeddings": 512, "rms_norm_eps": 1e-5}


def _workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "existing.json").write_text('{"old": true}\n')
    return work


def fuzz_estimate_input(tmp_path, seeds, tally, option, doc, mutate, stem, typed=lambda p: True):
    """A document ``tritforge estimate OPTION FILE`` reads: each seed mutates ``doc`` with
    ``mutate`` (``mutate_json`` / ``mutate_toml``) at the paths ``typed`` admits."""
    work = _workdir(tmp_path)
    suffix = ".json" if mutate is mutate_json else ".toml"
    for seed in seeds:
        content, malformed = mutate(random.Random(seed), doc, typed)
        src = tmp_path / f"{stem}{seed}{suffix}"
        _write(src, content)
        run_case(tally, ["estimate", "--model-config", "smollm2-135m", option, str(src),
                         "--json", str(work / "existing.json")], [str(src)], str(work), malformed)


def fuzz_hwconfig(tmp_path, seeds, tally):
    """A HwConfig JSON as ``estimate --hw`` (every field typed)."""
    fuzz_estimate_input(tmp_path, seeds, tally, "--hw", HW_DOC, mutate_json, "hw")


def fuzz_accelconfig(tmp_path, seeds, tally):
    fuzz_estimate_input(tmp_path, seeds, tally, "--accel", _accel_doc(), mutate_json, "accel")


def fuzz_model_config(tmp_path, seeds, tally):
    """An HF config.json as ``estimate --model-config`` (the shape fields typed)."""
    from tritforge.documents.modelshape import REQUIRED, ModelShape

    work = _workdir(tmp_path)
    for seed in seeds:
        rng = random.Random(seed)
        content, malformed = mutate_json(rng, _shape_doc(), lambda p: p[0] in ModelShape.model_fields,
                                         lambda p: p[0] not in REQUIRED)
        folder = tmp_path / f"m{seed}"
        folder.mkdir()
        _write(folder / "config.json", content)
        run_case(tally, ["estimate", "--model-config", str(folder / "config.json"),
                         "--json", str(work / "existing.json")], [str(folder)], str(work), malformed)


@pytest.fixture(scope="module")
def result_doc(tmp_path_factory):
    path = tmp_path_factory.mktemp("result") / "r.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["estimate", "--model-config", "smollm2-135m", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    doc["layers"] = doc["layers"][:14]          # two blocks: enough, and fast to draw
    return doc


def _result_typed(path) -> bool:
    from tritforge.documents import result as r

    model = {"layers": r.Layer, "per_token": r.PerToken, "board": r.BoardInfo, "energy_table": r.TableInfo}
    if path[0] not in model:
        return False
    key = path[2] if path[0] == "layers" and len(path) > 2 else (path[1] if len(path) > 1 else None)
    fields = {(f.alias or n) for n, f in model[path[0]].model_fields.items()}
    if key not in fields:
        return False
    leaf_depth = 3 if path[0] == "layers" else 2
    return len(path) == leaf_depth or key in ("energy_pj", "energy_breakdown_j")


def fuzz_result(tmp_path, seeds, tally, doc, accepted_budget=3):
    """The run-result JSON as ``report`` (accepted cases draw the report, so at most
    ``accepted_budget`` of the harmless mutations are run)."""
    work = _workdir(tmp_path)
    (work / "rep").mkdir()
    (work / "rep" / "report.md").write_text("old report\n")
    for seed in seeds:
        rng = random.Random(seed)
        content, malformed = mutate_json(rng, doc, _result_typed)
        if not malformed:
            if accepted_budget <= 0:
                continue
            accepted_budget -= 1
        src = tmp_path / f"r{seed}.json"
        _write(src, content)
        run_case(tally, ["report", str(src), "--out", str(work / "rep")], [str(src)], str(work), malformed)


# --- packed files -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def packed_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i}.proj": quantize_matrix(rng.standard_normal((8, 40)).astype(np.float32), 2)
               for i in range(2)}
    path = tmp_path_factory.mktemp("packed") / "m.trit.safetensors"
    meta = {"source": "tiny", "architecture": "llama", "config": "uniform-d2", "mode": "tritllm-v2",
            packfile.RECORDED_KEY: {n: [1.0, 10.0] for n in tensors}}
    packfile.write_packed(str(path), tensors, meta)
    return str(path)


def _rewrite(path, arrays, meta, out):
    from safetensors.numpy import save_file

    save_file(arrays, out, metadata=meta)


def mutate_packed(rng: random.Random, src: str, out: str) -> bool:
    """Write a mutation of the packed file ``src`` to ``out``; whether it is malformed."""
    from safetensors import safe_open

    with safe_open(src, "np") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    raw = open(src, "rb").read()
    kind = rng.choice(("entry", "entry", "note", "dtype", "shape", "extra", "missing", "truncate",
                       "flip-data", "flip-header", "meta-json"))
    if kind in ("entry", "note"):
        key = "tensors" if kind == "entry" else "model"
        doc = json.loads(meta[key])
        text, malformed = mutate_json(rng, doc, lambda p: kind == "entry" or p[0] in (
            "source", "architecture", "config", "mode", packfile.RECORDED_KEY))
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
            malformed = True
        if kind == "note" and not malformed and rng.random() < 0.3:
            text, malformed = json.dumps({**doc, packfile.RECORDED_KEY: {"layers.0.proj": [1.0, 2.0]}}), True
        meta[key] = text
        _rewrite(out, arrays, meta, out)
        return malformed
    if kind == "dtype":
        name = rng.choice(sorted(arrays))
        other = [d for d in (np.int8, np.bool_, np.uint8, np.uint16, np.float32, np.int64) if d != arrays[name].dtype]
        arrays[name] = arrays[name].astype(rng.choice(other))
        _rewrite(out, arrays, meta, out)
        return True
    if kind == "shape":
        name = rng.choice(sorted(arrays))
        a = arrays[name]
        arrays[name] = rng.choice((a[:-1], np.concatenate([a, a[:1]]), a.reshape(1, -1)))
        _rewrite(out, arrays, meta, out)
        return True
    if kind == "extra":
        arrays["stray.tensor"] = np.zeros(3, np.uint8)
        _rewrite(out, arrays, meta, out)
        return True
    if kind == "missing":
        arrays.pop(rng.choice(sorted(arrays)))
        _rewrite(out, arrays, meta, out)
        return True
    if kind == "truncate":
        _write(out, raw[: rng.randrange(0, len(raw) - 1)])
        return True
    if kind == "meta-json":
        meta[rng.choice(("tensors", "model"))] = rng.choice(("[]", "{", "7", "[" * 5000 + "]" * 5000, '"x"'))
        _rewrite(out, arrays, meta, out)
        return True
    n = int.from_bytes(raw[:8], "little")
    data = bytearray(raw)
    if kind == "flip-data":
        i = rng.randrange(8 + n, len(raw))
        data[i] ^= 1 << rng.randrange(8)
        _write(out, bytes(data))
        return True
    i = rng.randrange(0, 8 + n)                                  # the header: may stay valid
    data[i] ^= 1 << rng.randrange(8)
    _write(out, bytes(data))
    return False


def fuzz_packed(tmp_path, seeds, tally, src):
    work = _workdir(tmp_path)
    for seed in seeds:
        rng = random.Random(seed)
        out = str(tmp_path / f"p{seed}.safetensors")
        malformed = mutate_packed(rng, src, out)
        argv = rng.choice((["inspect", out], ["inspect", out, "--json"],
                           ["simulate", "--packed", out, "--models", "fast"]))
        run_case(tally, argv, [out], str(work), malformed)


# --- model inputs: safetensors folders and GGUF files -----------------------------------------------

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from tinymodels import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from test_checkpoint import write_tiny_gguf
    from tinymodels import tiny_model

    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path, tiny_model())
    return str(path)


def _quantize(tally, model, work, malformed, names):
    return run_case(tally, ["quantize", "--model", model, "--configs", "uniform-d2,uniform-d3", "--out",
                            str(work / "q"), "--no-export", "--no-ppl", "--no-packed-model", "--quiet"],
                    names, str(work), malformed)


def fuzz_model_folder(tmp_path, seeds, tally, folder):
    import shutil

    from tritforge.documents.modelshape import ModelShape

    config = json.loads(open(os.path.join(folder, "config.json")).read())
    work = _workdir(tmp_path)
    for seed in seeds:
        rng = random.Random(seed)
        copy = tmp_path / f"f{seed}"
        shutil.copytree(folder, copy)
        kind = rng.choice(("config", "config", "weights-truncate", "weights-flip", "index"))
        if kind == "config":
            content, malformed = mutate_json(rng, config, lambda p: p[0] in ModelShape.model_fields or p == ("model_type",))
            if rng.random() < 0.3:
                key = rng.choice(("vocab_size", "hidden_size", "num_attention_heads", "num_hidden_layers"))
                content, malformed = json.dumps({**config, key: rng.choice((-5, 0, -1))}), True
            _write(copy / "config.json", content)
        elif kind == "index":
            _write(copy / "model.safetensors.index.json", rng.choice(("{", "[]", '{"weight_map": 3}',
                                                                       '{"weight_map": {"a": "../x"}}')))
            os.remove(copy / "model.safetensors")
            malformed = True
        else:
            w = copy / "model.safetensors"
            raw = bytearray(w.read_bytes())
            if kind == "weights-truncate":
                raw = raw[: rng.randrange(0, len(raw) - 1)]
                malformed = True
            else:
                i = rng.randrange(0, 8 + int.from_bytes(raw[:8], "little"))
                raw[i] ^= 1 << rng.randrange(8)
                malformed = False
            w.write_bytes(bytes(raw))
        _quantize(tally, str(copy), work, malformed, [str(copy)])


def fuzz_gguf(tmp_path, seeds, tally, src):
    raw = open(src, "rb").read()
    work = _workdir(tmp_path)
    for seed in seeds:
        rng = random.Random(seed)
        data = bytearray(raw)
        kind = rng.choice(("truncate", "flip", "flip", "zero-run"))
        if kind == "truncate":
            data = data[: rng.randrange(0, len(raw) - 1)]
        elif kind == "flip":
            i = rng.randrange(0, min(len(raw), 2048))         # the header and key/value metadata
            data[i] ^= 1 << rng.randrange(8)
        else:
            i = rng.randrange(0, min(len(raw), 2048))
            data[i:i + 8] = b"\xff" * 8
        path = tmp_path / f"g{seed}.gguf"
        path.write_bytes(bytes(data))
        _quantize(tally, str(path), work, kind == "truncate", [str(path)])


# --- command-line arguments ------------------------------------------------------------------------

VALUES = ("0", "-1", "1", "3", "17", "x", "", "1e9", "1000000000", "2.5", "nan", "inf", "-0", "99999999999999999999",
          "576x1536", "1000000x100000", "0x5", "default", "/nonexistent", "a,b", "fast,step,zzz")


def fuzz_cli(tmp_path, seeds, tally):
    """Random options with random values for the commands that finish fast."""
    work = _workdir(tmp_path)
    commands = {
        "estimate": ["--model-config", "--depth", "--board", "--context", "--prompt-tokens", "--vectors",
                     "--prefill-vectors", "--zero-trit-fraction", "--lm-head", "--hw", "--accel",
                     "--energy-table"],
        "simulate": ["--shape", "--depth", "--rows", "--vectors", "--tokens", "--models", "--p-valid",
                     "--p-ready", "--seed", "--max-in-features", "--max-out-features", "--clock-mhz",
                     "--shift-limit", "--mode", "--packed", "--layer"],
        "report": ["--out"],
        "inspect": ["--source"],
    }
    base = {"estimate": ["--model-config", "smollm2-135m"], "simulate": ["--shape", "16x32", "--models", "fast"],
            "report": [str(tmp_path / "missing.json"), "--out", str(work / "rep")], "inspect": [str(work)]}
    for seed in seeds:
        rng = random.Random(seed)
        cmd = rng.choice(sorted(commands))
        argv = [cmd] + list(base[cmd])
        names = []
        for _ in range(rng.randint(1, 3)):
            opt = rng.choice(commands[cmd])
            value = rng.choice(VALUES)
            argv += [opt, value]
            names += [opt, value or "''"]
        names += [a for a in argv if a.startswith(("/", "--"))] + ["argument", "given", "expected"]
        run_case(tally, argv, names, str(work), False)


# --- interrupts -----------------------------------------------------------------------------------

def interrupt_case(tmp_path, tally, seed) -> None:
    """``estimate --json --report`` over existing outputs, interrupted at a random time: the
    outputs afterwards are the old ones or complete new ones, never a mix, and no staging
    folder is left."""
    rng = random.Random(seed)
    work = tmp_path / f"i{seed}"
    work.mkdir()
    (work / "r.json").write_text('{"old": true}\n')
    (work / "rep").mkdir()
    (work / "rep" / "report.md").write_text("old\n")
    before = _tree(work)
    sig = rng.choice((signal.SIGINT, signal.SIGTERM))
    argv = [sys.executable, "-m", "tritforge.cli", "estimate", "--model-config", "qwen2.5-7b",
            "--json", "r.json", "--report", "rep"]
    p = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(rng.uniform(0.5, 3.0))
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    after = _tree(work)
    if p.returncode == -sig and not err and after == before:
        tally.add("killed before the CLI started")       # the default disposition: nothing written
        return
    if "Traceback" in err:
        tally.add("traceback", f"seed {seed}: {err[-300:]!r}")
        return
    if _leftovers(work):
        tally.add("partial", f"seed {seed}: {_leftovers(work)}")
        return
    complete = (json.loads(after["r.json"]).get("per_token") is not None
                and all(f"rep/{n}" in after for n in ("report.html", "report.md", "result.json", "sweep.png"))
                and after["rep/report.md"] != b"old\n")
    if p.returncode == 0:
        tally.add("completed" if complete and not err else "partial", f"seed {seed}: rc 0 {err!r}")
        return
    lines = err.splitlines()
    if p.returncode != 128 + sig or len(lines) != 1 or "interrupted by" not in lines[0]:
        tally.add("message", f"seed {seed}: rc {p.returncode} {err!r}")
        return
    if after == before:
        tally.add("interrupted, untouched")
    elif complete:
        tally.add("interrupted after commit")
    else:
        tally.add("partial", f"seed {seed}: outputs mixed")



# --- TOML inputs: board descriptions and energy tables ------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v).replace("inf", "inf").replace("nan", "nan")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict, prefix: str = "") -> str:
    """``doc`` as TOML: its scalars and lists, then a [table] for each nested table."""
    head = "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in doc.items()
                   if not (isinstance(v, dict) and v))
    tables = "".join(f"\n[{prefix}{json.dumps(k)}]\n" + to_toml(v, f"{prefix}{json.dumps(k)}.")
                     for k, v in doc.items() if isinstance(v, dict) and v)
    return head + tables


def mutate_toml(rng: random.Random, doc: dict, typed) -> tuple[str | bytes, bool]:
    """One mutation of a TOML document ``doc`` (as ``mutate_json``; TOML has no null and its
    root is always a table, so those kinds are left out, and NaN and inf are TOML words)."""
    leaves = [(p, v) for p, v in _paths(doc) if p]
    kind = rng.choice(("wrong-type", "wrong-type", "wrong-type", "odd-number", "odd-number", "drop", "unknown",
                       "syntax", "deep", "digits", "utf8", "huge-string", "nan"))
    path, value = rng.choice(leaves)
    if kind == "drop":
        return to_toml(_drop(doc, path)), False
    if kind == "odd-number":
        return to_toml(_set(doc, path, rng.choice(ODD_NUMBERS))), False
    if kind == "wrong-type":
        if isinstance(value, bool):
            return to_toml(_set(doc, path, rng.choice(("x", 3, [])))), typed(path)
        pool = WRONG_FOR_NUMBER if isinstance(value, (int, float)) else WRONG_FOR_STRING
        wrong = rng.choice([w for w in pool if w is not None])
        return to_toml(_set(doc, path, wrong)), typed(path)
    if kind == "unknown":
        where = rng.choice([p[:-1] for p, _ in leaves if p and all(isinstance(x, str) for x in p)])
        node = doc
        for p in where:
            node = node[p]
        return to_toml(_set(doc, where + ("zz_unknown_field",), 1)), True
    if kind == "syntax":
        text = to_toml(doc)
        cut = rng.randrange(1, max(2, len(text) - 1))
        return text[:cut] + rng.choice(("", " = = 1", "[", '"')), False
    if kind == "deep":
        n = rng.choice((40, 1000, 30000))
        return "x = " + "[" * n + "]" * n + "\n" + to_toml(doc), True
    if kind == "digits":
        return to_toml(_set(doc, path, "__SENTINEL__")).replace('"__SENTINEL__"', "9" * 10000), True
    if kind == "utf8":
        return b"\xff\xfe" + to_toml(doc).encode(), True
    if kind == "huge-string":
        return to_toml(_set(doc, path, "x" * (1 << 21))), not isinstance(value, str)
    return to_toml(_set(doc, path, "__SENTINEL__")).replace('"__SENTINEL__"', rng.choice(("nan", "inf", "-inf"))), \
        typed(path)


def _board_doc() -> dict:
    import tomllib

    from tritforge.sim.boards import boards_folder

    return tomllib.loads(boards_folder().joinpath("kv260.toml").read_text())


def _table_doc() -> dict:
    import tomllib

    from tritforge.sim.energy import default_table_path

    with open(default_table_path(), "rb") as f:
        return tomllib.load(f)


def fuzz_board(tmp_path, seeds, tally):
    """A board description as ``estimate --board FILE`` (every key typed)."""
    fuzz_estimate_input(tmp_path, seeds, tally, "--board", _board_doc(), mutate_toml, "board")


def fuzz_energy_table(tmp_path, seeds, tally):
    """An energy table as ``estimate --energy-table FILE`` (every key typed but an action's
    ``bits`` and ``size``, which take a number or a name)."""
    fuzz_estimate_input(tmp_path, seeds, tally, "--energy-table", _table_doc(), mutate_toml, "table",
                        lambda p: not ({"bits", "size"} & set(p[2:3])))


# --- the tests ------------------------------------------------------------------------------------

def _seeds(n, offset=0):
    return range(offset, offset + n)


def test_fuzz_json_documents(tmp_path, result_doc):
    for name, fuzz, n in (("hwconfig", fuzz_hwconfig, 60), ("accelconfig", fuzz_accelconfig, 60),
                          ("model config.json", fuzz_model_config, 60)):
        tally = Tally(name)
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        fuzz(folder, _seeds(n), tally)
        tally.check(n)
    tally = Tally("run result")
    (tmp_path / "result").mkdir()
    fuzz_result(tmp_path / "result", _seeds(60), tally, result_doc, accepted_budget=2)
    tally.check(40)


def test_fuzz_toml_documents(tmp_path):
    for name, fuzz in (("board file", fuzz_board), ("energy table", fuzz_energy_table)):
        tally = Tally(name)
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        fuzz(folder, _seeds(40), tally)
        tally.check(40)


def test_fuzz_packed_files(tmp_path, packed_file):
    tally = Tally("packed file")
    fuzz_packed(tmp_path, _seeds(60), tally, packed_file)
    tally.check(60)


def test_fuzz_cli_arguments(tmp_path):
    tally = Tally("CLI arguments")
    fuzz_cli(tmp_path, _seeds(80), tally)
    tally.check(80)


def test_fuzz_model_inputs(tmp_path, tiny_folder, tiny_gguf):
    tally = Tally("safetensors folder")
    (tmp_path / "st").mkdir()
    fuzz_model_folder(tmp_path / "st", _seeds(6), tally, tiny_folder)
    tally.check(6)
    tally = Tally("GGUF file")
    (tmp_path / "gg").mkdir()
    fuzz_gguf(tmp_path / "gg", _seeds(6), tally, tiny_gguf)
    tally.check(6)


def test_fuzz_interrupts(tmp_path):
    tally = Tally("interrupt")
    for seed in _seeds(2):
        interrupt_case(tmp_path, tally, seed)
    tally.check(2)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=20)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(part=st.sampled_from(("layers", "per_token", "board", "energy_table", "hwconfig", "quality",
                             "context_sweep", "timing", "memory_fit", "tokens")), value=_json)
def test_fuzz_result_parts_hypothesis(tmp_path_factory, result_doc, part, value):
    """Any JSON value in place of a typed part of a run result: refused in one line, or drawn."""
    tmp = tmp_path_factory.mktemp("h")
    work = _workdir(tmp)
    src = tmp / "r.json"
    src.write_text(json.dumps({**result_doc, part: value}))
    tally = Tally("run result (hypothesis)")
    outcome = run_case(tally, ["report", str(src), "--out", str(work / "rep")], [str(src)], str(work), False)
    assert outcome in ("accepted", "refused"), tally.examples


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(sorted(HW_DOC) + ["lanes"]), _json, max_size=4))
def test_fuzz_hwconfig_hypothesis(tmp_path_factory, fields):
    """Any JSON values for HwConfig fields: refused in one line naming the file and field, or
    a valid HwConfig (each field then has the type and range its document gives)."""
    tmp = tmp_path_factory.mktemp("h")
    work = _workdir(tmp)
    src = tmp / "hw.json"
    src.write_text(json.dumps(fields))
    tally = Tally("hwconfig (hypothesis)")
    outcome = run_case(tally, ["estimate", "--model-config", "smollm2-135m", "--hw", str(src),
                               "--depth", str(fields.get("depth", 2)) if isinstance(fields.get("depth"), int)
                               and not isinstance(fields.get("depth"), bool) else "2"],
                       [str(src)], str(work), False)
    assert outcome in ("accepted", "refused"), tally.examples


# --- the long sweeps (make test-full) ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["hwconfig", "accelconfig", "model config.json"])
def test_fuzz_json_documents_long(tmp_path, name):
    fuzz = {"hwconfig": fuzz_hwconfig, "accelconfig": fuzz_accelconfig, "model config.json": fuzz_model_config}
    tally = Tally(name)
    fuzz[name](tmp_path, _seeds(400, 1000), tally)
    tally.check(400)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["board file", "energy table"])
def test_fuzz_toml_documents_long(tmp_path, name):
    fuzz = {"board file": fuzz_board, "energy table": fuzz_energy_table}
    tally = Tally(name)
    fuzz[name](tmp_path, _seeds(300, 1000), tally)
    tally.check(300)


@pytest.mark.slow
def test_fuzz_result_long(tmp_path, result_doc):
    tally = Tally("run result")
    fuzz_result(tmp_path, _seeds(400, 1000), tally, result_doc, accepted_budget=10)
    tally.check(250)


@pytest.mark.slow
def test_fuzz_packed_files_long(tmp_path, packed_file):
    tally = Tally("packed file")
    fuzz_packed(tmp_path, _seeds(400, 1000), tally, packed_file)
    tally.check(400)


@pytest.mark.slow
def test_fuzz_cli_arguments_long(tmp_path):
    tally = Tally("CLI arguments")
    fuzz_cli(tmp_path, _seeds(300, 1000), tally)
    tally.check(300)


@pytest.mark.slow
def test_fuzz_model_inputs_long(tmp_path, tiny_folder, tiny_gguf):
    tally = Tally("safetensors folder")
    (tmp_path / "st").mkdir()
    fuzz_model_folder(tmp_path / "st", _seeds(60, 1000), tally, tiny_folder)
    tally.check(60)
    tally = Tally("GGUF file")
    (tmp_path / "gg").mkdir()
    fuzz_gguf(tmp_path / "gg", _seeds(60, 1000), tally, tiny_gguf)
    tally.check(60)


@pytest.mark.slow
def test_fuzz_interrupts_long(tmp_path):
    tally = Tally("interrupt")
    for seed in _seeds(30, 1000):
        interrupt_case(tmp_path, tally, seed)
    tally.check(30)
