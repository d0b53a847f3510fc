"""Packaging: one import package, no generic top-level names, normal and editable installs import."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    src = out / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "out", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, cwd=str(out))
    (path,) = [p for p in out.iterdir() if p.suffix == ".whl"]
    return path


def test_wheel_holds_only_the_tritforge_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"tritforge"}
    for sub in ("codec", "hw", "sim", "fpga"):
        assert any(n.startswith(f"tritforge/{sub}/") for n in names), sub


def test_normal_install_imports(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = ("import tritforge.codec.layout, tritforge.hwconfig, tritforge.cli, sys;"
            "assert tritforge.codec.layout.__file__.startswith(sys.argv[1]), tritforge.codec.layout.__file__")
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); " + code,
                        str(tmp_path)], cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_editable_install_maps_the_folders():
    import tritforge.codec
    import tritforge.hw
    import tritforge.sim
    assert os.path.dirname(tritforge.codec.__file__) == os.path.join(ROOT, "codec")
    assert os.path.dirname(tritforge.sim.__file__) == os.path.join(ROOT, "sim")
    for generic in ("codec", "hw", "sim", "fpga"):
        r = subprocess.run([sys.executable, "-c", f"import {generic}"], cwd="/", capture_output=True)
        assert r.returncode != 0, f"generic top-level name {generic!r} is importable"


def test_cli_help_and_bad_subcommand():
    exe = [sys.executable, "-m", "tritforge.cli"]
    r = subprocess.run(exe + ["--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "subcommand" in r.stdout
    r = subprocess.run(exe + ["no-such-command"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
