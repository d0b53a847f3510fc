"""``tritforge run`` end to end: tiny models (fast), errors, and one SmolLM2 run (``model`` marker)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tinymodels import make_tiny_model
from tritforge import cli
from tritforge.codec import packfile
from tritforge.accelconfig import AccelConfig
from tritforge.hwconfig import HwConfig
from tritforge.layerconfig import LayerConfig
from tritforge.sim.layercycles import layer_cycles
from tritforge.sim import driver, patching

TOP_KEYS = ("tool", "version", "created", "model", "config", "mode", "hwconfig", "board", "energy_table",
            "prompt", "generated_text", "tokens", "timing", "layers", "per_token", "quality")
TIMING_KEYS = ("prefill_cycles", "prefill_s", "ttft_s", "decode_cycles_per_token", "decode_tokens_per_s",
               "wall_s_per_token")
LAYER_KEYS = ("name", "out", "in", "weight_bytes", "cycles", "compute_s", "memory_s", "bound", "actions",
              "energy_pj")
TOKEN_KEYS = ("energy_j", "energy_breakdown_j", "tokens_per_s_compute", "tokens_per_s_memory",
              "tokens_per_s", "bound")
QUALITY_KEYS = ("ppl_source", "ppl_quantized", "ppl_hw", "top1_agreement", "logit_rmse",
                "logit_max_abs_err", "hw_vs_dequant_rel_err")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=1)


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("qwen2"), "qwen2", seed=2)


def check_result(r: dict, n_layers: int, quality: bool = True) -> None:
    for k in TOP_KEYS:
        assert k in r, k
    for k in TIMING_KEYS:
        assert k in r["timing"], k
    assert len(r["layers"]) == n_layers
    for layer in r["layers"]:
        for k in LAYER_KEYS:
            assert k in layer, k
        assert layer["cycles"] == layer["actions"]["cycles"] > 0
        assert layer["bound"] in ("compute", "memory")
    for k in TOKEN_KEYS:
        assert k in r["per_token"], k
    if quality:
        for k in QUALITY_KEYS:
            assert k in r["quality"], k
    t = r["timing"]
    assert t["decode_cycles_per_token"] == sum(layer["cycles"] for layer in r["layers"])
    assert t["decode_tokens_per_s"] == pytest.approx(r["per_token"]["tokens_per_s"])
    assert t["decode_tokens_per_s"] <= min(r["per_token"]["tokens_per_s_compute"],
                                           r["per_token"]["tokens_per_s_memory"]) * (1 + 1e-9)
    assert t["ttft_s"] >= t["prefill_s"] > 0
    assert r["per_token"]["energy_j"] > 0
    assert r["energy_table"]["name"] and r["energy_table"]["version"]
    json.dumps(r)   # JSON-able


def test_run_tiny_llama_json_and_report(llama, tmp_path, capsys):
    out_json = tmp_path / "run.json"
    rep = tmp_path / "report"
    rc = cli.main(["run", "--model", llama, "--hw", "ulx3s", "--prompt", "the old man went",
                   "--max-new-tokens", "4", "--eval-tokens", "96", "--json", str(out_json),
                   "--report", str(rep)])
    text = capsys.readouterr().out
    assert rc == 0
    r = json.loads(out_json.read_text())
    check_result(r, 14)
    assert r["board"]["name"] == "ulx3s" and r["hwconfig"]["vectors"] == 4
    assert r["tokens"]["generated"] == 4
    # prompt longer than T: prefill takes ceil(n / T) weight fetches
    assert r["tokens"]["prompt"] > 4
    q = r["quality"]
    assert q["eval_tokens"] == 96
    assert 0 <= q["top1_agreement"] <= 1 and q["ppl_source"] > 1 and q["ppl_hw"] > 1
    assert 0 < q["hw_vs_dequant_rel_err"] < 0.05
    for word in ("tokens/s", "J/token", "time to first token", "perplexity"):
        assert word in text
    for name in ("report.html", "report.md", "result.json", "roofline.png"):
        assert (rep / name).is_file(), name
    # the whole token at the prompt's context: every unit, slower and costlier than the
    # quantized matrices alone, and the context sweep the report plots
    w = r["whole_token"]
    assert w["context"] == r["tokens"]["prompt"]
    assert set(w["per_token"]["units"]) >= {"engine", "attention", "vector", "lm_head", "static"}
    assert w["per_token"]["tokens_per_s"] < r["per_token"]["tokens_per_s"]
    assert w["per_token"]["energy_j"] > r["per_token"]["energy_j"]
    assert r["context_sweep"][0]["context"] == 0 and len(r["context_sweep"]) > 2
    assert "whole tok" in text and "attention" in text


def test_run_tiny_qwen2_hwconfig_file_and_packed(qwen2, tmp_path, capsys):
    cfg_path = tmp_path / "hw.json"
    cfg_path.write_text(json.dumps(HwConfig(depth=3, rows=8, vectors=2, clock_mhz=150.0).to_dict()))
    model, _, _ = driver.load_model(qwen2)
    lin = patching.linear_layers(model)
    tensors = patching.quantize_layers(lin, 3, "tritforge", progress=False)
    packed = tmp_path / "m.trit.safetensors"
    packfile.write_packed(str(packed), {f"{n}.weight": t for n, t in tensors.items()}, {})
    out_json = tmp_path / "r.json"
    rc = cli.main(["run", "--model", qwen2, "--config", "uniform-d3", "--hw", str(cfg_path),
                   "--packed", str(packed), "--max-new-tokens", "3", "--eval-tokens", "0",
                   "--json", str(out_json)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out_json.read_text())
    check_result(r, 14, quality=False)
    assert r["mode"] == "tritforge" and r["packed"] == str(packed)
    assert r["hwconfig"]["rows"] == 8 and r["board"]["clock_mhz"] == 150.0
    assert r["model"]["arch"] == "qwen2"


@pytest.mark.parametrize("argv, message", [
    (["--config", "uniform-d7"], "config 'uniform-d7'"),
    (["--hw", "nosuchboard"], "--hw 'nosuchboard'"),
    (["--max-new-tokens", "0"], "--max-new-tokens 0"),
    (["--max-new-tokens", "600"], "= 6"),                     # the tiny model's context is 512
    (["--max-new-tokens", str(10 ** 12)], "exceed"),
    (["--eval-tokens", "-1"], "--eval-tokens -1"),
    (["--packed", "/nonexistent/m.trit.safetensors"], "no such packed file"),
    (["--energy-table", "/nonexistent/table.toml"], "energy table"),
    (["--rtl-prefill", "1", "--rtl-sample", "1"], "--rtl-prefill 1: expected 2..16"),
    (["--rtl-prefill", "2"], "--rtl-prefill 2: expected --path layer and --rtl-sample"),
])
def test_run_errors_are_one_line(llama, tmp_path, capsys, argv, message):
    out_json = tmp_path / "r.json"
    rc = cli.main(["run", "--model", llama, "--eval-tokens", "0", "--json", str(out_json)] + argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out_json.exists()


def test_run_max_new_tokens_bounds(llama, tmp_path, capsys, monkeypatch):
    """prompt + N is checked against the model's context, the attention unit's and the memory."""
    out_json = tmp_path / "r.json"
    base = ["run", "--model", llama, "--eval-tokens", "0", "--json", str(out_json)]
    assert cli.main(base + ["--max-new-tokens", "600"]) == 2
    err = capsys.readouterr().err
    assert "exceed" in err and "maximum context (max_position_embeddings) of 512 tokens" in err
    accel = AccelConfig().to_dict()
    accel["attention"]["max_context"] = 40
    (tmp_path / "a.json").write_text(json.dumps(accel))
    assert cli.main(base + ["--accel", str(tmp_path / "a.json"), "--max-new-tokens", "100"]) == 2
    assert "the attention unit's max_context of 40 tokens" in capsys.readouterr().err
    monkeypatch.setattr("tritforge.memory.available_bytes", lambda: 1 << 10)
    assert cli.main(base + ["--max-new-tokens", "100"]) == 2
    err = capsys.readouterr().err
    assert "--max-new-tokens 100: needs about" in err and err.count("\n") == 1
    assert not out_json.exists()


def test_run_missing_model(tmp_path, capsys):
    rc = cli.main(["run", "--model", str(tmp_path / "nope"), "--eval-tokens", "0"])
    assert rc == 2
    assert "no such model" in capsys.readouterr().err


def test_run_hwconfig_depth_mismatch(llama, tmp_path, capsys):
    cfg_path = tmp_path / "hw.json"
    cfg_path.write_text(json.dumps({"depth": 3}))
    rc = cli.main(["run", "--model", llama, "--hw", str(cfg_path), "--eval-tokens", "0"])
    assert rc == 2
    assert "hardware depth d=3, but the config asks for d=2" in capsys.readouterr().err


@pytest.mark.model
def test_run_smollm2(tmp_path, capsys):
    out_json = tmp_path / "smol.json"
    rc = cli.main(["run", "--model", "default", "--config", "uniform-d2", "--hw", "default",
                   "--prompt", "What is the capital of France?", "--max-new-tokens", "3",
                   "--eval-tokens", "128", "--json", str(out_json)])
    assert rc == 0
    r = json.loads(out_json.read_text())
    check_result(r, 210)
    assert r["model"]["arch"] == "llama" and r["model"]["hidden"] == 576
    assert r["tokens"]["generated"] == 3
    assert r["generated_text"].strip()
    q = r["quality"]
    assert q["ppl_source"] < q["ppl_hw"] < 3 * q["ppl_source"]
    assert q["top1_agreement"] > 0.5
    assert 0 < q["hw_vs_dequant_rel_err"] < 0.05
    assert r["board"]["name"] == "kv260"
    assert os.path.getsize(out_json) > 0


# --- --rtl-sample: sampled rows through the Verilator RTL ------------------------------------

# The config of the cocotb engine tests' "d2R4T1" build: the Verilator build is shared with them.
RTL_CFG = {"depth": 2, "rows": 4, "vectors": 1, "max_in_features": 1536, "max_out_features": 1536}


@pytest.fixture
def rtl_env(request, tmp_path, monkeypatch):
    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("tritforge-cocotb") if cache is not None else tmp_path / "builds"
    monkeypatch.setenv("TRITFORGE_BUILD_DIR", str(root))
    cfg_path = tmp_path / "hw.json"
    cfg_path.write_text(json.dumps(RTL_CFG))
    return cfg_path


def test_rtl_sample_matches(llama, rtl_env, tmp_path, capsys):
    from tritforge.sim import fastmodel

    out_json = tmp_path / "r.json"
    rc = cli.main(["run", "--model", llama, "--hw", str(rtl_env), "--eval-tokens", "0",
                   "--max-new-tokens", "2", "--rtl-sample", "6", "--rtl-prefill", "2", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert rc == 0
    s = json.loads(out_json.read_text())["rtl_sample"]
    assert s["match"] and not s["failures"]
    assert len(s["layers"]) == 14 and all(len(rows) == 6 for rows in s["layers"].values())
    assert len(s["cases"]) == 14
    # the RTL's cycle count of each case is the cycle model's (6 rows, one vector)
    cfg = HwConfig(**RTL_CFG)
    for c in s["cases"]:
        in_pad = 96 if c["case"].split(".rows")[0].endswith("down_proj") else 64
        assert c["cycles"] == fastmodel.run_cycles(cfg, 6, in_pad, 1)
    assert "all match" in text
    # the whole decoder layer 0 (the run's path is "layer"): its last token on the layer top
    r = json.loads(out_json.read_text())
    lay = r["rtl_layer"]
    assert lay["match"] and lay["cycles"] == lay["cycles_model"] and lay["context"] == lay["position"] + 1
    assert "rtl layer  decoder layer 0" in text and "bit-exact" in text
    # its last two tokens as one command on a layer top of two tokens per command
    pre = lay["prefill"]
    assert pre["match"] and pre["tokens"] == 2 and pre["position"] == lay["position"] - 1
    lcfg2 = LayerConfig.for_model(_shape(llama), AccelConfig(engine=HwConfig(**RTL_CFG)), tokens=2)
    assert pre["cycles"] == pre["cycles_model"] == layer_cycles(lcfg2, pre["position"])["total"]
    assert "rtl prefill decoder layer 0" in text
    # the layer top's closed-form figures in the whole-token section
    lt = r["whole_token"]["layer_top"]
    lcfg = LayerConfig.for_model(_shape(llama), AccelConfig(engine=HwConfig(**RTL_CFG)))
    assert lt["cycles_per_layer"] == layer_cycles(lcfg, lt["context"] - 1)["total"]
    assert lt["cycles_per_token"] == 2 * lt["cycles_per_layer"]


def _shape(folder):
    return json.loads((Path(folder) / "config.json").read_text())


def test_rtl_sample_catches_a_mismatch(llama, rtl_env, tmp_path, capsys, monkeypatch):
    real = driver.rtl_sample_cases

    def corrupted(*args, **kw):
        cases = real(*args, **kw)
        case = cases[3][0]
        case.expected[0, 1] += 1          # the RTL computes the true value: must be caught
        return cases

    monkeypatch.setattr(driver, "rtl_sample_cases", corrupted)
    out_json = tmp_path / "r.json"
    rc = cli.main(["run", "--model", llama, "--hw", str(rtl_env), "--eval-tokens", "0",
                   "--max-new-tokens", "2", "--rtl-sample", "4", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 1
    s = json.loads(out_json.read_text())["rtl_sample"]
    assert not s["match"]
    assert "model.layers.0.self_attn.o_proj.rows4" in " ".join(s["failures"]), s["failures"]
    assert "MISMATCH" in captured.out and "does not match" in captured.err


def test_rtl_sample_of_a_mixed_config_on_the_variable_depth_engine(llama, rtl_env, tmp_path, capsys,
                                                                    monkeypatch):
    """A mixed config's matrices are checked on the variable-depth engine's RTL, fed at the
    board's bytes per cycle; a wrong expected value is caught."""
    real = driver.rtl_sample_cases

    def corrupted(*args, **kw):
        cases = real(*args, **kw)
        cases[5][0].expected[0, 1] += 1
        return cases

    monkeypatch.setattr(driver, "rtl_sample_cases", corrupted)
    out_json = tmp_path / "r.json"
    rc = cli.main(["run", "--model", llama, "--config", "mixed-d2-bpw2.9", "--hw", str(rtl_env),
                   "--eval-tokens", "0", "--max-new-tokens", "2", "--rtl-sample", "5", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert rc == 1
    s = json.loads(out_json.read_text())["rtl_sample"]
    assert s["engine"] == "variable" and "variable-depth engine RTL" in text
    assert len(s["cases"]) == 14 and len(s["failures"]) == 1, s["failures"]
    assert ".rows5: result beat 0" in s["failures"][0]


def test_run_packed_from_another_architecture(llama, qwen2, tmp_path, capsys):
    rc = cli.main(["quantize", "--model", llama, "--configs", "uniform-d2", "--out", str(tmp_path / "q"),
                   "--no-export", "--no-ppl", "--quiet"])
    assert rc == 0
    packed = str(tmp_path / "q" / "uniform-d2" / "model.trit.safetensors")
    capsys.readouterr()
    out_json = tmp_path / "r.json"
    # the quantize command's packed file drives the run of the model it came from
    rc = cli.main(["run", "--model", llama, "--packed", packed, "--eval-tokens", "0",
                   "--max-new-tokens", "2", "--json", str(out_json)])
    assert rc == 0
    # the packed file names its source by name (no absolute path of the writing machine)
    assert json.loads(out_json.read_text())["packed_source"] == os.path.basename(llama)
    rc = cli.main(["run", "--model", qwen2, "--packed", packed, "--eval-tokens", "0"])
    assert rc == 2
    assert "quantized from a llama model" in capsys.readouterr().err
