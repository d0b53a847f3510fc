"""Calibrated-mode benchmark on the embedded SmolLM2-135M-Instruct (prints figures; not a test).

Perplexity (windows of 512, ``sim.quality.perplexity``) on two texts: the bundled
``sim/data/eval_text.txt`` (2,578 tokens; the calibrated mode's default calibration text)
and ``sim/data/heldout_text.txt`` (3,918 tokens, never used for calibration), for:

* ``tritllm-v2`` and ``tritforge``: plain rounding, the two existing modes;
* ``v2+neighbours``: the v2 codebook, then per group the entries floor - 1 .. floor + 2
  around its v2 scale, kept by weight error (``assign(search=(-1, 0, 1, 2))``; it includes
  both neighbours of the snapped entry);
* ``calibrated, H = I``: the calibrated mode's code with the identity for every Hessian,
  i.e. only weight-MSE-optimal choices (what calibration adds is the difference to the next);
* ``calibrated``: the default (bundled text, 5 x 512 tokens, float-model inputs, damping
  0.01, act-groups order, Hessian-weighted group choice, tritforge codebook);
* at d = 2 also the calibrated mode's options, each changed alone (``OPTION_VARIANTS``:
  natural order, damping 0.1 and 0.001, plain group choice, v2 codebook, sequential
  inputs), on the held-out text only.

Time and memory: the calibrated mode at d = 2 from the loaded checkpoint (calibration
forward pass + Hessian factors + quantization), wall and CPU seconds, and the process's peak
resident memory (``resource.getrusage``; it includes the perplexity model built before).

Targets (ratio to the source's perplexity, on both texts): d = 2 <= 1.35, d = 3 <= 1.05,
d = 4 <= 1.01; d = 2 quantization <= 180 s wall, peak memory <= 4 GiB.

Run: ``.venv/bin/python bench/bench_calibrate.py [--depths 2,3,4] [--no-options]`` (or
``make bench``). Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
HELDOUT = os.path.join(HERE, "..", "sim", "data", "heldout_text.txt")
TARGET = {2: 1.35, 3: 1.05, 4: 1.01}
#: the calibrated mode's options, each changed alone from the default
OPTION_VARIANTS = ({"order": "natural"}, {"damp": 0.1}, {"damp": 0.001}, {"choice": "plain"},
                   {"codebook": "tritllm-v2"}, {"inputs": "sequential"})


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def neighbours(ck, names, d):
    """v2 codebook, per group the entries around the v2 scale kept by weight error."""
    from tritforge.codec.quantize import TritTensor, assign, group_scales, mode_codebook, prepare

    out = {}
    for n in names:
        wg, shape = prepare(ck.tensors[n], n)
        cb = mode_codebook(wg, d, "tritllm-v2")
        if float(np.abs(wg).max()) == 0:
            q, k = np.zeros((shape[0], wg.shape[1] * 16), np.int8), np.zeros(wg.shape[:2], np.uint8)
        else:
            q, k, _ = assign(wg, group_scales(wg, d), cb, d, search=(-1, 0, 1, 2))
        out[n] = TritTensor(q, k, cb, d, shape, "tritllm-v2")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="2,3,4", help="comma-separated depths (default 2,3,4)")
    p.add_argument("--no-options", action="store_true", help="skip the d = 2 option variants")
    args = p.parse_args()
    depths = [int(x) for x in args.depths.split(",")]

    import torch
    from tritforge.codec.calibration import checkpoint_hessians, make_options, read_text
    from tritforge.codec.checkpoint import load_checkpoint
    from tritforge.codec.modelquant import peak_rss_mib, quantize_checkpoint, quantize_model
    from tritforge.sim import quality

    ck = load_checkpoint("default")
    names = ck.linear_names
    tok = ck.tokenizer()
    texts = {"eval": quality.eval_ids(tok),
             "heldout": torch.tensor(tok(read_text(HELDOUT, "held-out text"),
                                         add_special_tokens=False)["input_ids"], dtype=torch.long)}
    model = quality.model_from_checkpoint(ck)
    print(f"model: {ck.path}, {len(names)} matrices; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")

    def ppl(tensors=None):
        res = {}
        for key, ids in texts.items():
            if tensors is None:
                res[key] = quality.perplexity(model, ids)
            else:
                with quality.substituted(model, tensors):
                    res[key] = quality.perplexity(model, ids)
        return res

    src = ppl()
    print(f"source perplexity: bundled text {src['eval']:.3f} ({len(texts['eval'])} tokens), "
          f"held-out text {src['heldout']:.3f} ({len(texts['heldout'])} tokens)", flush=True)

    # the calibrated mode at d = 2, timed from the loaded checkpoint
    opts = make_options()
    t0, c0 = time.perf_counter(), cpu_seconds()
    H, info = checkpoint_hessians(ck, names, opts, progress=False)
    t1 = time.perf_counter()
    cal2 = quantize_model(ck.tensors, names, [2], "calibrated", False, H, opts)[2]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rss = peak_rss_mib()
    print(f"calibrated d=2: {wall:.1f} s wall ({info['forward_seconds']:.1f} s calibration pass on "
          f"{info['tokens']} tokens, {cal2.calibration['factor_seconds']:.1f} s Hessian factors, "
          f"{time.perf_counter() - t1 - cal2.calibration['factor_seconds']:.1f} s column loop), "
          f"{cpu:.1f} s CPU; peak memory {rss:.0f} MiB; load average {os.getloadavg()[0]:.1f}", flush=True)

    rows = []

    def row(d, label, tensors, rel_mse=None):
        p_ = ppl(tensors)
        rows.append((d, label, p_, rel_mse))
        print(f"  d={d} {label:<28} bundled {p_['eval']:8.3f} ({p_['eval'] / src['eval']:.3f} x)   "
              f"held-out {p_['heldout']:8.3f} ({p_['heldout'] / src['heldout']:.3f} x)"
              + (f"   rel MSE {rel_mse:.5f}" if rel_mse is not None else ""), flush=True)
        return p_

    print("\nperplexity (ratio to the source)")
    identity = {n: None for n in names}
    result = {}
    for d in depths:
        mq = cal2 if d == 2 else quantize_model(ck.tensors, names, [d], "calibrated", False, H, opts)[d]
        result[d] = row(d, "calibrated", mq.tensors, mq.rel_mse)
        mq = quantize_model(ck.tensors, names, [d], "calibrated", False, identity, opts)[d]
        row(d, "calibrated, H = I", mq.tensors, mq.rel_mse)
        for mode in ("tritllm-v2", "tritforge"):
            mq = quantize_model(ck.tensors, names, [d], mode, False)[d]
            row(d, mode, mq.tensors, mq.rel_mse)
        if d == 2:
            row(d, "v2+neighbours", neighbours(ck, names, d))
    if 2 in depths and not args.no_options:
        print("\ncalibrated mode options at d = 2, one change from the default each (held-out text only)")
        del texts["eval"]
        for kw in OPTION_VARIANTS:
            o = make_options(**kw)
            label = ", ".join(f"{k} {v}" for k, v in kw.items())
            t0 = time.perf_counter()
            if o.inputs == "sequential":
                mq = quantize_checkpoint(ck, [2], "calibrated", False, o)[2]
            else:
                mq = quantize_model(ck.tensors, names, [2], "calibrated", False, H, o)[2]
            p_ = ppl(mq.tensors)["heldout"]
            print(f"  d=2 {label:<28} held-out {p_:8.3f} ({p_ / src['heldout']:.3f} x)   "
                  f"rel MSE {mq.rel_mse:.5f}   {time.perf_counter() - t0:.0f} s", flush=True)

    missed = []
    print("\ntargets")
    for d in depths:
        for key, name in (("eval", "bundled"), ("heldout", "held-out")):
            r = result[d][key] / src[key]
            ok = r <= TARGET[d]
            print(f"  d={d} {name:<8} {r:.3f} x <= {TARGET[d]}: {'met' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"d{d} {name}")
    ok = wall <= 180
    print(f"  d=2 quantize time {wall:.1f} s <= 180 s: {'met' if ok else 'MISSED'} ({cpu:.1f} s CPU)")
    if not ok:
        missed.append("time")
    ok = rss <= 4096
    print(f"  peak memory {rss:.0f} MiB <= 4096 MiB: {'met' if ok else 'MISSED'}")
    if not ok:
        missed.append("memory")
    print(f"\nbench_calibrate: {'all targets met' if not missed else 'missed: ' + ', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
