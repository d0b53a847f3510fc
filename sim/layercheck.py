"""The RTL check of a whole decoder layer (``tritforge run --path layer --rtl-sample``): the
last decode token of a real layer replayed through the decoder-layer top (hw/layer.py) on
Verilator, against the integer layer the run computed; with ``prefill`` T, also the last T
tokens as one command on a build of T tokens per command (hw/LAYER.md "Prefill").

After a run on the whole-layer path every ``sim.hwlayer.HwDecoderLayer`` holds its KV
cache and its last tokens' input residuals. ``check_layer`` rewinds the cache by the
replayed tokens, makes the layer top's input streams and expected outputs from the golden
layer (``sim.layerstreams.layer_case``: the same integers the run produced, checked), builds
the layer top for the model's shape (``LayerConfig.for_model``, the run's accelerator,
engine with one vector, or T) and plays the streams with the packaged stream bench
(``tritforge.hw.verif.bench_streams``): the new residuals and K/V rows bit for bit, the
cycles from the command to the last residual element against ``sim.layercycles``.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from ..atomic import scratch
from ..errors import TritforgeError
from ..layerconfig import LayerConfig
from ..layerports import layer_ports
from ..ports import by_name
from .layercycles import layer_cycles
from .layerstreams import layer_case

TOPLEVEL = "tritforge_layer"


def memory_paces(lcfg: LayerConfig, board) -> dict:
    """The board's memory serving the layer's weight and KV streams (``bench_streams``
    ``pace``): its sustained bandwidth as beats per cycle of each stream at the board's
    clock (each stream alone on the bus: the phases that read them do not overlap), the
    first beat one row overhead (tRP + tRCD, ``sim.memory``) after the start."""
    from .unitcycles import scale_bytes

    mem = board.memory_system()
    per_cycle = mem.sustained_gbs * 1e9 / (board.clock_mhz * 1e6)
    latency = int(round(mem.row_overhead_ns() * board.clock_mhz / 1e3))
    ucfg = lcfg.attention_unit
    kv_beat = (lcfg.head_dim + scale_bytes(lcfg.accel.attention)) / ucfg.beats
    return {"w": {"rate": min(1.0, per_cycle / lcfg.accel.engine.beat_bytes), "latency": latency},
            "kv_rd": {"rate": min(1.0, per_cycle / kv_beat), "latency": latency}}


def replay_case(layer, lcfg: LayerConfig):
    """The layer top's streams and outputs for ``layer``'s last ``lcfg.tokens`` tokens, from
    a copy of its cache rewound by them (the run's own K/V rows checked); (case, first
    position)."""
    T = lcfg.tokens
    recent = list(layer.recent_inputs)[-T:]
    if len(recent) < T or recent[-1][1] - recent[0][1] != T - 1:
        raise TritforgeError(f"layer {layer.index}: {len(recent)} consecutive tokens recorded, the RTL layer "
                             f"check needs {T}")
    pos = recent[0][1]
    saved, saved_inputs = layer.cache, layer.recent_inputs.copy()
    try:
        layer.cache = saved.truncated(pos)
        case = layer_case(lcfg, layer, np.stack([h for h, _ in recent]), pos)
        rerun_cache = layer.cache
    finally:
        layer.cache, layer.recent_inputs = saved, saved_inputs
    rows = slice(pos, pos + T)
    same_rows = all(np.array_equal(getattr(rerun_cache, n)[rows], getattr(saved, n)[rows])
                    for n in ("k_q", "k_m", "k_e", "v_q", "v_m", "v_e"))
    if not same_rows:
        raise TritforgeError(f"layer {layer.index}: the golden layer does not reproduce the run's K/V rows")
    return case, pos


def check_layer(layer, model_config, accel, *, lanes: int = 16, build_root=None, stalls=None,
                seed: int = 0, board=None, prefill: int = 0) -> dict:
    """Replay ``layer``'s last token on the RTL; a dict of what was checked and found. With
    a ``board``, a second run serves the weight and KV streams at its memory's pace
    (``memory_paces``) and gives the cycles with that memory. With ``prefill`` T > 1, the
    last T tokens also as one command on a build of T tokens per command (``"prefill"``,
    with a ``match`` of its own)."""
    lcfg = LayerConfig.for_model(model_config, accel, lanes)
    case, pos = replay_case(layer, lcfg)
    pre = None
    if prefill > 1:
        lcfg_t = LayerConfig.for_model(model_config, accel, lanes, tokens=prefill)
        pre = (lcfg_t,) + replay_case(layer, lcfg_t)
    with scratch():                 # the builds and the jobs are read back here
        out = _play(lcfg, case, layer.index, pos, build_root, stalls, seed)
        if board is not None and out["match"]:
            paces = memory_paces(lcfg, board)
            paced = _play(lcfg, case, layer.index, pos, build_root, stalls, seed, paces)
            out["memory"] = {"board": board.name, "paces": paces, "cycles": paced["cycles"],
                             "match": paced["match"], "failures": paced["failures"]}
            out["match"] = out["match"] and paced["match"]
        if pre is not None:
            out["prefill"] = _play(*pre[:2], layer.index, pre[2], build_root, stalls, seed)
        return out


def _play(lcfg, case, index, pos, build_root, stalls, seed, pace=None) -> dict:
    """Build the layer top and play ``case`` on it under Verilator."""
    from . import cosim
    from ..hw.layer import DecoderLayer

    top = DecoderLayer(lcfg)
    t0 = time.perf_counter()
    verilog = cosim.convert(top, TOPLEVEL)
    build = cosim.build(verilog, TOPLEVEL, cosim.component_ports(top),
                        build_root or cosim.default_build_root(), meta={"unit": "layer", "lcfg": repr(lcfg)})
    build_s = time.perf_counter() - t0
    n_out = lcfg.tokens * lcfg.hidden
    job = {"inputs": case.inputs, "outputs": {"h_out": n_out, "kv_wr": len(case.kv_wr)},
           "flags": ["err", "busy"]}
    with tempfile.TemporaryDirectory(prefix="tritforge-layer-") as work:
        t1 = time.perf_counter()
        res, rep = cosim.play_streams(build, job, work, stalls=stalls, seed=seed, limit=50_000_000,
                                      pace=pace)
        sim_s = time.perf_counter() - t1
        failures = []
        if res.failed or rep is None:
            failures.append(f"cocotb: {res.failed} of {res.tests} tests failed (log {work}/sim.log)")
            rep = None
    T = lcfg.tokens
    out = {"layer": index, "position": pos, "tokens": T, "context": pos + T, "hidden": lcfg.hidden,
           "weight_beats": len(case.inputs["w"]),
           "kv_rows_read": 2 * lcfg.kv_heads * sum(pos + t + 1 for t in range(T)),
           "build_s": build_s, "verilator_s": sim_s}
    if rep is not None:
        port = by_name(layer_ports(lcfg))["h_out"]
        h_out = np.array([port.unpack(x)["h"] for x in rep["outputs"]["h_out"]])
        bad = np.flatnonzero(h_out != case.h_out)
        if bad.size:
            failures.append(f"h_out: {bad.size} of {n_out} elements differ (first at {int(bad[0])})")
        if rep["outputs"]["kv_wr"] != case.kv_wr:
            failures.append("kv_wr: the new K/V rows differ")
        if rep["flags"].get("err"):
            failures.append("err raised")
        cycles = rep["cycles"]["h_out"][-1] - rep["cycles"]["cmd"][0]
        model = layer_cycles(lcfg, pos)
        if not stalls and not pace and cycles != model["total"]:
            failures.append(f"cycles: {cycles} on the RTL, {model['total']} by the closed form")
        out.update(cycles=cycles, cycles_model=model["total"], phases=dict(model["phases"]),
                   cycles_per_s=rep["total_cycles"] / sim_s if sim_s > 0 else None,
                   weight_stream_utilisation=len(case.inputs["w"]) / cycles)
    out.update(match=not failures, failures=failures)
    return out
