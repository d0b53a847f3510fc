"""One point of a sweep (``fpga.sweep``, ``fpga.unitsweep``), as a Dask worker runs it.

A point is a *spec*: a JSON-able dict of every input that decides its result. An engine
point's: the HwConfig, target, seed, clock constraint, decoder style, primitive set,
wrapper, router, whether nextpnr runs, the tool versions and ``source_digest``: the digest
of the sources of the modules that build the engine and run the flow. A unit point's
(``fpga.unitsynth``; its spec has ``unit``): the unit, its lanes, target, seed, clock
constraint, router, whether nextpnr runs, the tool versions and the digest of the unit
flow's sources.
``point_key`` hashes it; the sweep caches each result under that key.

``run_point`` (the task the sweep submits) runs the point in a child process of its own
(``python -m tritforge.fpga.sweeppoint DIR``) in a temporary folder, so that

* a point that exceeds its time limit is stopped whole: the child leads a process group
  of its own, and its Yosys and nextpnr runs are in that group, which is killed;
* the child outlives nothing: it watches its parent and kills its group when the worker
  that started it is gone (a sweep interrupted with Ctrl-C or SIGTERM shuts its cluster
  down; a worker can also be lost);
* every point starts from a fresh interpreter (Amaranth's elaboration of a large engine
  takes much memory) with no shared state between points of one worker.

The task returns a *record*: the spec the point was built from (with the worker's tool
versions and source digest: where they differ from the sweep's, ``note`` says so and the
record's ``key`` is that spec's), ``status`` (``ok``; ``failed``: the flow stopped with an
error, e.g. the design does not fit the device or a tool failed; ``timeout``; ``crashed``:
the child died), the one-line ``error``, the run time, the flow's ``report`` and the point's files
(``report.json``, ``synth.ys``, the tool logs gzip-compressed). Everything travels in the
record, so a worker needs no file system shared with the sweep (``--scheduler`` on other
machines).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

#: the files of the flow's folder a record carries: kept as they are, or gzip-compressed
KEEP_FILES = ("report.json", "synth.ys")
GZIP_FILES = ("yosys.log", "nextpnr.log")

#: the modules the flow starts from: the digest of their sources and of every tritforge
#: module they import (directly or not, at the top or inside a function) is part of every
#: point's key, so a changed generator or flow gives a new key and no cached result of
#: older RTL is reused, while edits elsewhere (other units, the CLI) keep the cache valid
FLOW_MODULES = ("tritforge.fpga.synthtop", "tritforge.fpga.iotop")
#: the same for a unit point: the unit flow and (imported inside its functions) every unit
UNIT_FLOW_MODULES = ("tritforge.fpga.unitsynth",)


def _module_file(name: str) -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _module_level(body: list):
    """The statements of a module that run when it is imported (not function or class bodies)."""
    import ast

    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for part in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, part, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _imports(name: str, path: str) -> set[str]:
    """The tritforge modules ``path`` (module ``name``) imports: a module's imports anywhere
    in its source (a function's imports run when the flow calls it); a package's
    (``__init__.py``) only those that run when it is imported, as it is in the closure only
    because its modules are (its functions serve other commands)."""
    import ast

    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in (_module_level(tree.body) if is_package else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)   # ``from pkg import module``
    return {m for m in found if m == "tritforge" or m.startswith("tritforge.")}


def source_files(modules: tuple[str, ...] = FLOW_MODULES) -> dict[str, str]:
    """Module name -> file of ``modules`` and every tritforge module (and package) they
    import, found by reading their sources (nothing is imported but the packages)."""
    files, todo = {}, list(modules)
    while todo:
        name = todo.pop()
        if name in files:
            continue
        parent = name.rpartition(".")[0]
        if parent and parent not in files:
            todo += [name, parent]       # the package first
            continue
        if parent and (files[parent] is None or not files[parent].endswith("__init__.py")):
            files[name] = None           # ``from module import name``: not a module
            continue
        files[name] = path = _module_file(name)
        if path is not None:
            todo += sorted(_imports(name, path))
    return {k: v for k, v in files.items() if v is not None}


def source_digest(modules: tuple[str, ...] = FLOW_MODULES) -> str:
    """SHA-256 over the sources of ``source_files(modules)``."""
    h = hashlib.sha256()
    for name, path in sorted(source_files(modules).items()):
        with open(path, "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def point_key(spec: dict) -> str:
    """The cache key of a point: the hash of its spec's canonical JSON."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


# --- the task (runs on a worker) ---------------------------------------------------------

def run_point(spec: dict, timeout_s: float | None = None) -> dict:
    """Run one point in a child process (module docstring); return its record."""
    start = time.monotonic()
    record = {"key": point_key(spec), "spec": spec, "status": None, "error": None, "note": None,
              "seconds": None, "report": None, "files": {}, "worker": socket.gethostname()}
    tmp = tempfile.mkdtemp(prefix="tritforge-point-")
    try:
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        with open(os.path.join(tmp, "child.log"), "wb") as log:
            child = subprocess.Popen([sys.executable, "-m", "tritforge.fpga.sweeppoint", tmp,
                                      str(os.getpid())],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            try:
                child.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(child)
                record.update(status="timeout",
                              error=f"stopped after {timeout_s:g} s (--timeout-per-point)")
            except BaseException:          # the worker is shutting down: leave nothing running
                _kill_group(child)
                raise
        if record["status"] is None:
            record.update(_child_result(tmp, child.returncode))
            record["key"] = point_key(record["spec"])       # the spec it was built from
        flow = os.path.join(tmp, "flow")
        if record["status"] == "ok":
            with open(os.path.join(flow, "report.json")) as f:
                record["report"] = json.load(f)
            for name in KEEP_FILES + GZIP_FILES:
                path = os.path.join(flow, name)
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        data = f.read()
                    if name in GZIP_FILES:
                        record["files"][name + ".gz"] = gzip.compress(data, mtime=0)
                    else:
                        record["files"][name] = data
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record["seconds"] = round(time.monotonic() - start, 1)
    return record


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def _child_result(tmp: str, returncode: int) -> dict:
    path = os.path.join(tmp, "result.json")
    if returncode == 0 and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    with open(os.path.join(tmp, "child.log"), errors="replace") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    why = lines[-1] if lines else "no output"
    how = (f"killed by {signal.Signals(-returncode).name}" if returncode < 0
           else f"exit {returncode}")
    return {"status": "crashed", "error": one_line(f"point process {how}: {why}")}


# --- the child process -------------------------------------------------------------------

def _watch_parent(parent: int, folder: str) -> None:
    """Once ``parent`` (the worker) is gone, remove the point's ``folder`` (nobody else
    will) and kill this process group: this process and its Yosys or nextpnr."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        shutil.rmtree(folder, ignore_errors=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def _child(folder: str, parent: int) -> int:
    _watch_parent(parent, folder)
    from ..errors import TritforgeError
    from .synth import tool_versions

    with open(os.path.join(folder, "spec.json")) as f:
        spec = json.load(f)
    # the point is built with this worker's tools and sources; where they differ from the
    # sweep's (changed since it started, another machine) the record says so and carries
    # the spec it was really built from, which keys its cache entry
    tools = tool_versions()
    digest = source_digest(UNIT_FLOW_MODULES if "unit" in spec else FLOW_MODULES)
    notes = []
    if tools != spec["tools"]:
        notes.append(f"built with this worker's tools {tools}, not the sweep's {spec['tools']}")
    if digest != spec["source"]:
        notes.append(f"built from sources changed since the sweep started (digest {digest[:12]}, "
                     f"the sweep's {spec['source'][:12]})")
    result = {"status": "ok", "error": None, "spec": {**spec, "tools": tools, "source": digest},
              "note": one_line("; ".join(notes)) if notes else None}
    try:
        _build(spec, os.path.join(folder, "flow"))
    except TritforgeError as exc:
        result.update(status="failed", error=one_line(exc))
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump(result, f)
    return 0


def _build(spec: dict, flow: str) -> None:
    """Run the flow of an engine point or (``unit`` in its spec) a unit point into ``flow``."""
    if "unit" in spec:
        from .unitsynth import synthesize_unit

        synthesize_unit(spec["unit"], spec["target"], flow, lanes=spec["lanes"], seed=spec["seed"],
                        freq=spec["freq_mhz"], router=spec["router"], place=spec["place"])
        return
    from ..hwconfig import HwConfig
    from .synthtop import synthesize_engine

    hw = HwConfig.from_dict(spec["hwconfig"], "point")
    synthesize_engine(hw, spec["target"], flow, spec["freq_mhz"], spec["seed"], spec["decoder"],
                      spec["wrapper"], None, spec["router"], primitives=spec["primitives"],
                      place=spec["place"])


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], int(sys.argv[2])))
