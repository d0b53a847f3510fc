"""Codec benchmark on the embedded SmolLM2-135M-Instruct (prints figures; not a test).

1. Quantize throughput, d = 2, tritllm-v2 mode, in weights/s over the 210 linear matrices
   (106 M weights; matrices prepared once beforehand, best of ``--repeat`` runs).
   Target: >= 20 M weights/s.
2. The same with an exhaustive scale sweep over all 16 order statistics of each group
   (``codec.quantize.group_scales(..., stats=range(16))``, otherwise the v2 rule), in the
   same run: time ratio and weight MSE against the 4-candidate rule.
3. Relative weight MSE (sum err^2 / sum w^2 over all quantized matrices) of the improved
   mode (``tritforge``) against ``tritllm-v2`` at every d. Target: >= 8 % lower at d = 2.
4. Perplexity on the bundled text (``sim/data/eval_text.txt``) of the source and of both
   modes at d = 2. Target: the improved mode lower.

Run: ``.venv/bin/python bench/bench_codec.py`` (or ``make bench``). Exit status 1 if a
target is missed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def quantize_all(prepared, d, mode, stats=None):
    """Quantize every prepared matrix; returns (seconds, total squared error, total ref)."""
    from tritforge.codec.codebook import Codebook
    from tritforge.codec.layout import max_level
    from tritforge.codec.quantize import assign, group_scales, lo_floor, quantize_groups

    t0 = time.perf_counter()
    out = []
    for wg, shape in prepared:
        if stats is None:
            out.append(quantize_groups(wg, shape, d, mode))
        else:   # the v2 rule with a wider candidate set (mirrors quantize_groups' v2 branch)
            scales = group_scales(wg, d, stats=stats)
            hi = float(np.abs(wg).max()) / max_level(d)
            cb = Codebook(max(float(scales[scales > 0].min()), lo_floor(hi)), hi)
            out.append(assign(wg, scales, cb, d)[2])
    return time.perf_counter() - t0, out


def sq_error(prepared, results) -> float:
    err = ref = 0.0
    for (wg, shape), r in zip(prepared, results):
        w = wg.reshape(shape[0], -1)[:, :shape[1]]
        if isinstance(r, float):
            err += r
        else:
            err += float(np.square(w - r.dequantize()).sum(dtype=np.float64))
        ref += float(np.square(w).sum(dtype=np.float64))
    return err / ref


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2, help="timing runs (best is reported)")
    p.add_argument("--ppl-tokens", type=int, default=0, help="tokens of the bundled text (0: all)")
    p.add_argument("--no-ppl", action="store_true", help="skip the perplexity part")
    args = p.parse_args()

    from tritforge.codec.checkpoint import load_checkpoint
    from tritforge.codec.modelquant import quantize_checkpoint
    from tritforge.codec.quantize import prepare

    missed = []
    t0 = time.perf_counter()
    ck = load_checkpoint("default")
    names = ck.linear_names
    print(f"model: {ck.path}")
    print(f"  {len(names)} linear matrices, {ck.describe()['linear_weights']:,} weights, "
          f"loaded in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    prepared = [prepare(ck.tensors[n], n) for n in names]
    n_weights = sum(s[0] * s[1] for _, s in prepared)
    print(f"  prepare (fp32, padding, checks, once for all depths): {time.perf_counter() - t0:.2f} s")

    # 1 + 2: throughput, v2 vs exhaustive sweep, interleaved so both see the same machine load
    v2_times, ex_times = [], []
    for _ in range(max(1, args.repeat)):
        t, v2_res = quantize_all(prepared, 2, "tritllm-v2")
        v2_times.append(t)
        t, ex_res = quantize_all(prepared, 2, "tritllm-v2", stats=tuple(range(16)))
        ex_times.append(t)
    rate = n_weights / min(v2_times)
    ex_rate = n_weights / min(ex_times)
    v2_mse, ex_mse = sq_error(prepared, v2_res), sq_error(prepared, ex_res)
    print("\nquantize throughput, d=2, tritllm-v2 (best of %d)" % len(v2_times))
    print(f"  4 order statistics (v2 rule):  {rate / 1e6:8.1f} M weights/s  "
          f"({min(v2_times):.2f} s)   target >= 20 M/s: {'met' if rate >= 20e6 else 'MISSED'}")
    print(f"  16 order statistics (sweep):   {ex_rate / 1e6:8.1f} M weights/s  ({min(ex_times):.2f} s)")
    print(f"  sweep / v2 time ratio:         {min(ex_times) / min(v2_times):8.2f} x")
    print(f"  rel. weight MSE v2 {v2_mse:.5f}, sweep {ex_mse:.5f} "
          f"({(1 - ex_mse / v2_mse) * 100:+.1f} % lower with the sweep)")
    if rate < 20e6:
        missed.append("throughput")

    # 3: MSE of both modes at every d
    res = {mode: quantize_checkpoint(ck, [1, 2, 3, 4], mode, progress=False)
           for mode in ("tritllm-v2", "tritforge")}
    print("\nrelative weight MSE (sum err^2 / sum w^2 over the quantized matrices)")
    print(f"  {'d':>2} {'bpw info':>8} {'bpw phys':>8} {'tritllm-v2':>11} {'tritforge':>11} {'lower by':>9}")
    for d in (1, 2, 3, 4):
        a, b = res["tritllm-v2"][d], res["tritforge"][d]
        gain = (1 - b.rel_mse / a.rel_mse) * 100
        print(f"  {d:>2} {a.info_bpw:>8.3f} {a.physical_bpw:>8.3f} {a.rel_mse:>11.6f} {b.rel_mse:>11.6f} {gain:>8.1f} %")
    gain2 = (1 - res["tritforge"][2].rel_mse / res["tritllm-v2"][2].rel_mse) * 100
    print(f"  target >= 8 % lower at d=2: {'met' if gain2 >= 8 else 'MISSED'} ({gain2:.1f} %)")
    if gain2 < 8:
        missed.append("mse")

    # 4: perplexity at d = 2
    if not args.no_ppl:
        from tritforge.sim import quality

        ids = quality.eval_ids(ck.tokenizer(), args.ppl_tokens)
        model = quality.model_from_checkpoint(ck)
        print(f"\nperplexity on the bundled text ({len(ids)} tokens, windows of {quality.WINDOW})")
        t0 = time.perf_counter()
        src = quality.perplexity(model, ids)
        print(f"  source (GGUF Q4_1 dequantized)  {src:8.3f}   ({time.perf_counter() - t0:.1f} s)")
        ppl = {}
        for mode in ("tritllm-v2", "tritforge"):
            with quality.substituted(model, res[mode][2].tensors):
                ppl[mode] = quality.perplexity(model, ids)
            print(f"  d=2 {mode:<27} {ppl[mode]:8.3f}")
        better = ppl["tritforge"] < ppl["tritllm-v2"]
        print(f"  target: improved mode lower: {'met' if better else 'MISSED'}")
        if not better:
            missed.append("perplexity")

    print(f"\nbench_codec: {'all targets met' if not missed else 'missed: ' + ', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
