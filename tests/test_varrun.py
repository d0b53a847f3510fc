"""tritforge run and estimate with a mixed configuration: the variable-depth engine model."""
import json

import numpy as np
import pytest

from tinymodels import make_tiny_model
from tritforge import cli
from tritforge.codec import golden, packfile
from tritforge.errors import TritforgeError
from tritforge.sim import boards, driver, estimate, patching, varmodel
from tritforge.sim.energy import EnergyTable


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("var") / "src", seed=3)


def test_run_mixed_config_on_the_variable_depth_engine(src, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--model", src, "--config", "mixed-d3-bpw3.3", "--hw", "kv260", "--path", "linear",
                   "--max-new-tokens", "3", "--eval-tokens", "64", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["config"] == "mixed-d3-bpw3.3"
    # every matrix's bytes are its column stream's, below the uniform depth-3 beats
    model, _, _ = driver.load_model(src)
    lin = patching.linear_layers(model)
    tensors = patching.quantize_layers(lin, 3, "tritllm-v2", False, driver._config("mixed-d3-bpw3.3").mixed)
    board = boards.get_board("kv260")
    cfg = board.hwconfig(3)
    for entry in r["layers"]:
        t = tensors[entry["name"]]
        cols = varmodel.column_bytes(cfg, t.group_depth)
        assert entry["weight_bytes"] == cols.sum() < cfg.tiles(t.shape[0]) * t.groups * cfg.beat_bytes
        # one decode token: one command, the closed form's cycles at the board's W
        load = not entry["name"].endswith(("k_proj", "v_proj", "up_proj"))
        assert entry["cycles"] == varmodel.run_cycles(cfg, t.shape[0], t.in_padded, cols, 1,
                                                      varmodel.board_rate(board), load)
    q = r["quality"]
    assert 0 < q["hw_vs_dequant_rel_err"] < 0.05 and abs(q["ppl_hw"] / q["ppl_quantized"] - 1) < 0.05
    a = r["whole_token"]["assumptions"]["variable_depth"]
    assert a["base_depth"] == 3 and 2.0 < a["stream_bpw"] < 3.6


def test_hwlinear_results_equal_golden(src):
    model, _, _ = driver.load_model(src)
    lin = patching.linear_layers(model)
    tensors = patching.quantize_layers(lin, 2, "tritllm-v2", False, driver._config("mixed-d2-bpw2.6").mixed)
    t = next(iter(tensors.values()))
    assert t.variable and (t.group_depth == 0).any()
    rec = driver.HwRecorder(boards.get_board("kv260").hwconfig(2), rate=40)
    hw = patching.patch_model(model, tensors, rec)
    name = next(iter(tensors))
    xq = np.random.default_rng(0).integers(-128, 128, (3, t.in_padded)).astype(np.int8)
    assert np.array_equal(hw[name].accumulate(xq), golden.accumulators(t, xq))


def test_run_packed_mixed_file(src, tmp_path, capsys):
    model, _, _ = driver.load_model(src)
    lin = patching.linear_layers(model)
    tensors = patching.quantize_layers(lin, 3, "tritllm-v2", False, driver._config("mixed-d3-bpw4.08").mixed)
    path = tmp_path / "m.trit.safetensors"
    packfile.write_packed(str(path), {f"{n}.weight": t for n, t in tensors.items()}, {})
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--model", src, "--config", "uniform-d3", "--packed", str(path), "--path", "linear",
                   "--max-new-tokens", "2", "--eval-tokens", "0", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["whole_token"]["assumptions"]["variable_depth"]["base_depth"] == 3


def test_run_refuses_a_bad_mixed_target(src, capsys):
    assert cli.main(["run", "--model", src, "--config", "mixed-d3-bpw0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mixed-d3-bpw0.5" in err[0]


def test_estimate_prices_the_column_stream():
    b, t = boards.get_board("kv260"), EnergyTable.load(None)
    u3 = estimate.project("smollm2-135m", 3, b, t)
    u2 = estimate.project("smollm2-135m", 2, b, t)
    m = estimate.project("smollm2-135m", 3, b, t, stream_bpw=4.08)
    assert m["config"] == "mixed-d3-bpw4.08"
    assert u2["per_token"]["weight_bytes"] < m["per_token"]["weight_bytes"] < 0.82 * u3["per_token"]["weight_bytes"]
    assert u3["per_token"]["tokens_per_s"] < m["per_token"]["tokens_per_s"] < u2["per_token"]["tokens_per_s"]
    # memory-bound: the column cycles follow the stream at W bytes per cycle
    w = float(varmodel.board_rate(b))
    for k in m["kinds"]:
        assert k["cycles"] >= k["weight_bytes"] / w
    with pytest.raises(TritforgeError, match="takes mixed-d<D>-bpw<B>"):
        estimate.config_stream("d3scale-sens02")


def test_estimate_cli_config(capsys):
    assert cli.main(["estimate", "--model-config", "smollm2-135m", "--config", "mixed-d3-bpw4.08"]) == 0
    assert "config   mixed-d3-bpw4.08" in capsys.readouterr().out
    assert cli.main(["estimate", "--model-config", "smollm2-135m", "--config", "mixed-d9"]) == 2
