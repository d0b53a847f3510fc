"""``tritforge generate --layer``: the decoder-layer top's Verilog and sidecar for a model
shape, lint-clean under Verilator, the sidecar's port map from the layer's port set."""
from __future__ import annotations

import json

import pytest

from tritforge import cli
from tritforge.layerconfig import LayerConfig
from tritforge.layerports import layer_ports
from tritforge.sim.layercycles import layer_cycles

from test_hw_lint import lint

SHAPE = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 88, "num_attention_heads": 4,
         "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 320,
         "max_position_embeddings": 512, "rms_norm_eps": 1e-5}


@pytest.mark.parametrize("tokens", [1, 3])
def test_generate_layer_lints_clean(tmp_path, capsys, tokens):
    """tokens 3: a prefill build (--vectors), its regions interleaved and its result FIFO."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(SHAPE))
    out = tmp_path / "gen"
    assert cli.main(["generate", "--layer", "--model-config", str(cfg), "--rows", "4", "--lanes", "8",
                     "--vectors", str(tokens), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hidden 64, intermediate 88, 4 heads over 2 KV heads of 16" in text
    assert ("decode token" in text) == (tokens == 1)
    side = json.loads((out / "tritforge_layer.json").read_text())
    lcfg = LayerConfig.for_model(SHAPE, None, 8, tokens=tokens)
    assert side["layer"]["hidden"] == 64 and side["layer"]["lanes"] == 8
    assert side["derived"]["tokens"] == tokens and side["derived"]["memory_depth"] == lcfg.memory_depth
    names = [p["name"] for p in side["ports"]]
    for port in layer_ports(lcfg):
        assert (port.name in names) if not port.stream else (f"{port.name}__payload" in names)
    assert side["derived"]["cycles_context_1"] == layer_cycles(lcfg, 0)["total"]
    r = lint(str(out / "tritforge_layer.v"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_generate_layer_refuses_bad_options(tmp_path, capsys):
    assert cli.main(["generate", "--layer", "--model-config", "no-such-model", "--out", str(tmp_path / "g")]) == 2
    assert cli.main(["generate", "--layer", "--lanes", "0", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no-such-model" in err[0] and "--lanes 0" in err[1]
    assert not (tmp_path / "g").exists()


def test_generate_layer_refuses_a_prefill_build_it_cannot_interleave(tmp_path, capsys):
    """T > 1 interleaves the tokens in chunks of R: a vector not a multiple of R is refused."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**SHAPE, "intermediate_size": 90}))
    assert cli.main(["generate", "--layer", "--model-config", str(cfg), "--rows", "4", "--lanes", "8",
                     "--vectors", "2", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "intermediate=90" in err[0] and "R=4" in err[0]
    assert not (tmp_path / "g").exists()
