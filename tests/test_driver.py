"""The model driver: patched tiny Llama / Qwen2 models against the integer golden reference."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from tritforge.codec import golden, packfile
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim import driver, generation, patching
from tritforge.sim.hwlinear import HwLinear, HwRecorder
from tinymodels import EOS, make_tiny_model

@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp(request.param), request.param)


class GoldenLinear(nn.Module):
    """Reference layer: ``codec.golden.gemv`` (int8 activations, exact accumulators, rescale) + bias."""

    def __init__(self, t, bias):
        super().__init__()
        self.t, self.bias = t, bias

    def forward(self, x):
        y = torch.from_numpy(golden.gemv(self.t, x.detach().double().numpy())).to(x.dtype)
        return y if self.bias is None else y + self.bias


def patched(folder, cfg=None, depth=2, mode="tritllm-v2"):
    model, tok, _ = driver.load_model(folder)
    ref = copy.deepcopy(model)
    linears = patching.linear_layers(model)
    tensors = patching.quantize_layers(linears, depth, mode, progress=False)
    rec = HwRecorder(cfg or HwConfig(depth=depth, rows=4, vectors=4))
    layers = patching.patch_model(model, tensors, rec)
    for name, t in tensors.items():
        parent_name, _, attr = name.rpartition(".")
        lin = getattr(ref.get_submodule(parent_name), attr)
        setattr(ref.get_submodule(parent_name), attr, GoldenLinear(t, lin.bias))
    return model, ref, tok, rec, layers, tensors


IDS = torch.tensor([[1, 5, 9, 3, 170, 22, 4, 8, 299, 11, 6]])


def test_every_linear_but_lm_head_is_replaced(tiny):
    model, _, _, _, layers, _ = patched(tiny)
    assert len(layers) == 2 * 7
    assert isinstance(model.lm_head, nn.Linear) and not isinstance(model.lm_head, HwLinear)
    assert all(isinstance(m, HwLinear) for m in layers.values())
    plain = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    assert plain == ["lm_head"]
    if "qwen2" in tiny:
        assert layers["model.layers.0.self_attn.q_proj"].bias is not None
        assert layers["model.layers.0.self_attn.o_proj"].bias is None


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_patched_logits_equal_golden_reference(tiny, depth):
    model, ref, _, rec, _, _ = patched(tiny, HwConfig(depth=depth, rows=4, vectors=4), depth)
    with torch.inference_mode():
        got = model(IDS).logits
        want = ref(IDS).logits
    assert torch.equal(got, want)
    # and the hardware path is a real approximation of the float model, not a copy of it
    rec.set_mode("dequant")
    with torch.inference_mode():
        deq = model(IDS).logits
    assert not torch.equal(got, deq)
    rel = float((got - deq).norm() / deq.norm())
    assert 0 < rel < 0.1


def test_bias_is_added_once(tmp_path):
    folder = make_tiny_model(tmp_path / "q", "qwen2", seed=3)
    model, ref, _, _, layers, _ = patched(folder)
    q = layers["model.layers.0.self_attn.q_proj"]
    x = torch.randn(3, q.in_features)
    with torch.inference_mode():
        y = q(x)
        want = torch.from_numpy(golden.gemv(q.t, x.double().numpy())).float() + q.bias
    assert torch.equal(y, want)


def test_source_and_dequant_modes(tiny):
    from transformers import AutoModelForCausalLM

    model, _, _, rec, _, tensors = patched(tiny)
    stock = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    with torch.inference_mode():
        rec.set_mode("source")
        assert torch.allclose(model(IDS).logits, stock(IDS).logits, atol=1e-5)
        rec.set_mode("dequant")
        deq = model(IDS).logits
        for name, t in tensors.items():
            stock.get_submodule(name).weight.copy_(torch.from_numpy(t.dequantize()))
        assert torch.allclose(deq, stock(IDS).logits, atol=1e-5)
    with pytest.raises(TritforgeError, match="mode"):
        rec.set_mode("float")


def test_generation_equals_transformers_generate(tiny):
    model, _, tok, rec, _, _ = patched(tiny)
    gen = generation.generate(model, tok, rec, "the old man went to the little house", 8, progress=False)
    assert 1 <= len(gen.new_ids) <= 8
    with torch.inference_mode():
        ref = model.generate(torch.tensor([gen.prompt_ids]), max_new_tokens=len(gen.new_ids),
                             do_sample=False, eos_token_id=EOS, pad_token_id=EOS)
    assert ref[0, len(gen.prompt_ids):].tolist() == gen.new_ids
    # decode steps: one per generated token after the first
    assert gen.decode_steps == max(len(gen.new_ids) - 1, 1)
    assert isinstance(gen.text, str)


def test_prefill_and_decode_phases_and_weight_reuse(tiny):
    cfg = HwConfig(depth=2, rows=4, vectors=2)
    model, _, tok, rec, layers, _ = patched(tiny, cfg)
    gen = generation.generate(model, tok, rec, "there were one day a little old woman", 5, progress=False)
    n = len(gen.prompt_ids)
    assert n > cfg.vectors
    prefill, decode = rec.phase_stats("prefill"), rec.phase_stats("decode")
    assert list(prefill) == list(layers) and list(decode) == list(layers)
    for name, hw in layers.items():
        one_pass = hw.weight_bytes
        # prefill: the prompt goes T vectors per weight fetch
        assert prefill[name].vectors == n
        assert prefill[name].actions.weight_bytes == -(-n // cfg.vectors) * one_pass
        # decode: one weight fetch per token
        assert decode[name].calls == gen.decode_steps
        assert decode[name].actions.weight_bytes == gen.decode_steps * one_pass
        assert decode[name].cycles == decode[name].actions.cycles
    # k/v reuse the activations q loaded, up reuses gate's: no buffer writes in decode
    for name, st in decode.items():
        reused = name.endswith(("k_proj", "v_proj", "up_proj"))
        assert (st.actions.act_write_bits == 0) == reused, name


def test_per_token_figures_are_one_step(tiny):
    model, _, tok, rec, layers, _ = patched(tiny)
    gen = generation.generate(model, tok, rec, "the house", 4, progress=False)
    name = "model.layers.1.mlp.down_proj"
    cycles, actions = driver._per_call(rec.phase_stats("decode")[name], gen.decode_steps)
    assert actions.weight_bytes == layers[name].weight_bytes
    assert cycles == actions.cycles > 0


def test_one_token_still_measures_a_decode_step(tiny):
    model, _, tok, rec, _, _ = patched(tiny)
    gen = generation.generate(model, tok, rec, "the house", 1, progress=False)
    assert len(gen.new_ids) == 1 and gen.decode_steps == 1
    assert rec.phase_stats("decode")


def test_hw_error_per_layer(tiny):
    model, _, tok, rec, layers, _ = patched(tiny)
    generation.generate(model, tok, rec, "a long time ago", 3, progress=False)
    err = driver.hw_error(rec)
    assert set(err) == set(layers)
    assert all(0 < e < 0.05 for e in err.values()), err


def test_packed_file_gives_the_same_model(tiny, tmp_path):
    model, _, _, _, _, tensors = patched(tiny)
    path = str(tmp_path / "m.trit.safetensors")
    packfile.write_packed(path, {f"{n}.weight": t for n, t in tensors.items()}, {"source": os.path.basename(tiny)})
    m2, _, _ = driver.load_model(tiny)
    lin2 = patching.linear_layers(m2)
    t2 = patching.packed_layers(path, lin2, 2)
    patching.patch_model(m2, t2, HwRecorder(HwConfig(rows=4, vectors=4)))
    with torch.inference_mode():
        assert torch.equal(model(IDS).logits, m2(IDS).logits)
    with pytest.raises(TritforgeError, match="d=2, the config asks for d=3"):
        patching.packed_layers(path, lin2, 3)
    del tensors["model.layers.1.mlp.up_proj"]
    packfile.write_packed(path, tensors, {})
    with pytest.raises(TritforgeError, match="no quantized matrix for layer model.layers.1.mlp.up_proj"):
        patching.packed_layers(path, lin2, 2)


def test_bf16_checkpoint(tmp_path):
    folder = make_tiny_model(tmp_path / "bf", "llama", seed=5, dtype=torch.bfloat16)
    model, ref, _, _, _, _ = patched(folder)
    with torch.inference_mode():
        assert torch.equal(model(IDS).logits, ref(IDS).logits)


@pytest.mark.parametrize("name", ["uniform-d5", "d2", "uniform", ""])
def test_bad_config_name(name):
    with pytest.raises(TritforgeError, match="expected uniform-d1"):
        driver.parse_config(name)


def test_bad_models(tmp_path):
    with pytest.raises(TritforgeError, match="no such"):
        driver.load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TritforgeError, match="no config.json"):
        driver.load_model(str(tmp_path / "empty"))
    (tmp_path / "x.bin").write_bytes(b"12345")
    with pytest.raises(TritforgeError, match="expected a .gguf file"):
        driver.load_model(str(tmp_path / "x.bin"))
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(TritforgeError, match="architecture 'gpt2'"):
        driver.load_model(str(tmp_path / "gpt2"))


def test_shape_beyond_the_hardware(tiny):
    model, _, _ = driver.load_model(tiny)
    lin = patching.linear_layers(model)
    tensors = patching.quantize_layers(lin, 2, "tritllm-v2", progress=False)
    small = HwRecorder(HwConfig(rows=4, vectors=1, max_in_features=64))
    with pytest.raises(TritforgeError, match="in_features=88 exceeds"):
        patching.patch_model(model, tensors, small)


def test_depth_mismatch_with_hardware(tiny):
    model, _, _ = driver.load_model(tiny)
    tensors = patching.quantize_layers(patching.linear_layers(model), 3, "tritllm-v2", progress=False)
    with pytest.raises(TritforgeError, match="depth 3"):
        patching.patch_model(model, tensors, HwRecorder(HwConfig(depth=2)))


def test_resolve_hw(tmp_path):
    from tritforge.sim import boards

    board, cfg = driver.resolve_hw("default", 2)
    assert board.name == boards.DEFAULT_BOARD and cfg == board.hwconfig(2)
    board, cfg = driver.resolve_hw("ULX3S", 3)
    assert board.name == "ulx3s" and cfg.depth == 3 and cfg.vectors == board.vectors
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"depth": 1, "rows": 5, "vectors": 3, "clock_mhz": 123.0}))
    board, cfg = driver.resolve_hw(str(path), 1)
    assert (cfg.rows, cfg.vectors, board.rows, board.vectors, board.clock_mhz) == (5, 3, 5, 3, 123.0)
    assert board.bandwidth_gbs == boards.get_board("default").bandwidth_gbs
    assert board.name == f"{boards.DEFAULT_BOARD}+hw.json"       # the board it runs on, named
    board, cfg = driver.resolve_hw(str(boards.boards_folder().joinpath("u280.toml")), 2)
    assert board.name == "u280" and cfg.rows == board.rows      # a board description
    with pytest.raises(TritforgeError, match="hardware depth d=1, but the config asks for d=2"):
        driver.resolve_hw(str(path), 2)
    with pytest.raises(TritforgeError, match="expected a board"):
        driver.resolve_hw("nosuch", 2)


def test_activation_buffer_reuse_rule():
    rec = HwRecorder(HwConfig(vectors=2))
    a = np.arange(32, dtype=np.int8).reshape(2, 16)
    assert rec.needs_load(a)                 # empty buffer
    assert not rec.needs_load(a.copy())      # same vectors: reused
    assert rec.needs_load(a[:1])             # different count
    three = np.arange(48, dtype=np.int8).reshape(3, 16)
    assert rec.needs_load(three)             # more than T: always loaded, buffer keeps the tail
    assert not rec.needs_load(three[2:])     # the last command's vector (3 = 2 + 1)
    rec.reset()
    assert rec.needs_load(three[2:])


# --- the whole-layer hardware path --------------------------------------------------------

def test_run_reports_the_three_paths(tiny, tmp_path):
    accel = tmp_path / "accel.json"
    accel.write_text(json.dumps({"attention": {"block": 8}, "lm_head": "host-fp16",
                                 "engine": {"depth": 3}}))
    opts = driver.RunOptions(model=tiny, eval_tokens=48, max_new_tokens=3, progress=False,
                             accel=str(accel))
    r = driver.run(opts)
    q = r["quality"]
    assert r["path"] == "layer"
    # the engine is always --hw's; the file's attention and lm_head are used
    assert r["accelconfig"]["engine"]["depth"] == 2 and r["accelconfig"]["attention"]["block"] == 8
    assert r["accelconfig"]["lm_head"] == "host-fp16"
    for key in ("ppl_quantized", "ppl_hw", "ppl_layer", "layer_top1_agreement", "layer_vs_hw_logit_rmse"):
        assert np.isfinite(q[key])
    assert q["ppl_layer"] != q["ppl_hw"]
    assert abs(np.log(q["ppl_layer"] / q["ppl_quantized"])) < 0.1
    assert r["layers"] and all(e["cycles"] > 0 for e in r["layers"])


def test_run_linear_path_and_bad_path(tiny):
    r = driver.run(driver.RunOptions(model=tiny, eval_tokens=24, max_new_tokens=2, progress=False,
                                     path="linear"))
    assert r["path"] == "linear" and "ppl_layer" not in r["quality"] and "ppl_hw" in r["quality"]
    with pytest.raises(TritforgeError, match="path 'float'"):
        driver.run(driver.RunOptions(model=tiny, eval_tokens=0, progress=False, path="float"))


def test_resolve_accel(tmp_path):
    cfg = HwConfig(depth=2, rows=8)
    assert driver.resolve_accel(None, cfg).engine == cfg
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"vector": {"resid_frac_bits": 40}}))
    with pytest.raises(TritforgeError, match="a.json: vector.resid_frac_bits: expected a value <= 38, got 40"):
        driver.resolve_accel(str(p), cfg)
