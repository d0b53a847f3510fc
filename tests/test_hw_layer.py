"""The decoder-layer top (hw/layer.py) in Amaranth's simulator: a tiny random Llama layer,
one decode token after a prompt, bit-exact against sim.hwlayer.HwDecoderLayer.compute
(the new residual and the K/V rows it writes) and cycle-exact against
sim/layercycles.layer_cycles; the same on Verilator under stalls and a reset. The layer's
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


def tiny_layer(arch="llama", block=4, intermediate=96):
    model = tiny_model(arch, intermediate=intermediate)
    with torch.no_grad():           # two norms of their own weights and gamma_frac (random init: ones)
        torch.manual_seed(5)
        for lyr in model.model.layers:
            lyr.input_layernorm.weight.normal_(1.0, 0.4)
            lyr.post_attention_layernorm.weight.normal_(0.2, 0.1)
    engine = HwConfig(depth=2, rows=4, vectors=1, max_in_features=96, max_out_features=96)
    accel = AccelConfig(engine=engine, attention=AttentionConfig(max_context=64, block=block))
    tensors = patching.quantize_layers(patching.linear_layers(model), 2, "tritllm-v2", progress=False)
    rec = HwRecorder(engine)
    patching.patch_model(model, tensors, rec)
    layers = patch_layers(model, rec, accel)
    return LayerConfig.for_model(model.config, accel, lanes=8), layers[0]


def prompt(layer, lcfg, n, rng):
    FR = lcfg.accel.vector.resid_frac_bits
    for p in range(n):
        layer.compute(np.rint(rng.standard_normal((1, lcfg.hidden)) * 2 ** FR).astype(np.int64), np.array([p]))


@pytest.mark.parametrize("pos,block,intermediate", [(0, 4, 96), (6, 4, 96), (13, 3, 88)])
def test_one_decode_token_bit_exact(pos, block, intermediate):
    """intermediate 88: down_proj's input padded to 96, gate/up's last tile full of rows."""
    lcfg, layer = tiny_layer(block=block, intermediate=intermediate)
    rng = np.random.default_rng(pos)
    prompt(layer, lcfg, pos, rng)
    h = np.rint(rng.standard_normal(lcfg.hidden) * 2 ** lcfg.accel.vector.resid_frac_bits)
    case = layer_case(lcfg, layer, h, pos)
    top = DecoderLayer(lcfg)
    got, when = run_streams(top, case.inputs, {"h_out": lcfg.hidden, "kv_wr": len(case.kv_wr)},
                            max_cycles=200_000, final={"err": None, "busy": None})
    ports = by_name(layer_ports(lcfg))
    h_out = np.array([ports["h_out"].unpack(x)["h"] for x in got["h_out"]])
    assert got["kv_wr"] == case.kv_wr
    np.testing.assert_array_equal(h_out, case.h_out)
    # cycle-exact against the schedule's closed form
    assert when["h_out"][-1] - when["cmd"][0] == layer_cycles(lcfg, pos)["total"]


def test_layer_on_verilator(request, tmp_path):
    """The same tiny layer on Verilator (packaged stream bench) under stalls, with a reset
    in the middle: bit-exact."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
    import harness

    lcfg, layer = tiny_layer()
    rng = np.random.default_rng(21)
    prompt(layer, lcfg, 5, rng)
    h = np.rint(rng.standard_normal(lcfg.hidden) * 2 ** lcfg.accel.vector.resid_frac_bits)
    case = layer_case(lcfg, layer, h, 5)
    top = DecoderLayer(lcfg)
    build = harness.build_component(request, top, "tritforge_layer", meta={"unit": "layer"})
    job = {"inputs": case.inputs, "outputs": {"h_out": lcfg.hidden, "kv_wr": len(case.kv_wr)},
           "flags": ["err", "busy"]}
    rep = harness.run_streams(build, job, tmp_path, stalls={"idle": 0.2, "bp": 0.2, "burst": 2}, seed=3,
                              reset_at=[900])
    ports = by_name(layer_ports(lcfg))
    h_out = np.array([ports["h_out"].unpack(x)["h"] for x in rep["outputs"]["h_out"]])
    np.testing.assert_array_equal(h_out, case.h_out)
    assert rep["outputs"]["kv_wr"] == case.kv_wr
    assert rep["flags"] == {"err": 0, "busy": 0}
