"""The board/synth/sweep/build-board subcommands: argument handling and `board run --sim`."""
import os

import numpy as np
import pytest

from tritforge.cli import main
from tritforge.codec import packfile
from tritforge.codec.quantize import quantize_matrix


def test_board_run_on_the_simulated_board(capsys):
    assert main(["board", "run", "--sim", "--random", "3x32", "--depth", "1", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "all 3 accumulators equal codec.golden (bit-exact)" in out


def test_board_run_from_a_packed_file(tmp_path, capsys):
    rng = np.random.default_rng(2)
    t = quantize_matrix(rng.standard_normal((6, 20)).astype(np.float32), 2)
    path = tmp_path / "m.safetensors"
    packfile.write_packed(str(path), {"layer.w": t})
    assert main(["board", "run", "--sim", "--packed", str(path), "--max-rows", "2"]) == 0
    assert "all 2 accumulators equal codec.golden" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["board", "run", "--random", "2x16"], "give --port"),
    (["board", "run", "--sim"], "exactly one of --packed"),
    (["board", "run", "--sim", "--random", "2by16"], "expected OUTxIN"),
    (["board", "run", "--port", "/dev/nonexistent-tty", "--random", "2x16"], "cannot open"),
    (["sweep", "--target", "ecp5-85f", "--rows", "1,x", "--depths", "2", "--out", "o"], "comma-separated"),
    (["synth", "--target", "ecp5-85f", "--depth", "7", "--out", "o"], "depth"),
    (["build-board", "--board", "ulx3s", "--baud", "9000000", "--out", "o"], "too fast"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_synth_writes_its_folder(tmp_path, capsys):
    """The engine's flow folder and the report written after it land together."""
    import json

    out = tmp_path / "o"
    assert main(["synth", "--target", "xilinx-estimate", "--depth", "1", "--rows", "1",
                 "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["engine"]["lanes"] == 16 and (out / "yosys.log").exists()
    assert sorted(os.listdir(tmp_path)) == ["o"]
    assert "wrote    " in capsys.readouterr().out


def test_a_failed_bitstream_build_leaves_the_output_and_names_its_logs(tmp_path, capsys, monkeypatch):
    """The tools fail: the existing output folder is untouched, nothing else is left but the
    tools' logs in one named folder beside it (replaced by the next failure, removed by a
    success)."""
    import importlib
    import os
    import subprocess

    from tritforge.fpga import boards

    b = boards.board("ulx3s")
    cls = getattr(importlib.import_module(b.module), b.platform)

    def failing_build(self, top, name, build_dir, **kw):
        os.makedirs(build_dir, exist_ok=True)
        with open(os.path.join(build_dir, "top.log"), "w") as f:
            f.write("nextpnr: routing failed\n")
        raise subprocess.CalledProcessError(1, ["nextpnr-ecp5"])

    monkeypatch.setattr(cls, "build", failing_build)
    out = tmp_path / "ulx3s"
    out.mkdir()
    (out / "board.json").write_text("{}")
    assert main(["build-board", "--board", "ulx3s", "--depth", "1", "--rows", "1",
                 "--max-in-features", "64", "--max-out-features", "16", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bitstream build failed" in err[0] and "ulx3s.failed-logs" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["ulx3s", "ulx3s.failed-logs"]
    assert (out / "board.json").read_text() == "{}" and os.listdir(out) == ["board.json"]
    assert (tmp_path / "ulx3s.failed-logs" / "top.log").read_text() == "nextpnr: routing failed\n"
