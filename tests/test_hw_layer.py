"""The decoder-layer top (hw/layer.py) in Amaranth's simulator: a tiny random Llama layer,
one decode token after a prompt, or T prompt tokens on a prefill build, bit-exact against
sim.hwlayer.HwDecoderLayer.compute (the new residual and the K/V rows it writes) and
cycle-exact against sim/layercycles.layer_cycles; the same on Verilator under stalls and a
reset. The layer's
two norms have weights of their own (different gamma_frac), streamed through ``norm``."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tritforge.accelconfig import AccelConfig, AttentionConfig
from tritforge.hw.layer import DecoderLayer
from tritforge.hw.simdriver import run_streams
from tritforge.hwconfig import HwConfig
from tritforge.layerconfig import LayerConfig
from tritforge.layerports import layer_ports
from tritforge.ports import by_name
from tritforge.sim import patching
from tritforge.sim.hwlayer import patch_layers
from tritforge.sim.hwlinear import HwRecorder
from tritforge.sim.layercycles import layer_cycles
from tritforge.sim.layerstreams import layer_case
from tinymodels import tiny_model


def tiny_layer(arch="llama", block=4, intermediate=96, tokens=1, shape=(64, 4, 2)):
    """shape: (hidden, heads, KV heads)."""
    hidden, heads, kv_heads = shape
    model = tiny_model(arch, intermediate=intermediate, hidden=hidden, heads=heads, kv_heads=kv_heads)
    with torch.no_grad():           # two norms of their own weights and gamma_frac (random init: ones)
        torch.manual_seed(5)
        for lyr in model.model.layers:
            lyr.input_layernorm.weight.normal_(1.0, 0.4)
            lyr.post_attention_layernorm.weight.normal_(0.2, 0.1)
    width = max(96, hidden, intermediate)
    engine = HwConfig(depth=2, rows=4, vectors=1, max_in_features=width, max_out_features=width)
    accel = AccelConfig(engine=engine, attention=AttentionConfig(max_context=64, block=block))
    tensors = patching.quantize_layers(patching.linear_layers(model), 2, "tritllm-v2", progress=False)
    rec = HwRecorder(engine)
    patching.patch_model(model, tensors, rec)
    layers = patch_layers(model, rec, accel)
    return LayerConfig.for_model(model.config, accel, lanes=8, tokens=tokens), layers[0]


def prompt(layer, lcfg, n, rng):
    FR = lcfg.accel.vector.resid_frac_bits
    for p in range(n):
        layer.compute(np.rint(rng.standard_normal((1, lcfg.hidden)) * 2 ** FR).astype(np.int64), np.array([p]))


@pytest.mark.parametrize("tokens,pos,block,intermediate,shape",
                         [(1, 0, 4, 96, (64, 4, 2)), (1, 6, 4, 96, (64, 4, 2)), (1, 13, 3, 88, (64, 4, 2)),
                          (2, 6, 4, 96, (64, 4, 2)), (3, 13, 3, 88, (64, 4, 2)), (1, 5, 4, 96, (128, 8, 1)),
                          (2, 5, 4, 96, (128, 8, 1))])
def test_layer_bit_and_cycle_exact(tokens, pos, block, intermediate, shape):
    """One decode token (tokens 1) or, on a build of T tokens per command (the engine's
    vectors), T prompt tokens at pos..pos+T-1 with one pass over the weights: bit-exact
    against the golden layer (the causal attention over the command's new rows included)
    and cycle-exact against the schedule's closed form. intermediate 88: down_proj's input
    padded to 96, gate/up's last tile full of rows. Shape (128, 8, 1): eight query heads over
    one KV head, so the q heads' rotation outlasts KVW beside it (in the other shapes KVW
    ends the ROPE pass)."""
    lcfg, layer = tiny_layer(block=block, intermediate=intermediate, tokens=tokens, shape=shape)
    rng = np.random.default_rng(pos)
    prompt(layer, lcfg, pos, rng)
    h = np.rint(rng.standard_normal((tokens, lcfg.hidden)) * 2 ** lcfg.accel.vector.resid_frac_bits)
    case = layer_case(lcfg, layer, h, pos)
    got, when = run_streams(DecoderLayer(lcfg), case.inputs,
                            {"h_out": tokens * lcfg.hidden, "kv_wr": len(case.kv_wr)},
                            max_cycles=400_000, final={"err": None, "busy": None})
    ports = by_name(layer_ports(lcfg))
    h_out = np.array([ports["h_out"].unpack(x)["h"] for x in got["h_out"]])
    assert got["kv_wr"] == case.kv_wr
    np.testing.assert_array_equal(h_out, case.h_out)
    assert when["h_out"][-1] - when["cmd"][0] == layer_cycles(lcfg, pos)["total"]


def test_prefill_builds_are_checked():
    """T > 1 needs every vector a multiple of R and every matrix at least R groups."""
    from tritforge.errors import TritforgeError

    lcfg, _ = tiny_layer(tokens=2)
    with pytest.raises(TritforgeError, match="intermediate=90 is not a multiple"):
        LayerConfig(hidden=64, intermediate=90, heads=4, kv_heads=2, head_dim=16, lanes=8, accel=lcfg.accel)
    wide = HwConfig(depth=2, rows=8, vectors=2, max_in_features=96, max_out_features=96)
    with pytest.raises(TritforgeError, match="4 groups of 16 inputs, fewer than the engine's rows R=8"):
        LayerConfig(hidden=64, intermediate=96, heads=4, kv_heads=2, head_dim=16, lanes=8,
                    accel=AccelConfig(engine=wide, attention=lcfg.accel.attention))


@pytest.mark.parametrize("tokens", [1, 2])
def test_layer_on_verilator(request, tmp_path, tokens):
    """The same tiny layer on Verilator (packaged stream bench) under stalls, with a reset
    in the middle: bit-exact; a decode build and a build of 2 prompt tokens per command."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
    import harness

    lcfg, layer = tiny_layer(tokens=tokens)
    rng = np.random.default_rng(21)
    prompt(layer, lcfg, 5, rng)
    h = np.rint(rng.standard_normal((tokens, lcfg.hidden)) * 2 ** lcfg.accel.vector.resid_frac_bits)
    case = layer_case(lcfg, layer, h, 5)
    top = DecoderLayer(lcfg)
    build = harness.build_component(request, top, f"tritforge_layer_t{tokens}", meta={"unit": "layer"})
    job = {"inputs": case.inputs, "outputs": {"h_out": tokens * lcfg.hidden, "kv_wr": len(case.kv_wr)},
           "flags": ["err", "busy"]}
    rep = harness.run_streams(build, job, tmp_path, stalls={"idle": 0.2, "bp": 0.2, "burst": 2}, seed=3,
                              reset_at=[900])
    ports = by_name(layer_ports(lcfg))
    h_out = np.array([ports["h_out"].unpack(x)["h"] for x in rep["outputs"]["h_out"]])
    np.testing.assert_array_equal(h_out, case.h_out)
    assert rep["outputs"]["kv_wr"] == case.kv_wr
    assert rep["flags"] == {"err": 0, "busy": 0}
