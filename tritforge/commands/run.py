"""``tritforge run``: a checkpoint through the simulated hardware — text, tokens/s, J/token, quality."""
from __future__ import annotations

import json
import os
import sys
import tempfile

from ..atomic import scratch, write_json
from ..errors import TritforgeError
from ._paths import shown

HELP = "run a model through the simulated hardware: generated text, tokens/s, J/token, quality"


def add_arguments(p) -> None:
    p.add_argument("--model", default="default",
                   help="HF safetensors folder, .gguf file, or 'default' (embedded SmolLM2-135M-Instruct)")
    p.add_argument("--config", default="uniform-d2", help="quantization config: uniform-d1 .. uniform-d4")
    p.add_argument("--mode", default="tritllm-v2", choices=("tritllm-v2", "tritforge"),
                   help="quantizer mode (ignored with --packed)")
    p.add_argument("--hw", default="default",
                   help="board preset name, a board .toml file, a HwConfig .json file (its engine on the "
                        "default board), or 'default' (the default board)")
    p.add_argument("--packed", metavar="FILE|FOLDER",
                   help="read the quantized matrices from this packed file (the model from --model), or run "
                        "a packed model folder (<config>/packed): it is the whole model, --model is not used")
    p.add_argument("--path", default="layer", metavar="layer|linear",
                   help="what generates the text: 'layer' (default; Llama and Qwen2) runs every decoder "
                        "layer through the integer models of the engine, attention and vector units "
                        "(after the embedding lookup only sampling is float); 'linear' only the quantized "
                        "Linears (any decoder-only causal LM)")
    p.add_argument("--accel", metavar="FILE",
                   help="AccelConfig JSON: the attention and vector units' contract parameters and "
                        "the lm_head choice (default: tritforge.accelconfig's defaults)")
    p.add_argument("--prompt", default=None, help="user prompt (the tokenizer's chat template is applied)")
    p.add_argument("--max-new-tokens", type=int, default=24, metavar="N", help="tokens to generate, greedy (default %(default)s)")
    p.add_argument("--eval-tokens", type=int, default=1024, metavar="N",
                   help="tokens of the bundled text for perplexity/agreement (default %(default)s; "
                        "0 skips the quality pass)")
    p.add_argument("--energy-table", metavar="FILE", help="action-energy table (TOML); default Horowitz 45 nm")
    p.add_argument("--report", metavar="DIR", help="write the HTML/Markdown report, plots and JSON here")
    p.add_argument("--json", metavar="FILE", help="write the run-result JSON here")
    p.add_argument("--rtl-sample", type=int, default=0, metavar="N",
                   help="also run N rows of every matrix of the first and last block, with the real "
                        "decode activations, through the Verilator RTL and check they match exactly "
                        "(the packaged cocotb bench tritforge.hw.verif.bench_engine; builds cached "
                        "in $TRITFORGE_BUILD_DIR or ~/.cache/tritforge/verilator)")
    p.add_argument("--rtl-prefill", type=int, default=0, metavar="T",
                   help="with --rtl-sample on the layer path: also replay the last T (2..16) tokens of "
                        "decoder layer 0 as one command on a layer top of T tokens per command "
                        "(prefill, hw/LAYER.md) through Verilator, bit- and cycle-exact")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for torch and BLAS (default 1: the simulated layers are small "
                        "matrix products, and more threads only contend on a shared machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _engine_build(cfg):
    """The Verilator build of the engine ``tritforge generate`` writes for ``cfg`` (cached in
    ``sim.cosim.default_build_root``) and its sidecar."""
    from ..hw import verilog as hw_verilog
    from ..sim import cosim

    text, side = hw_verilog.convert(cfg), hw_verilog.sidecar(cfg)
    build = cosim.build(text, side["top"], [p["name"] for p in side["ports"]], cosim.default_build_root(),
                        meta={"hwconfig": cfg.to_dict(), "decoder_style": side["decoder_style"],
                              "primitives": side["primitives"]})
    return build, side


def rtl_check(cfg, cases, rate=None) -> dict:
    """Play vector cases on the engine RTL under Verilator (hw/ENGINE.md).

    The Verilog is what ``tritforge generate`` writes for ``cfg`` (built once per config and
    cached in ``sim.cosim.default_build_root``); the packaged bench
    (``tritforge.hw.verif.bench_engine``) checks every result beat against the cases'
    golden accumulators, the cycle count against the cycle model's, and the stepping model
    every cycle. For a variable-depth engine (``cfg.variable``): :func:`rtl_check_variable`.
    """
    from ..codec import vectors
    from ..sim import cosim

    if cfg.variable:
        return rtl_check_variable(cfg, cases, rate)
    with scratch():                 # the build and the vector set are read back here
        build, side = _engine_build(cfg)
        side_path = cosim.write_sidecar(build, side)
        with tempfile.TemporaryDirectory(prefix="tritforge-rtl-") as tmp:
            vs = vectors.write_set(os.path.join(tmp, "vectors"), cases)
            report = os.path.join(tmp, "cases.json")
            res = cosim.run_engine_bench(build, side_path, vs, os.path.join(tmp, "run"), model=True,
                                         report=report, testcase="vector_cases")
            played = []
            if os.path.isfile(report):
                with open(report) as f:
                    played = [{"case": c["case"], "cycles": c["cycles"]} for c in json.load(f)["cases"]]
            failures = res.failures() if res.failed else []
        match = res.tests > 0 and res.failed == 0 and len(played) == len(cases)
        return {"match": match, "cases": played, "failures": failures,
                "build_s": round(build.seconds, 2), "sim_s": round(res.seconds, 2)}


def rtl_check_variable(cfg, cases, rate) -> dict:
    """Play vector cases of variable-depth matrices on the variable-depth engine RTL under
    Verilator (hw/ENGINE.md "Variable-depth stream"): each case as one job of the packaged
    stream bench (``tritforge.hw.verif.varjob``: its codebook, one command per T vectors,
    its column stream at ``rate`` bytes a cycle from the cycle the first command is taken),
    every result beat against the golden accumulators and in the cycle
    ``sim.varmodel.timeline`` gives it."""
    import numpy as np

    from ..hw.verif.varjob import var_stream_job
    from ..sim import cosim

    with scratch():
        build, _ = _engine_build(cfg)
        played, failures, sim_s, tests = [], [], 0.0, 0
        with tempfile.TemporaryDirectory(prefix="tritforge-rtl-") as tmp:
            for i, case in enumerate(cases):
                T, x, e = cfg.vectors, case.xq, case.expected
                pad = lambda a, c, w: np.pad(a[c:c + T], ((0, T - len(a[c:c + T])), (0, w - a.shape[1])))  # noqa: E731
                blocks = [pad(x, c, case.tensor.in_padded) for c in range(0, len(x), T)]
                want = [pad(e, c, e.shape[1]) for c in range(0, len(x), T)]
                vj = var_stream_job(cfg, case.tensor, blocks, rate, expected=want)
                res, report = cosim.play_streams(build, vj.job, os.path.join(tmp, f"case{i}"),
                                                 pace=vj.pace, limit=100 * (vj.timeline.end + 100))
                sim_s += res.seconds
                tests += res.tests
                if res.failed or report is None:
                    failures += [f"{case.name}: {f}" for f in (res.failures() or ["no report"])]
                    continue
                bad = vj.check(report)
                failures += [f"{case.name}: {b}" for b in bad]
                played.append({"case": case.name, "cycles": vj.timeline.cycles})
        match = tests > 0 and not failures and len(played) == len(cases)
        return {"match": match, "cases": played, "failures": failures,
                "build_s": round(build.seconds, 2), "sim_s": round(sim_s, 2)}


def _fmt_rate(v: float) -> str:
    return f"{v:,.1f}" if v < 1e4 else f"{v:,.0f}"


def summary(r: dict) -> str:
    """The human-readable lines ``tritforge run`` prints."""
    m, b, t, pt, q = r["model"], r["board"], r["timing"], r["per_token"], r["quality"]
    hw = r["hwconfig"]
    lines = [
        f"model      {m['name']} ({m['arch']}, {m['layers']} layers, {len(r['layers'])} quantized matrices, "
        f"{m['linear_weights'] / 1e6:.1f} M weights) at {r['config']} ({r['mode']})",
        f"hardware   {b['name']}: R={hw['rows']} rows x T={hw['vectors']} vectors at {b['clock_mhz']:g} MHz, "
        f"{b['bandwidth_gbs']:g} GB/s {b['memory']}; energy table {r['energy_table']['name']} "
        f"{r['energy_table']['version']}",
        f"prompt     {r['prompt']!r} ({r['tokens']['prompt']} tokens)",
        f"generated  {r['generated_text']!r} ({r['tokens']['generated']} tokens)",
        f"prefill    {t['prefill_cycles']:,} cycles, time to first token {t['ttft_s'] * 1e3:.3f} ms",
        f"decode     {t['decode_cycles_per_token']:,} cycles/token, {_fmt_rate(t['decode_tokens_per_s'])} tokens/s "
        f"({pt['bound']}-bound; compute {_fmt_rate(pt['tokens_per_s_compute'])}, "
        f"memory {_fmt_rate(pt['tokens_per_s_memory'])} tokens/s)",
        f"energy     {pt['energy_j'] * 1e3:.4f} mJ/token ({pt['energy_j']:.3e} J/token) in the "
        f"quantized matrices",
        f"simulation {t['wall_s_per_token']:.3f} s wall per decode token on this machine",
    ]
    if "whole_token" in r:
        w = r["whole_token"]
        wt, u = w["per_token"], w["per_token"]["units"]
        lines.append(f"whole tok  {_fmt_rate(wt['tokens_per_s'])} tokens/s, {wt['energy_j'] * 1e3:.2f} mJ/token "
                     f"at context {w['context']} ({wt['power_w']:.2f} W): engine "
                     f"{u['engine']['time_s'] * 1e6:,.0f} us, attention {u['attention']['time_s'] * 1e6:,.0f} us, "
                     f"vector {u['vector']['time_s'] * 1e6:,.0f} us, lm_head ({w['lm_head']['where']}) "
                     f"{u['lm_head']['time_s'] * 1e6:,.0f} us; memory at "
                     f"{wt['memory_efficiency'] * 100:.1f} % of peak; static "
                     f"{u['static']['energy_j'] / wt['energy_j'] * 100:.0f} % of the energy")
    if "ppl_hw" in q:
        lines.append(f"quality    perplexity source {q['ppl_source']:.3f}, dequantized {q['ppl_quantized']:.3f}, "
                     f"linear-only hardware {q['ppl_hw']:.3f} ({q['eval_tokens']} tokens); top-1 agreement "
                     f"{q['top1_agreement'] * 100:.1f} %, logit RMSE {q['logit_rmse']:.4f}, "
                     f"max |err| {q['logit_max_abs_err']:.3f}")
    if "ppl_layer" in q:
        lines.append(f"layer path perplexity {q['ppl_layer']:.3f} (whole decoder layers on the integer "
                     f"units); top-1 agreement {q['layer_top1_agreement'] * 100:.1f} % with the source, "
                     f"{q['layer_vs_hw_top1_agreement'] * 100:.1f} % with the linear-only path")
    lines.append(f"hw path    integer vs float dequantized product: relative error "
                 f"{q['hw_vs_dequant_rel_err']:.2e} (worst layer {q['hw_vs_dequant_rel_err_max_layer']:.2e})")
    lt = r.get("whole_token", {}).get("layer_top")
    if lt:
        lines.append(f"layer top  the decoder layers as hw/layer.py builds them (R={lt['rows']}, closed form): "
                     f"{lt['cycles_per_layer']:,} cycles per layer at context {lt['context']}, weight stream "
                     f"busy {lt['weight_stream_utilisation'] * 100:.1f} %, {lt['cycles_per_token']:,} cycles "
                     f"per token: {_fmt_rate(lt['layers_tokens_per_s'])} tokens/s for the layers alone")
    if "rtl_layer" in r:
        s = r["rtl_layer"]
        lines.append(f"rtl layer  decoder layer {s['layer']} at position {s['position']} (context {s['context']}) "
                     "through Verilator (layer top RTL, cocotb): "
                     + (f"bit-exact ({s['hidden']} residual elements, the new K/V rows); {s['cycles']:,} cycles "
                        f"({s['cycles_model']:,} by the closed form), {s['cycles_per_s']:,.0f} cycles/s"
                        + (f"; {s['memory']['cycles']:,} cycles with {s['memory']['board']}'s memory serving "
                           "the weight and KV streams" if "memory" in s else "")
                        if s["match"] else "MISMATCH: " + "; ".join(s["failures"][:3])))
        p = s.get("prefill")
        if p:
            last = p["position"] + p["tokens"] - 1
            lines.append(f"rtl prefill decoder layer {p['layer']} at positions {p['position']}..{last} as one command "
                         f"on a layer top of {p['tokens']} tokens per command (Verilator): "
                         + (f"bit-exact ({p['tokens']} x {p['hidden']} residual elements, the new K/V rows); "
                            f"{p['cycles']:,} cycles ({p['cycles_model']:,} by the closed form), "
                            f"{p['cycles_per_s']:,.0f} cycles/s"
                            if p["match"] else "MISMATCH: " + "; ".join(p["failures"][:3])))
    if "rtl_sample" in r:
        s = r["rtl_sample"]
        lines.append(f"rtl        {s['rows']} rows of {len(s['layers'])} layers through Verilator "
                     f"({'variable-depth ' if s.get('engine') == 'variable' else ''}engine RTL, cocotb): {'all match the cycle model bit for bit and cycle for cycle' if s['match'] else 'MISMATCH: ' + '; '.join(s['failures'][:3])}")
    return "\n".join(lines)


def run(args) -> int:
    from ..sim import driver

    if args.max_new_tokens < 1:
        raise TritforgeError(f"--max-new-tokens {args.max_new_tokens}: expected at least 1")
    if args.eval_tokens < 0:
        raise TritforgeError(f"--eval-tokens {args.eval_tokens}: expected 0 or more")
    if args.rtl_sample < 0:
        raise TritforgeError(f"--rtl-sample {args.rtl_sample}: expected 0 or more")
    if args.rtl_prefill:
        from ..sim.hwlayer import RECENT_INPUTS

        if not 2 <= args.rtl_prefill <= RECENT_INPUTS:
            raise TritforgeError(f"--rtl-prefill {args.rtl_prefill}: expected 2..{RECENT_INPUTS} tokens")
        if args.path != "layer" or args.rtl_sample < 1:
            raise TritforgeError(f"--rtl-prefill {args.rtl_prefill}: expected --path layer and --rtl-sample N")
    if args.threads < 1:
        raise TritforgeError(f"--threads {args.threads}: expected at least 1")
    opts = driver.RunOptions(
        model=args.model, config=args.config, mode=args.mode, hw=args.hw, packed=args.packed,
        prompt=driver.DEFAULT_PROMPT if args.prompt is None else args.prompt,
        max_new_tokens=args.max_new_tokens, energy_table=args.energy_table,
        eval_tokens=args.eval_tokens, rtl_sample=args.rtl_sample, rtl_prefill=args.rtl_prefill, path=args.path,
        accel=args.accel, progress=not args.quiet and sys.stderr.isatty())
    import torch
    from threadpoolctl import threadpool_limits

    saved = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(limits=args.threads):
            result = driver.run(opts, rtl_check)
    finally:
        torch.set_num_threads(saved)
    if args.json:
        write_json(args.json, result)
    print(summary(result))
    if args.report:
        from ..sim import report

        written = report.render(result, args.report)
        print(f"report     {shown(written.get('report.html', args.report))}")
    if args.json:
        print(f"json       {args.json}")
    if "rtl_layer" in result and not (result["rtl_layer"]["match"]
                                      and result["rtl_layer"].get("prefill", {}).get("match", True)):
        print("tritforge run: error: the RTL decoder layer does not match the integer layer", file=sys.stderr)
        return 1
    if "rtl_sample" in result and not result["rtl_sample"]["match"]:
        print("tritforge run: error: the RTL sample does not match the cycle model", file=sys.stderr)
        return 1
    return 0
