"""sim.hwlayer: tiny random Llama and Qwen2 through the whole-layer hardware path."""
from __future__ import annotations

import copy

import pytest
import torch

from tritforge.accelconfig import AccelConfig, AttentionConfig
from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim import generation, patching
from tritforge.sim.hwlayer import HwDecoderLayer, HwHead, patch_layers
from tritforge.sim.hwlinear import HwLinear, HwRecorder
from tinymodels import make_tokenizer, tiny_model

CFG = HwConfig(depth=2, rows=4, vectors=4)
IDS = torch.tensor([[1, 5, 9, 3, 170, 22, 4, 8, 299, 11, 6, 17, 40, 41]])


def build(arch, lm_head="int8", accel=None, tied=False):
    model = tiny_model(arch, tied=tied)
    tensors = patching.quantize_layers(patching.linear_layers(model), 2, "tritllm-v2", progress=False)
    rec = HwRecorder(CFG)
    patching.patch_model(model, tensors, rec)
    accel = accel or AccelConfig(engine=CFG, lm_head=lm_head)
    layers = patch_layers(model, rec, accel)
    return model, rec, layers


def logits(model, rec, mode, ids=IDS, **kw):
    rec.set_mode(mode)
    with torch.inference_mode():
        return model(input_ids=ids, use_cache=False, **kw).logits.double()


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def patched(request):
    return build(request.param)


def test_modules_replaced_and_names_kept(patched):
    model, rec, layers = patched
    assert all(isinstance(m, HwDecoderLayer) for m in model.model.layers)
    assert isinstance(model.lm_head, HwHead)
    names = {n for n, m in model.named_modules() if isinstance(m, HwLinear)}
    assert "model.layers.0.self_attn.q_proj" in names and "model.layers.1.mlp.down_proj" in names
    assert len(names) == 2 * 7


def test_layer_path_close_to_float_and_not_a_copy(patched):
    model, rec, _ = patched
    deq, hw, lay = (logits(model, rec, m) for m in ("dequant", "hw", "layer"))
    rel_hw = float((hw - deq).norm() / deq.norm())
    rel_layer = float((lay - deq).norm() / deq.norm())
    assert 0 < rel_layer < 0.05
    assert rel_layer < 4 * rel_hw + 0.01
    assert (lay.argmax(-1) == deq.argmax(-1)).float().mean() > 0.8


def test_other_modes_unchanged_by_the_patch(patched):
    model, rec, _ = patched
    ref = tiny_model("qwen2" if model.config.model_type == "qwen2" else "llama")
    with torch.inference_mode():
        want = ref(input_ids=IDS).logits.double()
    assert torch.allclose(logits(model, rec, "source"), want, atol=1e-5)


def test_prefill_then_decode_equals_one_pass(patched):
    model, rec, _ = patched
    full = logits(model, rec, "layer")
    rec.set_mode("layer")
    parts = [logits(model, rec, "layer", IDS[:, :9])]
    for i in range(9, IDS.shape[1]):
        parts.append(logits(model, rec, "layer", IDS[:, i:i + 1], position_ids=torch.tensor([[i]])))
    assert torch.equal(full, torch.cat(parts, 1))
    # a new sequence (position 0) starts from an empty cache
    assert torch.equal(logits(model, rec, "layer"), full)


def test_block_size_changes_the_integers_only_slightly():
    a, rec_a, _ = build("llama", accel=AccelConfig(engine=CFG, attention=AttentionConfig(block=1)))
    b, rec_b, _ = build("llama")
    la, lb = logits(a, rec_a, "layer"), logits(b, rec_b, "layer")
    assert float((la - lb).norm() / lb.norm()) < 0.01


@pytest.mark.parametrize("head,tol", [("ternary", 0.25), ("host-fp16", 0.05)])
def test_lm_head_choices(head, tol):
    # "ternary" adds the d = 2 quantization of lm_head itself (the float paths keep it float)
    model, rec, _ = build("llama", lm_head=head, tied=True)
    deq, lay = logits(model, rec, "dequant"), logits(model, rec, "layer")
    assert 0 < float((lay - deq).norm() / deq.norm()) < tol
    if head == "ternary":
        assert ("lm_head", "idle") in rec.stats


def test_generation_through_the_layer_path(patched):
    model, rec, _ = patched
    tok = make_tokenizer()
    rec.set_mode("layer")
    gen = generation.generate(model, tok, rec, "the old man went", 5, progress=False)
    assert len(gen.new_ids) >= 1 and gen.decode_steps >= 1
    # the same tokens as one pass over prompt + generated tokens (the cache is consistent)
    ids = torch.tensor([gen.prompt_ids + gen.new_ids])
    want = logits(model, rec, "layer", ids)[0, len(gen.prompt_ids) - 1:-1].argmax(-1).tolist()
    assert want[:len(gen.new_ids)] == gen.new_ids
    assert rec.phase_stats("decode")


def test_bad_inputs_refused(patched):
    model, rec, _ = patched
    rec.set_mode("layer")
    with pytest.raises(TritforgeError, match="batch of 2"):
        logits(model, rec, "layer", IDS.repeat(2, 1))
    logits(model, rec, "layer", IDS[:, :4])
    with pytest.raises(TritforgeError, match="do not continue the KV cache of 4 tokens"):
        logits(model, rec, "layer", IDS[:, 4:5], position_ids=torch.tensor([[7]]))
    short = AccelConfig(engine=CFG, attention=AttentionConfig(max_context=8))
    m2, r2, _ = build("llama", accel=short)
    with pytest.raises(TritforgeError, match="max_context=8"):
        logits(m2, r2, "layer")


def test_uncovered_architectures_refused():
    model = tiny_model("qwen2")
    model.config.use_sliding_window = True
    model.config.layer_types = ["sliding_attention"] * 2
    tensors = patching.quantize_layers(patching.linear_layers(model), 2, "tritllm-v2", progress=False)
    rec = HwRecorder(CFG)
    patching.patch_model(model, tensors, rec)
    with pytest.raises(TritforgeError, match="qwen2 with sliding-window attention") as exc:
        patch_layers(model, rec, AccelConfig(engine=CFG))
    assert "\n" not in str(exc.value)
    m = copy.deepcopy(model)
    m.config.use_sliding_window, m.config.layer_types = False, ["full_attention"] * 2
    m.config.hidden_act = "gelu"
    with pytest.raises(TritforgeError, match="activation 'gelu'"):
        patch_layers(m, rec, AccelConfig(engine=CFG))
    with pytest.raises(TritforgeError, match="engine differs"):
        m.config.hidden_act = "silu"
        patch_layers(m, rec, AccelConfig(engine=HwConfig(depth=2, rows=8)))
