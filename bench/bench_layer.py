"""The decoder layer's units: simulation speeds and SmolLM2 decode cycles. Prints figures;
asserts nothing beyond the equalities every figure rests on.

* the attention unit (SmolLM2's head_dim 64, group 3, 16 lanes; 70 keys): Amaranth's
  simulator, the per-cycle stepping model (sim/attentionstep.py) and Verilator (the
  packaged stream bench) in cycles/s, and the closed form (sim/attentioncycles.py) they
  all meet;
* the decoder-layer top on a tiny random Llama layer (hidden 64): Amaranth's simulator
  and Verilator in cycles/s, against the closed form (sim/layercycles.py);
* SmolLM2-135M's decode token on the layer top by the closed form, at R = 4 and R = 16 and
  contexts 1 .. 8192: cycles per layer, the weight stream's share, tokens/s of the 30
  layers at 200 MHz;
* SmolLM2-135M's 64-token prompt on prefill builds (T tokens per command, hw/LAYER.md
  "Prefill") by the closed form: cycles per prompt token, the weight bytes each token
  streams and the bandwidth the schedule needs at 200 MHz, the 30 layers' time.

Run: ``.venv/bin/python bench/bench_layer.py`` (``--skip-verilator`` to leave out the
Verilator builds, about a minute each the first time).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "cocotb"))

from tritforge.accelconfig import AccelConfig, AttentionConfig  # noqa: E402
from tritforge.attentionunit import AttentionUnitConfig  # noqa: E402
from tritforge.hw.attention import AttentionUnit  # noqa: E402
from tritforge.hw.simdriver import run_streams  # noqa: E402
from tritforge.hwconfig import HwConfig  # noqa: E402
from tritforge.layerconfig import LayerConfig  # noqa: E402
from tritforge.sim.attentioncycles import job_cycles  # noqa: E402
from tritforge.sim.estimate import load_shape  # noqa: E402
from tritforge.sim.layercycles import layer_cycles, weight_beats  # noqa: E402


def attention(verilator: bool) -> None:
    from test_attentionstep import lockstep_jobs
    from test_hw_attention import make_job

    ucfg = AttentionUnitConfig(head_dim=64, group=3, lanes=16, attention=AttentionConfig(max_context=256))
    keys = 70
    ins, want = make_job(ucfg, keys, np.random.default_rng(1))
    t = time.perf_counter()
    got, when = run_streams(AttentionUnit(ucfg), ins, {"out": ucfg.group * ucfg.beats}, max_cycles=100_000)
    amaranth_s = time.perf_counter() - t
    cycles = when["out"][-1] - when["cmd"][0]
    assert cycles == job_cycles(ucfg, keys)
    print(f"attention  head_dim 64, group 3, 16 lanes, {keys} keys: {cycles:,} cycles (= closed form)")
    print(f"  amaranth simulator  {cycles / amaranth_s:10,.0f} cycles/s")
    t = time.perf_counter()
    n = 0
    for _ in range(3):
        lockstep_jobs(ucfg, [ins], seed=7, p_valid=1.0, p_ready=1.0, cycles=cycles + 10)
        n += cycles + 10
    print(f"  amaranth + stepping model in lockstep  {n / (time.perf_counter() - t):10,.0f} cycles/s")
    if verilator:
        import harness
        from tritforge.sim import cosim
        with tempfile.TemporaryDirectory() as tmp:
            unit = AttentionUnit(ucfg)
            b = cosim.build(cosim.convert(unit, "tritforge_attention"), "tritforge_attention",
                            cosim.component_ports(unit), Path(tmp) / "b")
            job = {"inputs": ins, "outputs": {"out": ucfg.group * ucfg.beats}, "flags": ["err"]}
            rep = harness.run_streams(b, job, Path(tmp) / "run")
        print(f"  verilator (cocotb)  {rep['total_cycles'] / rep['wall_s']:10,.0f} cycles/s "
              f"(build {b.seconds:.0f} s)")


def tiny_layer(verilator: bool) -> None:
    from test_hw_layer import prompt, tiny_layer as make
    from tritforge.hw.layer import DecoderLayer
    from tritforge.sim.layerstreams import layer_case

    lcfg, layer = make()
    rng = np.random.default_rng(3)
    prompt(layer, lcfg, 9, rng)
    h = np.rint(rng.standard_normal(lcfg.hidden) * 2 ** lcfg.accel.vector.resid_frac_bits)
    case = layer_case(lcfg, layer, h, 9)
    outs = {"h_out": lcfg.hidden, "kv_wr": len(case.kv_wr)}
    t = time.perf_counter()
    got, when = run_streams(DecoderLayer(lcfg), case.inputs, outs, max_cycles=100_000)
    amaranth_s = time.perf_counter() - t
    cycles = when["h_out"][-1] - when["cmd"][0]
    assert cycles == layer_cycles(lcfg, 9)["total"]
    print(f"layer top  tiny Llama layer (hidden 64, R = 4), context 10: {cycles:,} cycles (= closed form)")
    print(f"  amaranth simulator  {cycles / amaranth_s:10,.0f} cycles/s")
    if verilator:
        import harness
        from tritforge.sim import cosim
        with tempfile.TemporaryDirectory() as tmp:
            top = DecoderLayer(lcfg)
            b = cosim.build(cosim.convert(top, "tritforge_layer"), "tritforge_layer",
                            cosim.component_ports(top), Path(tmp) / "b")
            rep = harness.run_streams(b, {"inputs": case.inputs, "outputs": outs, "flags": ["err"]},
                                      Path(tmp) / "run")
        print(f"  verilator (cocotb)  {rep['total_cycles'] / rep['wall_s']:10,.0f} cycles/s "
              f"(build {b.seconds:.0f} s)")


def smollm2() -> dict:
    shape = load_shape("smollm2-135m")
    out = {}
    print("SmolLM2-135M decode token on the layer top (closed form, d = 2, 200 MHz):")
    print(f"  {'R':>3} {'context':>8} {'cycles/layer':>13} {'weight beats':>13} {'stream busy':>12} "
          f"{'layers tok/s':>13}")
    for rows in (4, 16):
        lcfg = LayerConfig.for_model(shape, AccelConfig(engine=HwConfig(rows=rows)))
        beats = weight_beats(lcfg)
        for ctx in (1, 64, 512, 2048, 8192):
            c = layer_cycles(lcfg, ctx - 1)["total"]
            tps = 200e6 / (c * shape["num_hidden_layers"])
            out[f"R{rows}_ctx{ctx}"] = {"cycles_per_layer": c, "utilisation": beats / c, "tokens_per_s": tps}
            print(f"  {rows:>3} {ctx:>8,} {c:>13,} {beats:>13,} {beats / c * 100:>11.1f}% {tps:>13.1f}")
    return out


def prefill() -> dict:
    shape = load_shape("smollm2-135m")
    layers, prompt_len = shape["num_hidden_layers"], 64
    out = {}
    print(f"SmolLM2-135M {prompt_len}-token prompt on the layer top, T tokens per command (closed form, d = 2, "
          f"200 MHz):")
    print(f"  {'R':>3} {'T':>3} {'cycles/token/layer':>19} {'weight B/token/layer':>21} {'stream GB/s':>12} "
          f"{'layers ms':>10}")
    for rows in (4, 16):
        for tokens in (1, 4, 16):
            lcfg = LayerConfig.for_model(shape, AccelConfig(engine=HwConfig(rows=rows)), tokens=tokens)
            cycles = sum(layer_cycles(lcfg, pos)["total"] for pos in range(0, prompt_len, tokens))
            wbytes = weight_beats(lcfg) * lcfg.accel.engine.beat_bytes * (prompt_len // tokens)
            per_tok, bytes_tok = cycles / prompt_len, wbytes / prompt_len
            gbs = wbytes / cycles * 200e6 / 1e9
            ms = cycles * layers / 200e6 * 1e3
            out[f"R{rows}_T{tokens}"] = {"cycles_per_token": per_tok, "weight_bytes_per_token": bytes_tok,
                                         "stream_gb_s": gbs, "layers_ms": ms}
            print(f"  {rows:>3} {tokens:>3} {per_tok:>19,.0f} {bytes_tok:>21,.0f} {gbs:>12.2f} {ms:>10.1f}")
    return out


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-verilator", action="store_true")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    attention(not a.skip_verilator)
    tiny_layer(not a.skip_verilator)
    fig = smollm2()
    fig["prefill"] = prefill()
    if a.json:
        Path(a.json).write_text(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
