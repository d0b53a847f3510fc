"""The decoder-layer top as Verilog plus a JSON sidecar (``tritforge generate --layer``).

The sidecar is what an integrator (or a memory controller's designer) needs beside the
module: the build (``LayerConfig``: shape, accelerator, lanes), the port map from the port
set (``tritforge.layerports``, the same form as the engine's sidecar), the vector memory's
regions, the matrices in schedule order with their weight beats, and the cycles of one
decode token at context 1 and at the build's largest context by the schedule's closed form
(``sim.layercycles``, which the RTL meets exactly).
"""
from __future__ import annotations

from amaranth.back import verilog

from ..layerconfig import LayerConfig
from ..layerports import layer_ports
from .layer import DecoderLayer
from .verilog import _versions, ports_map, write_module

TOP = "tritforge_layer"
FORMAT = "tritforge-layer-sidecar"
VERSION = 1


def convert(lcfg: LayerConfig, top: str = TOP) -> str:
    return verilog.convert(DecoderLayer(lcfg), name=top, emit_src=False)


def sidecar(lcfg: LayerConfig, top: str = TOP) -> dict:
    from ..sim.layercycles import layer_cycles

    e = lcfg.accel.engine
    ctx = lcfg.accel.attention.max_context
    return {"format": FORMAT, "version": VERSION, "top": top, "layer": lcfg.to_dict(),
            "derived": {"memory_depth": lcfg.memory_depth, "regions": lcfg.regions,
                        "matrices": [{"name": m.name, "in": m.in_features, "out": m.out_features,
                                      "load": m.load, "beats": e.tiles(m.out_features) * m.groups}
                                     for m in lcfg.matrices],
                        "pipeline_stages": e.pipeline_stages,
                        # a command's cycles (T tokens): the one at position 0, the one
                        # ending at the largest context
                        "tokens": lcfg.tokens,
                        "cycles_context_1": layer_cycles(lcfg, 0)["total"],
                        f"cycles_context_{ctx}": layer_cycles(lcfg, ctx - lcfg.tokens)["total"]},
            "ports": ports_map(layer_ports(lcfg)), "tools": _versions()}


def write(lcfg: LayerConfig, out_dir: str, top: str = TOP) -> dict:
    """Write ``out_dir/<top>.v`` and ``out_dir/<top>.json``; returns the paths, sizes and
    the sidecar."""
    side = sidecar(lcfg, top)
    return {**write_module(out_dir, top, convert(lcfg, top), side), "side": side}
