"""`tritforge simulate` and sim.steprun: the stepping model over whole matrices, with stalls."""
import numpy as np
import pytest

from tritforge.cli import main
from tritforge.codec import golden, packfile
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import quantize_matrix
from tritforge.hwconfig import HwConfig
from tritforge.sim import fastmodel, steprun


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.6, 0.5)])
def test_steprun_is_exact_and_stalls_only_add_cycles(p_valid, p_ready):
    rng = np.random.default_rng(5)
    cfg = HwConfig(depth=2, rows=3, vectors=2, max_in_features=128, max_out_features=32)
    t = quantize_matrix(rng.standard_normal((10, 70)).astype(np.float32), 2)
    xq, _ = golden.quantize_activations(rng.standard_normal((3, 70)), t.in_padded)
    r = steprun.run_matrix(cfg, t, xq, p_valid=p_valid, p_ready=p_ready, seed=3)
    np.testing.assert_array_equal(r.acc, golden.accumulators(t, xq))
    fast = fastmodel.run_matrix(cfg, t, xq).cycles
    if p_valid == 1 and p_ready == 1:
        assert r.cycles == fast
    else:
        assert r.cycles > fast
    assert r.total_cycles > r.cycles


def test_steprun_refuses_bad_probabilities_and_depths():
    cfg = HwConfig(depth=2, rows=1, max_in_features=32)
    t = quantize_matrix(np.ones((1, 16), np.float32), 3)
    with pytest.raises(TritforgeError, match="depth"):
        steprun.run_matrix(cfg, t, np.zeros((1, 16), np.int8))
    t = quantize_matrix(np.ones((1, 16), np.float32), 2)
    with pytest.raises(TritforgeError, match="probabilities"):
        steprun.run_matrix(cfg, t, np.zeros((1, 16), np.int8), p_ready=0)


def test_cli_random_matrix(capsys):
    assert main(["simulate", "--shape", "40x100", "--depth", "3", "--rows", "4", "--vectors", "2",
                 "--tokens", "3", "--max-in-features", "256"]) == 0
    text = capsys.readouterr().out
    assert "golden match" in text and "agree" in text
    cfg = HwConfig(depth=3, rows=4, vectors=2, max_in_features=256)
    assert f"fast      {fastmodel.run_cycles(cfg, 40, 100, 3):,} cycles" in text


def test_cli_packed_layer_and_stalls(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "m.trit.safetensors")
    packfile.write_packed(path, {f"layers.{i}.proj": quantize_matrix(
        rng.standard_normal((8, 32)).astype(np.float32), 1) for i in range(2)})
    assert main(["simulate", "--packed", path, "--layer", "1.proj", "--rows", "2",
                 "--p-ready", "0.5", "--max-in-features", "64"]) == 0
    text = capsys.readouterr().out
    assert "layers.1.proj: 8x32" in text and "stalls    cost +" in text


@pytest.mark.parametrize("args,match", [
    (["--shape", "12"], "OUTxIN"),
    ([], "either --packed"),
    (["--shape", "4x32", "--models", "rtl"], "--models"),
    (["--shape", "4x32", "--tokens", "0"], "--tokens"),
    (["--packed", "/nonexistent.safetensors"], "no such packed file"),
])
def test_cli_errors(args, match, capsys):
    assert main(["simulate", *args]) == 2
    assert match in capsys.readouterr().err
