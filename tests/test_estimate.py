"""Estimator: bounds on hand-computed cases, projection against the cycle model, shapes, CLI."""
import dataclasses
import json

import numpy as np
import pytest

from tritforge.cli import main
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import quantize_matrix
from tritforge.codec.golden import quantize_activations
from tritforge.sim import estimate
from tritforge.sim.actions import Actions
from tritforge.sim.boards import get_board
from tritforge.sim.energy import EnergyTable
from tritforge.sim.fastmodel import run_matrix, nonzero_trits

TABLE = EnergyTable.load(None)
# A made-up board with round numbers: 100 MHz, 1 GB/s.
BOARD = dataclasses.replace(get_board("kv260"), name="round", clock_mhz=100.0, bandwidth_gbs=1.0,
                            memory="hbm2")


def test_layer_figures_hand_computed():
    a = Actions(cycles=1000, trit_addsub=100, weight_bytes=20_000)
    f = estimate.layer_figures("l0", 64, 32, 1000, a, BOARD, TABLE)
    assert f["compute_s"] == pytest.approx(1000 / 100e6)          # 10 us
    assert f["memory_s"] == pytest.approx(20_000 / 1e9)           # 20 us
    assert f["bound"] == "memory"
    assert f["weight_bytes"] == 20_000 and (f["out"], f["in"], f["cycles"]) == (64, 32, 1000)
    assert f["energy_pj"]["weight_bytes"] == pytest.approx(20_000 * 8 * 3.9)
    assert f["energy_pj"]["trit_addsub"] == pytest.approx(3.0)
    assert f["actions"] == a.to_dict()
    g = estimate.layer_figures("l1", 64, 32, 5000, a.to_dict(), BOARD, TABLE)   # 50 us > 20 us
    assert g["bound"] == "compute"


def test_layer_figures_rejects_bad_cycles():
    with pytest.raises(TritforgeError, match="cycles"):
        estimate.layer_figures("l0", 1, 16, -1, Actions(), BOARD, TABLE)
    with pytest.raises(TritforgeError, match="cycles"):
        estimate.layer_figures("l0", 1, 16, "many", Actions(), BOARD, TABLE)


def test_token_figures_hand_computed():
    # layer A: compute 10 us, memory 20 us; layer B: compute 30 us, memory 5 us
    a = estimate.layer_figures("a", 16, 16, 1000, Actions(weight_bytes=20_000, trit_addsub=10), BOARD, TABLE)
    b = estimate.layer_figures("b", 16, 16, 3000, Actions(weight_bytes=5_000, trit_addsub=30), BOARD, TABLE)
    t = estimate.token_figures([a, b], BOARD, TABLE)
    assert t["tokens_per_s_compute"] == pytest.approx(1 / 40e-6)   # 25,000
    assert t["tokens_per_s_memory"] == pytest.approx(1 / 25e-6)    # 40,000
    assert t["tokens_per_s"] == pytest.approx(1 / 50e-6)           # per-layer max: 20 + 30 us
    assert t["tokens_per_s"] <= min(t["tokens_per_s_compute"], t["tokens_per_s_memory"])
    assert t["bound"] == "compute"
    assert (t["layers_memory_bound"], t["layers_compute_bound"]) == (1, 1)
    assert t["energy_breakdown_j"]["weight_bytes"] == pytest.approx(25_000 * 8 * 3.9e-12)
    assert t["energy_breakdown_j"]["trit_addsub"] == pytest.approx(40 * 0.03e-12)
    assert t["energy_j"] == pytest.approx(sum(t["energy_breakdown_j"].values()))
    assert t["weight_bytes"] == 25_000 and t["cycles"] == 4000
    with pytest.raises(TritforgeError, match="no layers"):
        estimate.token_figures([], BOARD, TABLE)


TINY = {"_name": "tiny", "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}


@pytest.mark.parametrize("depth", [1, 2])
def test_projection_equals_the_cycle_model(depth):
    """project()'s closed forms give exactly run_matrix's cycles and actions on a real matrix."""
    board = dataclasses.replace(get_board("kv260"), rows=4, vectors=1)
    rng = np.random.default_rng(depth)
    out, in_ = 64, 64                                  # q_proj of TINY
    t = quantize_matrix(rng.standard_normal((out, in_)).astype(np.float32), depth)
    zf = 1 - nonzero_trits(t.q, depth) / (out * in_ * depth)
    xq, _ = quantize_activations(rng.standard_normal((1, in_)), t.in_padded)
    ran = run_matrix(board.hwconfig(depth), t, xq, load_act=True)
    proj = estimate.project(TINY, depth, board, TABLE, zero_trit_fraction=zf)
    q = proj["kinds"][0]
    assert q["name"] == "self_attn.q_proj" and (q["out"], q["in"]) == (out, in_)
    assert q["cycles"] == ran.cycles
    assert q["actions"] == ran.actions.to_dict()
    assert len(proj["layers"]) == 2 * 7
    assert proj["layers"][7]["name"] == "model.layers.1.self_attn.q_proj"     # execution order


@pytest.mark.parametrize("vectors, prompt", [(1, 5), (4, 10), (4, 3)])
def test_prefill_equals_the_cycle_model(vectors, prompt):
    """Prefill of P tokens in commands of T: cycles and weight bytes as run_matrix gives them."""
    board = dataclasses.replace(get_board("kv260"), rows=4)
    rng = np.random.default_rng(prompt)
    t = quantize_matrix(rng.standard_normal((64, 64)).astype(np.float32), 2)
    xq, _ = quantize_activations(rng.standard_normal((prompt, 64)), t.in_padded)
    hw = board.hwconfig(2, vectors=vectors)
    ran = run_matrix(hw, t, xq, load_act=True)
    r = estimate.project(TINY, 2, board, TABLE, prompt_tokens=prompt, prefill_vectors=vectors)
    pf = r["prefill"]
    q = pf["per_matrix"][0]
    assert q["name"] == "self_attn.q_proj"
    assert (q["cycles"], q["weight_bytes"]) == (ran.cycles, ran.actions.weight_bytes)
    assert pf["commands_per_matrix"] == -(-prompt // vectors) and pf["vectors"] == vectors
    assert pf["cycles"] > 2 * sum(m["cycles"] for m in pf["per_matrix"])   # + attention, vector unit, lm_head
    assert r["timing"]["ttft_s"] == pf["time_s"] and pf["tokens_per_s"] == pytest.approx(prompt / pf["time_s"])
    assert r["hwconfig"]["vectors"] == board.vectors                   # decode keeps its own T
    with pytest.raises(TritforgeError, match="prompt_tokens"):
        estimate.project(TINY, 2, board, TABLE, prompt_tokens=-1)


def test_qwen7b_d2_u280_bandwidth_bound_by_hand():
    r = estimate.project("qwen2.5-7b", 2, get_board("u280"), TABLE)
    # d = 2, R = 256: 7 bytes per group of 16 weights, no row padding (all out % 256 == 0)
    H, I, kv, L = 3584, 18944, 512, 28
    groups = (2 * H * H + 2 * kv * H + 3 * I * H) // 16
    assert r["per_token"]["weight_bytes"] == groups * 7 * L
    assert r["model"]["linear_weights"] == groups * 16 * L
    pt = r["per_token"]
    mem = get_board("u280").memory_system()
    engine_mem = sum(k["memory_s"] * L for k in r["kinds"])
    assert engine_mem == pytest.approx(groups * 7 * L / (460.8e9 * mem.efficiency()), rel=1e-3)
    assert pt["bound"] == "memory" and pt["tokens_per_s_compute"] > pt["tokens_per_s_memory"]
    assert pt["tokens_per_s"] >= 0.9 * pt["tokens_per_s_memory"]
    floor = groups * 7 * L * 8 * 3.9e-12                     # HBM2 DRAM floor of the weights
    assert floor <= pt["energy_j"]
    lm = 152064 * 3584 + 152064 * 3                          # int8 lm_head and its row scales
    assert pt["bytes"]["lm_head"] == lm and r["lm_head"]["where"] == "int8"
    assert r["memory_fit"]["fits"] is True
    assert r["energy_table"]["name"] == "horowitz-45nm"
    assert r["config"] == "uniform-d2" and r["mode"] == "projection"


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_projection_runs_every_depth_for_32b(depth):
    r = estimate.project("qwen2.5-32b", depth, get_board("u280"), TABLE)
    assert r["hwconfig"]["max_in_features"] >= 27648            # buffer grown for the model
    assert r["per_token"]["tokens_per_s"] > 0
    assert r["memory_fit"]["fits"] is False      # + fp16 embeddings, lm_head, KV cache at 32k: over 8 GB
    assert len(r["layers"]) == 64 * 7


def test_depth_changes_bytes_and_energy():
    b = get_board("kv260")
    r1, r4 = (estimate.project("smollm2-135m", d, b, TABLE) for d in (1, 4))
    assert r4["per_token"]["weight_bytes"] > 3 * r1["per_token"]["weight_bytes"]
    assert r4["per_token"]["energy_j"] > r1["per_token"]["energy_j"]


def test_shapes_bundled_and_from_config_json(tmp_path):
    assert {"qwen2.5-7b", "qwen2.5-32b", "smollm2-135m"} <= set(estimate.shape_names())
    cfg = {**{k: v for k, v in TINY.items() if not k.startswith("_")}, "head_dim": 32, "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for spec in (str(tmp_path / "config.json"), str(tmp_path)):
        s = estimate.load_shape(spec)
        assert s["head_dim"] == 32 and s["num_key_value_heads"] == 2
    lin = dict((n, (o, i)) for n, o, i, _ in estimate.block_linears(s))
    assert lin["self_attn.q_proj"] == (128, 64) and lin["self_attn.o_proj"] == (64, 128)
    assert lin["self_attn.k_proj"] == (64, 64) and lin["mlp.down_proj"] == (64, 96)
    nested = tmp_path / "mm"
    nested.mkdir()
    (nested / "config.json").write_text(json.dumps({"text_config": cfg}))
    assert estimate.load_shape(str(nested))["hidden_size"] == 64


_SHAPE = '"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4'


@pytest.mark.parametrize("extra, message", [
    ('"sliding_window": 4096', "sliding-window attention \\(sliding_window 4096\\)"),
    ('"kv_lora_rank": 512', "multi-head latent attention"),
    ('"is_encoder_decoder": true', "not a decoder-only causal LM"),
    ('"architectures": ["BertForMaskedLM"]', "'BertForMaskedLM' is not a decoder-only causal LM"),
    ('"layer_types": ["full_attention", "linear_attention"]', "layers of type linear_attention"),
])
def test_attention_the_model_does_not_cover(tmp_path, capsys, extra, message):
    p = tmp_path / "config.json"
    p.write_text("{" + _SHAPE + ", " + extra + "}")
    with pytest.raises(TritforgeError, match=message):
        estimate.load_shape(str(p))
    assert main(["estimate", "--model-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(p) in err and "full causal attention" in err


def test_attention_the_model_covers(tmp_path):
    """A Qwen2 config names a window it does not use; Llama and Qwen2 causal LMs pass."""
    p = tmp_path / "config.json"
    p.write_text("{" + _SHAPE + ', "sliding_window": 131072, "use_sliding_window": false, '
                 '"architectures": ["Qwen2ForCausalLM"], "layer_types": ["full_attention"]}')
    assert estimate.load_shape(str(p))["hidden_size"] == 64


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"hidden_size": 64}', "missing"),
    ('{"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 0, "num_attention_heads": 4}',
     "num_hidden_layers: expected a value >= 1, got 0"),
    ('{"hidden_size": 66, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4}',
     "head_dim"),
    ('{"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, '
     '"num_key_value_heads": 3}', "multiple of num_key_value_heads"),
])
def test_bad_model_configs(tmp_path, content, message):
    p = tmp_path / "config.json"
    p.write_text(content)
    with pytest.raises(TritforgeError, match=message):
        estimate.load_shape(str(p))


def test_projection_errors():
    with pytest.raises(TritforgeError, match="no such file"):
        estimate.load_shape("qwen9-1t")
    with pytest.raises(TritforgeError, match="depth"):
        estimate.project(TINY, 5, BOARD, TABLE)
    with pytest.raises(TritforgeError, match="zero_trit_fraction"):
        estimate.project(TINY, 2, BOARD, TABLE, zero_trit_fraction=1.5)


# --- CLI ---------------------------------------------------------------------------------

def test_cli_estimate_prints_both_bounds_and_the_table(capsys, tmp_path):
    out_json = tmp_path / "q.json"
    assert main(["estimate", "--model-config", "qwen2.5-7b", "--depth", "2", "--board", "u280",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "compute only" in text and "memory only" in text and "<- binds" in text
    assert "fpga-ultrascale-16nm 1.0" in text and "mlp.down_proj" in text     # the board's table
    data = json.loads(out_json.read_text())
    assert data["per_token"]["bound"] == "memory" and data["energy_table"]["name"] == "fpga-ultrascale-16nm"
    assert f"{data['per_token']['tokens_per_s']:.2f}" in text


def test_cli_estimate_prefill(capsys):
    assert main(["estimate", "--model-config", "smollm2-135m", "--prompt-tokens", "42", "--prefill-vectors", "2"]) == 0
    text = capsys.readouterr().out
    assert "42 prompt tokens in 21 command(s) of T=2" in text and "time to first token" in text


def test_cli_estimate_list(capsys):
    assert main(["estimate", "--list"]) == 0
    text = capsys.readouterr().out
    assert "u280" in text and "qwen2.5-32b" in text


@pytest.mark.parametrize("argv, message", [
    (["--model-config", "qwen2.5-7b", "--board", "zcu104"], "unknown preset"),
    (["--model-config", "smollm2-135m", "--context", "9000"], "context 9000: longer than the model's maximum"),
    (["--model-config", "smollm2-135m", "--context", "-1"], "--context -1"),
    (["--model-config", "smollm2-135m", "--board", "/nonexistent/b.toml"], "cannot read"),
    (["--model-config", "qwen2.5-7b", "--depth", "5"], "--depth 5"),
    (["--model-config", "nope-1b"], "no such file"),
    (["--model-config", "qwen2.5-7b", "--energy-table", "/nonexistent.toml"], "cannot read"),
    ([], "--model-config: required"),
    (["--model-config", "qwen2.5-7b", "--prompt-tokens", "-3"], "--prompt-tokens -3"),
    (["--model-config", "qwen2.5-7b", "--vectors", "0"], "vectors: expected a value >= 1, got 0"),
])
def test_cli_estimate_errors(capsys, argv, message):
    assert main(["estimate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("tritforge estimate: error:") and err.count("\n") == 1


def test_cli_estimate_user_table(capsys, tmp_path):
    text = open(TABLE.path).read().replace('name = "horowitz-45nm"', 'name = "my-table"')
    p = tmp_path / "mine.toml"
    p.write_text(text)
    assert main(["estimate", "--model-config", "smollm2-135m", "--energy-table", str(p)]) == 0
    assert "my-table 1.2" in capsys.readouterr().out


@pytest.mark.model
def test_projection_matches_real_smollm2_layers():
    """On real SmolLM2-135M weights, the projection gives the cycle model's cycles exactly and
    its energy to within 1 % (the zero-trit fraction is the only assumption)."""
    import gguf
    from gguf.quants import dequantize
    from tritforge.codec.checkpoint import resolve_model

    reader = gguf.GGUFReader(resolve_model("default"))
    tensors = {t.name: t for t in reader.tensors}
    board = get_board("kv260")
    hw = board.hwconfig(2)
    proj = {k["name"]: k for k in estimate.project("smollm2-135m", 2, board, TABLE)["kinds"]}
    rng = np.random.default_rng(0)
    for gg, hf in (("blk.7.ffn_down.weight", "mlp.down_proj"), ("blk.7.attn_k.weight", "self_attn.k_proj")):
        t = tensors[gg]
        w = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
        q = quantize_matrix(w, 2)
        xq, _ = quantize_activations(rng.standard_normal((1, w.shape[1])), q.in_padded)
        ran = run_matrix(hw, q, xq, load_act=proj[hf]["load_act"])
        assert proj[hf]["cycles"] == ran.cycles
        assert proj[hf]["weight_bytes"] == ran.actions.weight_bytes
        real = sum(TABLE.energy_pj(ran.actions, board.memory, hw).values())
        assert sum(proj[hf]["energy_pj"].values()) == pytest.approx(real, rel=0.01)


# --- whole-token figures -------------------------------------------------------------------

def test_context_adds_the_kv_cache_bytes():
    b = get_board("kv260")
    r0, r8 = (estimate.project("smollm2-135m", 2, b, TABLE, context=c) for c in (0, 8192))
    row = 2 * 3 * (64 + 3)                                   # K and V, 3 KV heads, int8 + 3-byte scale
    assert r0["per_token"]["bytes"]["kv_read"] == 0
    assert r8["per_token"]["bytes"]["kv_read"] == 30 * row * 8192
    assert r8["per_token"]["bytes"]["kv_write"] == 30 * row
    assert r8["per_token"]["tokens_per_s"] < r0["per_token"]["tokens_per_s"]
    assert r8["per_token"]["energy_j"] > r0["per_token"]["energy_j"]
    assert r0["per_token"]["bytes"]["weights"] == r8["per_token"]["bytes"]["weights"] == 46_448_640


def test_whole_token_is_the_sum_of_its_stages():
    b = get_board("kv260")
    r = estimate.project("smollm2-135m", 2, b, TABLE, context=512)
    pt = r["per_token"]
    layer = sum(s["time_s"] for s in r["schedule"])
    tail = sum(s["time_s"] for s in r["final_stages"])
    assert pt["time_s"] == pytest.approx(30 * layer + tail)
    assert pt["time_s"] >= max(pt["compute_s"], pt["memory_s"]) * (1 - 1e-12)
    units = [s["unit"] for s in r["schedule"]]
    assert units.index("attention") == [s["name"] for s in r["schedule"]].index("self_attn.v_proj") + 1 + 3
    assert {"engine", "attention", "vector"} == set(units)
    static = (b.static_w + b.memory_system().background_w) * pt["time_s"]
    assert pt["energy_breakdown_j"]["static_board"] + pt["energy_breakdown_j"]["dram_background"] == pytest.approx(static)
    assert pt["energy_j"] == pytest.approx(sum(pt["energy_breakdown_j"].values()))
    assert pt["units"]["engine"]["read_bytes"] == pt["bytes"]["weights"]


@pytest.mark.parametrize("lm_head, board, on_bus, nbytes", [
    ("int8", "kv260", True, 49152 * 576 + 49152 * 3),
    ("host-fp16", "kv260", True, 2 * 49152 * 576),          # the KV260's host shares the DDR4
    ("host-fp16", "u280", False, 2 * 49152 * 576),          # the U280's host has its own memory
])
def test_lm_head_placement(lm_head, board, on_bus, nbytes):
    r = estimate.project("smollm2-135m", 2, get_board(board), TABLE, lm_head=lm_head)
    lm = r["lm_head"]
    assert lm["where"] == lm_head and lm["bytes"] == nbytes and lm["on_bus"] is on_bus
    assert r["per_token"]["units"]["lm_head"]["time_s"] > 0 if on_bus else r["per_token"]["units"]["lm_head"]["time_s"] == 0
    t = estimate.project("smollm2-135m", 2, get_board(board), TABLE, lm_head="ternary")["lm_head"]
    assert t["bytes"] == -(-49152 // 16) * 16 * 36 * 7 // 16 or t["bytes"] > 0


def test_memory_fit_counts_everything_resident():
    r = estimate.project("qwen2.5-7b", 2, get_board("kv260"), TABLE, lm_head="host-fp16")
    fit = r["memory_fit"]
    assert fit["embedding_bytes"] == 152064 * 3584 * 2 and fit["lm_head_bytes"] == 152064 * 3584 * 2
    assert fit["total_bytes"] > 4 * 2**30 and fit["fits"] is False
    assert 4.5e9 < fit["total_bytes"] < 6.5e9
    s = estimate.project("smollm2-135m", 2, get_board("kv260"), TABLE)["memory_fit"]
    assert s["fits"] and s["kv_context"] == 8192 and s["kv_cache_bytes"] == 30 * 2 * 3 * 67 * 8192


def test_weight_formats_priced_on_the_same_array():
    b = get_board("kv260")
    r = estimate.project("llama2-7b", 2, b, TABLE, weight_format="int4-g128")
    q = r["kinds"][0]
    assert q["weight_bytes"] == 4096 * 4096 // 2 + 4096 * 32 * 4
    assert q["energy_pj"]["mac_int4"] > 0 and r["config"] == "int4-g128"
    t = estimate.project("smollm2-135m", 2, b, TABLE, weight_format="ternary-1.6")
    assert t["kinds"][0]["weight_bytes"] == -(-576 * 576 * 16 // 80) + 576 * 2
    with pytest.raises(TritforgeError, match="weight format"):
        estimate.project("smollm2-135m", 2, b, TABLE, weight_format="fp7")


def test_engines_split_the_rows():
    b = get_board("u280")
    two = dataclasses.replace(b, engines=2)
    r1, r2 = (estimate.project("qwen2.5-7b", 2, x, TABLE) for x in (b, two))
    k1, k2 = r1["kinds"][4], r2["kinds"][4]                     # gate_proj 18944 x 3584
    assert k2["cycles"] < 0.55 * k1["cycles"]
    assert k2["weight_bytes"] == k1["weight_bytes"]
    assert r2["per_token"]["tokens_per_s_compute"] > 1.8 * r1["per_token"]["tokens_per_s_compute"]


def test_context_sweep_and_limits():
    sw = estimate.context_sweep("smollm2-135m", 2, get_board("kv260"), TABLE, points=5)
    assert [p["context"] for p in sw] == [0, 2048, 4096, 6144, 8192]
    assert all(a["tokens_per_s"] > b["tokens_per_s"] for a, b in zip(sw, sw[1:]))
    assert all(a["bytes"]["kv_read"] < b["bytes"]["kv_read"] for a, b in zip(sw, sw[1:]))
    with pytest.raises(TritforgeError, match="longer than the model's maximum"):
        estimate.project("smollm2-135m", 2, get_board("kv260"), TABLE, context=8193)
    with pytest.raises(TritforgeError, match="prompt_tokens"):
        estimate.project("smollm2-135m", 2, get_board("kv260"), TABLE, prompt_tokens=9000)


def test_cli_whole_token_breakdown(capsys):
    assert main(["estimate", "--model-config", "qwen2.5-7b", "--board", "u280", "--context", "4096"]) == 0
    text = capsys.readouterr().out
    for word in ("engine", "attention", "vector", "lm_head", "% sustained", "board static 15 W", "static + DRAM bg",
                 "K/V read", "context 4,096"):
        assert word in text, word


def test_cli_hw_file_names_its_board(capsys, tmp_path):
    p = tmp_path / "hw.json"
    p.write_text(json.dumps({"depth": 2, "rows": 8, "clock_mhz": 150.0}))
    assert main(["estimate", "--model-config", "smollm2-135m", "--hw", str(p), "--board", "u280"]) == 0
    text = capsys.readouterr().out
    assert "board u280's memory (hbm2" in text and "R=8 rows" in text and "u280+hw.json" in text
