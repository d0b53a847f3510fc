"""README "Verification IP": its example bench, written out as it stands, runs on Verilator.

The section's ``sh`` block gives the commands (``tritforge generate ...``, ``python
run_bench.py``), its ``python`` blocks the files (first line ``# <name>.py``). They run in
a temporary folder; builds go to the pytest cache (``TRITFORGE_BUILD_DIR``), shared with
the cocotb engine tests (the example's config is their d2R4T1 build).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def example() -> tuple[list[list[str]], dict[str, str]]:
    """(commands, {file name: text}) of the README's Verification IP example."""
    body = section((ROOT / "README.md").read_text(), "Verification IP")
    commands, files = [], {}
    for lang, code in re.findall(r"^```(\w+)\n(.*?)^```", body, re.S | re.M):
        if lang == "sh":
            commands += [shlex.split(line[2:]) for line in code.splitlines() if line.startswith("$ ")]
        elif lang == "python":
            name = re.match(r"# (\w+\.py)\b", code)
            assert name, f"a python block without its file name: {code[:60]!r}"
            files[name.group(1)] = code
    return commands, files


def test_readme_example_parses():
    commands, files = example()
    assert sorted(files) == ["bench_gemv.py", "run_bench.py"]
    assert [c[0] for c in commands] == ["tritforge", "python"]
    bench = files["bench_gemv.py"].splitlines()
    assert len([ln for ln in bench if ln.strip() and not ln.startswith(("#", "import", "from"))]) <= 10


def test_readme_example_runs(request, tmp_path):
    commands, files = example()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cache = getattr(request.config, "cache", None)
    builds = Path(cache.mkdir("tritforge-cocotb")) if cache is not None else tmp_path / "builds"
    env = dict(os.environ, TRITFORGE_BUILD_DIR=str(builds))
    env.pop("PYTEST_CURRENT_TEST", None)
    bindir = Path(sys.executable).parent
    for cmd in commands:
        exe = {"tritforge": [str(bindir / "tritforge")], "python": [sys.executable]}[cmd[0]]
        r = subprocess.run(exe + cmd[1:], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=900)
        assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    xml = tmp_path / "out" / "run" / "results.xml"
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["random_matrix"]
    assert not any(list(c.iter("failure")) + list(c.iter("error")) for c in cases)
