"""The board/synth/sweep/build-board subcommands: argument handling and `board run --sim`."""
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
