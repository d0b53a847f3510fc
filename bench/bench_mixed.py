"""Variable depth per group (issue 21) on the embedded SmolLM2-135M-Instruct (prints figures; not a test).

For uniform-d2, uniform-d3 and mixed configurations (``codec.mixeddepth``) at several
targets: perplexity on the held-out text (``sim/data/heldout_text.txt``, 3,918 tokens,
windows of 512, ``sim.quality.perplexity``; never used for calibration), relative weight
MSE, and bytes per token: the packed stream bytes of all 210 quantized matrices, each read
once per decoded token. Sensitivities (``codec.mixeddepth``): the Fisher diagonal of the
loss on the bundled text (20 x 128 tokens, ``codec.calibration.weight_fisher``, the
default of ``tritforge quantize``); the 80 % point also with diag(H) (5 x 512 tokens,
``codec.calibration.input_energy``) and with the plain weight error. All configurations in
the ``tritforge`` mode (its codebooks; the uniform ones are ``quantize_model``'s).

Depth-field options, on the weighted-error proxy (sum of Fisher-weighted squared error
over the model, as the allocation sees it) at the same bytes: the format's 1-trit field
(depths D-2..D) against a 2-trit field (depths 0..D, one more trit a group), and the
entropy of the chosen depths (the least any depth code could cost).

Targets (issue 21): a mixed configuration within 2 % of uniform-d3's perplexity at <= 80 %
of its bytes per token, and one within 2 % of uniform-d2's at <= 85 % of its bytes. The
Pareto plot (perplexity against bytes per token, uniform and mixed) goes to
``out/bench/mixed_pareto.png`` and the table to ``out/bench/mixed.json``.

Run: ``.venv/bin/python bench/bench_mixed.py [--bpw3 4.6,4.08,3.8] [--bpw2 3.2,2.975]``
(or ``make bench``). Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HELDOUT = os.path.join(ROOT, "sim", "data", "heldout_text.txt")
OUT = os.path.join(ROOT, "out", "bench")
MODE = "tritforge"


def field_options(errs: np.ndarray, energy: np.ndarray, counts: list[int], weights: int,
                  target: float) -> dict:
    """Weighted-error proxy at ``target`` bpw (base 3) for a 1-trit depth field (depths 1..3)
    and a 2-trit one (depths 0..3); ``errs`` has the columns of depths 1, 2, 3."""
    full = np.concatenate([energy[:, None], errs], axis=1)          # depths 0, 1, 2, 3

    def best(e, depths, header):
        cost = np.array(depths, dtype=np.float64) * 16
        trits_of = header + cost

        def alloc(lam):
            c = np.argmin(e + lam * cost, axis=1)
            return c, float(trits_of[c].sum()) * 1.6 / weights

        lo, hi = 0.0, float(e.max()) / 16 + 1
        c, bpw = alloc(lo)
        if bpw > target:
            lo = hi * 1e-30
            for _ in range(100):
                mid = math.sqrt(lo * hi)
                lo, hi = (lo, mid) if alloc(mid)[1] <= target else (mid, hi)
            c, bpw = alloc(hi)
        hist = np.bincount(c, minlength=len(depths))
        p = hist[hist > 0] / hist.sum()
        return {"proxy_err": float(e[np.arange(len(c)), c].sum()), "bpw": bpw,
                "hist": dict(zip(map(str, depths), hist.tolist())),
                "depth_entropy_bits_per_weight": float(-(p * np.log2(p)).sum()) / 16}

    return {"1-trit field, depths 1..3": best(full[:, 1:], [1, 2, 3], 4),
            "2-trit field, depths 0..3": best(full, [0, 1, 2, 3], 5)}


def pareto_plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, style in (("uniform", "s-"), ("mixed d3", "o-"), ("mixed d2", "^-"), ("threshold", "D")):
        pts = sorted((r["bytes_per_token"] / 1e6, r["ppl"]) for r in rows if r["kind"] == kind)
        if pts:
            ax.plot(*zip(*pts), style, label=kind)
    for r in rows:
        if r["kind"] == "uniform":
            ax.annotate(r["config"], (r["bytes_per_token"] / 1e6, r["ppl"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("weight bytes per token (MB, 210 quantized matrices)")
    ax.set_ylabel("perplexity, held-out text")
    ax.set_yscale("log")
    ax.set_title("SmolLM2-135M: uniform vs variable depth per group (tritforge mode, Fisher)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bpw3", default="4.6,4.08,3.6,3.3,2.975",
                   help="bpw targets of the base-3 mixed configurations (default: 80 %% of uniform-d3's "
                        "bytes, between, 85 %% of uniform-d2's)")
    p.add_argument("--bpw2", default="2.975", help="bpw targets of the base-2 mixed configurations")
    p.add_argument("--sens", default="0.02", help="thresholds of the d3scale-sens configurations")
    p.add_argument("--no-plain", action="store_true",
                   help="skip the points with diag(H) and with the plain weight error instead of Fisher")
    args = p.parse_args()

    import torch
    from tritforge.codec import mixeddepth
    from tritforge.codec.calibration import input_energy, make_options, read_text, weight_fisher
    from tritforge.codec.checkpoint import load_checkpoint
    from tritforge.codec.modelquant import parse_config, quantize_mixed, quantize_model
    from tritforge.codec.quantize import mode_codebook, prepare
    from tritforge.sim import quality

    t_all = time.perf_counter()
    ck = load_checkpoint("default")
    names = ck.linear_names
    tok = ck.tokenizer()
    ids = torch.tensor(tok(read_text(HELDOUT, "held-out text"), add_special_tokens=False)["input_ids"],
                       dtype=torch.long)
    model = quality.model_from_checkpoint(ck)
    print(f"model: {ck.path}, {len(names)} matrices; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    t0 = time.perf_counter()
    src = quality.perplexity(model, ids)
    print(f"source perplexity, held-out text ({len(ids)} tokens): {src:.3f} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)

    fisher, info = weight_fisher(ck, names, make_options(None, 20, 128), progress=False)
    print(f"sensitivities: Fisher diagonal on {info['tokens']} tokens of {info['text']} "
          f"({info['forward_backward_seconds']:.1f} s)", flush=True)

    rows = []

    def measure(config, kind, mq):
        t = time.perf_counter()
        with quality.substituted(model, mq.tensors):
            ppl = quality.perplexity(model, ids)
        r = {"config": config, "kind": kind, "bytes_per_token": mq.bytes, "physical_bpw": mq.physical_bpw,
             "rel_mse": mq.rel_mse, "ppl": ppl, "depth_histogram": mq.depth_histogram(),
             "quantize_s": mq.seconds}
        rows.append(r)
        print(f"  {config:<26} {mq.bytes / 1e6:8.3f} MB/token {mq.physical_bpw:6.3f} bpw  rel MSE "
              f"{mq.rel_mse:.5f}  ppl {ppl:8.3f}  depths {r['depth_histogram']}  "
              f"(quantize {mq.seconds:.0f} s, ppl {time.perf_counter() - t:.0f} s)", flush=True)
        return r

    print("\nconfig                      bytes/token      bpw   rel MSE       perplexity", flush=True)
    t0 = time.perf_counter()
    uni = quantize_model(ck.tensors, names, [2, 3], MODE, progress=False)
    print(f"  (uniform d2, d3 quantized in {time.perf_counter() - t0:.0f} s)", flush=True)
    u = {d: measure(f"uniform-d{d}", "uniform", uni[d]) for d in (2, 3)}
    del uni

    cfgs = ([parse_config(f"mixed-d3-bpw{b}").mixed for b in args.bpw3.split(",") if b]
            + [parse_config(f"mixed-d2-bpw{b}").mixed for b in args.bpw2.split(",") if b]
            + [parse_config("d3scale-sens" + s.split(".")[1]).mixed for s in args.sens.split(",") if s])
    t0 = time.perf_counter()
    mixed = quantize_mixed(ck.tensors, names, cfgs, MODE, fisher, progress=False)
    print(f"  ({len(cfgs)} mixed configurations quantized in {time.perf_counter() - t0:.0f} s: "
          f"one error pass per base depth, {mixed[cfgs[0].name].mixed['error_pass_seconds']:.0f} s)", flush=True)
    for c in cfgs:
        kind = "threshold" if c.rule == "sens" else f"mixed d{c.base}"
        measure(c.name, kind, mixed.pop(c.name))
    if not args.no_plain:     # the 80 % point with diag(H) and with the plain weight error
        cfg = parse_config("mixed-d3-bpw4.08").mixed
        energy, info = input_energy(ck, names, make_options(), progress=False)
        print(f"  (diag(H) on {info['tokens']} tokens, {info['forward_seconds']:.1f} s)", flush=True)
        for label, sens in (("diag(H)", energy), ("weight err", None)):
            other = quantize_mixed(ck.tensors, names, [cfg], MODE, sens, progress=False)[cfg.name]
            measure(f"{cfg.name} ({label})", "other sensitivity", other)
            del other

    # depth-field options on the proxy, base 3, at 80 % of uniform-d3's bytes
    target = 0.8 * u[3]["physical_bpw"]
    errs, en, counts = [], [], []
    for n in names:
        wg, shape = prepare(ck.tensors[n], n)
        e, _, g = mixeddepth.depth_candidates(wg, mode_codebook(wg, 3, MODE), 3, fisher.get(n))
        errs.append(e)
        en.append(g)
        counts.append(e.shape[0])
    weights = sum(int(ck.tensors[n].numel()) for n in names)
    opts = field_options(np.concatenate(errs), np.concatenate(en), counts, weights, target)
    print(f"\ndepth-field options, base 3, at {target:.3f} bpw (weighted-error proxy, lower is better)")
    for k, v in opts.items():
        print(f"  {k:<28} proxy {v['proxy_err']:.6g}  bpw {v['bpw']:.3f}  groups by depth {v['hist']}  "
              f"depth entropy {v['depth_entropy_bits_per_weight']:.4f} bit/weight")

    # targets
    print("\ntargets (issue 21)")
    missed = []
    for d, frac in ((3, 0.80), (2, 0.85)):
        ok = [r for r in rows if r["kind"].startswith(("mixed", "threshold"))
              and r["bytes_per_token"] <= frac * u[d]["bytes_per_token"]
              and r["ppl"] <= 1.02 * u[d]["ppl"]]
        best = min((r for r in rows if r["kind"].startswith(("mixed", "threshold"))
                    and r["bytes_per_token"] <= frac * u[d]["bytes_per_token"]),
                   key=lambda r: r["ppl"], default=None)
        line = (f"  within 2 % of uniform-d{d} ({u[d]['ppl']:.3f}) at <= {frac:.0%} of its bytes "
                f"({frac * u[d]['bytes_per_token'] / 1e6:.3f} MB): ")
        if ok:
            r = min(ok, key=lambda r: r["bytes_per_token"])
            line += f"met by {r['config']} ({r['ppl']:.3f}, {r['bytes_per_token'] / u[d]['bytes_per_token']:.1%} of the bytes)"
        else:
            missed.append(f"d{d}")
            line += "MISSED" + (f" (best at that size: {best['config']}, {best['ppl']:.3f} = "
                                f"{best['ppl'] / u[d]['ppl'] - 1:+.1%})" if best else "")
        print(line)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "mixed.json"), "w") as f:
        json.dump({"source_ppl": src, "tokens": len(ids), "rows": rows, "depth_fields": opts}, f, indent=1)
    pareto_plot([r for r in rows if r["kind"] != "other sensitivity"], os.path.join(OUT, "mixed_pareto.png"))
    print(f"\nwrote {os.path.join(OUT, 'mixed.json')} and mixed_pareto.png; {time.perf_counter() - t_all:.0f} s")
    print(f"bench_mixed: {'all targets met' if not missed else 'missed: ' + ', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
