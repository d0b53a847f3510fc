"""``tritforge quantize``: quantize a checkpoint at one or more depths and write, per config,
the packed trit file, the dequantized FP16 HF folder, the packed model folder and a JSON
report.

Quality on the bundled text: a causal LM's perplexity, source and quantized. A model
without logits to score (an encoder such as BERT, ``Checkpoint.causal_lm`` false) has no
perplexity; for it the report gives the relative RMS error of the last layer's hidden
states against the source's (``sim.quality.last_hidden_states``), on the same text, in
the table's ``hidden err`` column and the report's ``hidden_state_error``.

Mixed configs (``mixed-d<D>-bpw<B>``, ``d<D>scale-sens<digits>``: a depth per group,
``codec.mixeddepth``) first collect their error weights on the calibration text
(``--sensitivity``: the Fisher diagonal by default, diag(H), or none) and share one error
pass per base depth; their packed file is version 3.

Work shared across configs is done once: loading, the per-matrix preparation
(``codec.modelquant``), the source model and its perplexity. Each config's folder is built
in a temporary sibling and renamed into place when complete (``atomic.atomic_folder``),
and every input is checked before anything is written.
"""
from __future__ import annotations

import os
import sys
import time

from ..errors import TritforgeError

HELP = "quantize a model to balanced ternary: packed file, FP16 HF folder and report per config"

PACKED_NAME = "model.trit.safetensors"
#: the mixed configs' error weights (``codec.mixeddepth``)
SENSITIVITIES = ("fisher", "diag-h", "weight")
EXPORT_NAME = "model"
PACKED_MODEL_NAME = "packed"
REPORT_NAME = "report.json"


def add_arguments(p) -> None:
    p.add_argument("--model", default="default",
                   help="HF safetensors folder, .gguf file, or 'default' (embedded SmolLM2-135M-Instruct)")
    p.add_argument("--configs", default="uniform-d1,uniform-d2,uniform-d3,uniform-d4",
                   help="comma-separated configs: uniform-d1..uniform-d4 (default: all four), "
                        "mixed-d<D>-bpw<B> (a depth per group, B bits per weight over the model, "
                        "e.g. mixed-d3-bpw4.2), d<D>scale-sens<digits> (a depth per group by a "
                        "threshold, e.g. d3scale-sens002); docs/CODEC.md")
    p.add_argument("--mode", default="tritllm-v2", choices=("tritllm-v2", "tritforge", "calibrated"),
                   help="tritllm-v2: the published rule; tritforge: the improved mode; calibrated: "
                        "error-compensated rounding on calibration text (all three: same format and bpw)")
    p.add_argument("--calib", metavar="FILE", default=None,
                   help="calibrated mode and mixed configs' sensitivities: UTF-8 text to calibrate on "
                        "(default: the bundled text)")
    p.add_argument("--calib-seqs", type=int, default=None, metavar="N",
                   help="calibrated mode and mixed configs: number of calibration sequences (default 5; "
                        "20 for --sensitivity fisher)")
    p.add_argument("--calib-len", type=int, default=None, metavar="N",
                   help="calibrated mode and mixed configs: tokens per calibration sequence (default 512; "
                        "128 for --sensitivity fisher)")
    p.add_argument("--sensitivity", default="fisher", choices=SENSITIVITIES,
                   help="mixed configs: weigh each weight's error by the Fisher diagonal of the loss on "
                        "the calibration text (default), by its input channel's energy diag(H) there, or "
                        "not at all (weight; also what a model without a tokenizer gets)")
    p.add_argument("--calib-damp", type=float, default=0.01, metavar="F",
                   help="calibrated mode: Hessian damping, fraction of its mean diagonal (default 0.01)")
    p.add_argument("--calib-inputs", default="float", choices=("float", "sequential"),
                   help="calibrated mode: layer inputs from the float model (one pass for all depths) "
                        "or sequential (from the already quantized earlier layers, per depth)")
    p.add_argument("--calib-order", default="act-groups", choices=("natural", "act-groups"),
                   help="calibrated mode: column order; act-groups: groups of 16 by decreasing "
                        "input energy (default act-groups)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (one sub-folder per config)")
    p.add_argument("--no-export", action="store_true", help="skip the FP16 HF folder")
    p.add_argument("--no-packed-model", action="store_true",
                   help="skip the packed model folder (packed trits + the rest, loadable by transformers "
                        "after `import tritforge`)")
    p.add_argument("--no-ppl", action="store_true",
                   help="skip the quality measurements on the bundled text (perplexity; for an encoder "
                        "the last hidden state's error)")
    p.add_argument("--ppl-tokens", type=int, default=0, metavar="N",
                   help="measure on the first N tokens of the bundled text only (default 0: all of it)")
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")


def _calib_options(args, mixed: bool):
    """The calibration options (the text file read here): the calibrated mode's, or the text
    of the mixed configs' sensitivities; else None."""
    from ..codec.calibration import make_options

    text = [f for f, v in (("--calib", args.calib), ("--calib-seqs", args.calib_seqs is not None),
                           ("--calib-len", args.calib_len is not None)) if v]
    rest = [f for f, v in (("--calib-damp", args.calib_damp != 0.01),
                           ("--calib-order", args.calib_order != "act-groups"),
                           ("--calib-inputs", args.calib_inputs != "float")) if v]
    seqs, length = args.calib_seqs or 5, args.calib_len or 512
    if args.mode != "calibrated":
        weighted = mixed and args.sensitivity != "weight"
        if rest or (text and not weighted):
            raise TritforgeError(f"{(rest or text)[0]}: only with --mode calibrated"
                                 + ("" if rest else " or mixed configs with --sensitivity fisher or diag-h"))
        if not weighted:
            return None
        if args.sensitivity == "fisher":
            seqs, length = args.calib_seqs or 20, args.calib_len or 128
        return make_options(args.calib, seqs, length)
    return make_options(args.calib, seqs, length, args.calib_damp, args.calib_order,
                        inputs=args.calib_inputs)


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _check_out(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise TritforgeError(f"--out {path}: exists and is not a folder")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise TritforgeError(f"--out {path}: {probe} is not writable")
    return path


def _fmt(x, spec: str) -> str:
    return format("-", ">" + spec.split(".")[0]) if x is None else format(x, spec)


def summary_table(rows: list[dict], source_ppl: float | None, encoder: bool = False) -> str:
    """The printed table; ``encoder``: the quality column is the relative RMS error of the
    last hidden states (``hidden err``) instead of perplexity. ``d`` is a mixed config's
    base depth."""
    cw = max([11] + [len(r["config"]) for r in rows])
    head = (f"{'config':<{cw}} {'d':>1} {'mode':<10} {'bpw info':>8} {'bpw phys':>8} "
            f"{'rel MSE':>9} {'SQNR dB':>7} {'hidden err' if encoder else 'PPL':>10} {'time s':>7}")
    lines = [head, "-" * len(head)]
    if source_ppl is not None:
        lines.append(f"{'source':<{cw}} {'':>1} {'':<10} {'':>8} {'':>8} {'':>9} {'':>7} "
                     f"{source_ppl:>10.3f} {'':>7}")
    for r in rows:
        q = r["quant"]
        if encoder:
            hid = r.get("hidden_state_error")
            quality, spec = (hid["relative_rms_error"] if hid else None), "10.5f"
        else:
            quality, spec = (r["perplexity"]["quantized"] if r["perplexity"] else None), "10.3f"
        lines.append(f"{r['config']:<{cw}} {q['depth']:>1} {q['mode']:<10} {q['info_bpw']:>8.3f} "
                     f"{q['physical_bpw']:>8.3f} {q['rel_mse']:>9.5f} {_fmt(q['sqnr_db'], '7.2f')} "
                     f"{_fmt(quality, spec)} {sum(r['timings_s'].values()):>7.1f}")
    return "\n".join(lines)


def run(args) -> int:
    from .. import __version__
    from ..codec import packfile
    from ..codec.checkpoint import load_checkpoint
    from ..atomic import atomic_folder, write_json
    from ..codec.export import export_fp16, has_tokenizer
    from ..codec.modelquant import parse_configs, quantize_checkpoint, quantize_mixed

    configs = parse_configs(args.configs)
    mixed = [c.mixed for c in configs if c.mixed is not None]
    if mixed and args.mode == "calibrated":
        raise TritforgeError(f"config {mixed[0].name}: the mixed configs take --mode tritllm-v2 or "
                             "tritforge, not calibrated")
    out = _check_out(args.out)
    calib = _calib_options(args, bool(mixed))
    if args.ppl_tokens < 0:
        raise TritforgeError(f"--ppl-tokens {args.ppl_tokens}: expected 0 (all) or a positive count")

    t0 = time.perf_counter()
    _say(args, f"loading {args.model} ...")
    ckpt = load_checkpoint(args.model)
    t_load = time.perf_counter() - t0
    desc = ckpt.describe()
    _say(args, f"{ckpt.path}: {ckpt.arch}, {desc['linear_matrices']} linear matrices, "
               f"{desc['linear_weights']:,} weights ({t_load:.1f} s)")

    t0 = time.perf_counter()
    uniform = [c for c in configs if c.mixed is None]
    results = {}
    if uniform:
        by_depth = quantize_checkpoint(ckpt, [c.depth for c in uniform], args.mode,
                                       progress=not args.quiet, calib=calib)
        results.update({c.name: by_depth[c.depth] for c in uniform})
    if mixed:
        energy, sens_note, sens = None, None, "weight"
        if calib is not None:
            from ..codec.calibration import input_energy, weight_fisher

            try:
                ckpt.tokenizer()
            except TritforgeError as exc:
                _say(args, f"note: {exc}; the mixed configs weigh the plain weight error")
            else:
                sens = args.sensitivity
                collect = weight_fisher if sens == "fisher" else input_energy
                energy, sens_note = collect(ckpt, ckpt.linear_names, calib, progress=not args.quiet)
        results.update(quantize_mixed(ckpt.tensors, ckpt.linear_names, mixed, args.mode, energy,
                                      progress=not args.quiet, sensitivity=sens))
        for c in mixed:
            results[c.name].mixed["sensitivity_text"] = sens_note
    t_quant_all = time.perf_counter() - t0
    t_shared = max(0.0, t_quant_all - sum(r.seconds for r in results.values()))

    model = ids = source_hidden = None
    source_ppl = None
    t_ppl_source = 0.0
    encoder = not ckpt.causal_lm
    what = "the hidden-state error" if encoder else "perplexity"
    if not args.no_ppl:
        from ..sim import quality

        t0 = time.perf_counter()
        try:
            tok = ckpt.tokenizer()
        except TritforgeError as exc:
            raise TritforgeError(f"{exc}; {what} needs it (or pass --no-ppl)") from None
        ids = quality.eval_ids(tok, args.ppl_tokens)
        model = quality.model_from_checkpoint(ckpt)
        if encoder:
            _say(args, f"{ckpt.arch} is not a causal LM ({ckpt.model_class.__name__}): no perplexity; "
                       f"hidden states of the source on {len(ids)} tokens ...")
            source_hidden = quality.last_hidden_states(model, ids, progress=not args.quiet,
                                                       desc="hidden states source")
        else:
            _say(args, f"perplexity of the source on {len(ids)} tokens ...")
            source_ppl = quality.perplexity(model, ids, progress=not args.quiet, desc="perplexity source")
            _say(args, f"source perplexity {source_ppl:.3f} ({time.perf_counter() - t0:.1f} s)")
        t_ppl_source = time.perf_counter() - t0

    rows = []
    for config, depth, _ in configs:
        mq = results[config]
        timings = {"quantize": mq.seconds}
        with atomic_folder(os.path.join(out, config)) as tmp:
            t0 = time.perf_counter()
            meta = {**desc, "config": config, "mode": args.mode, "tritforge_version": __version__,
                    packfile.RECORDED_KEY: {n: [st.sq_err, st.sq_ref] for n, st in mq.stats.items()}}
            packfile.write_packed(os.path.join(tmp, PACKED_NAME), mq.tensors, meta)
            back, _ = packfile.read_packed(os.path.join(tmp, PACKED_NAME))
            exact = all(back[n].q.tobytes() == t.q.tobytes() and back[n].k.tobytes() == t.k.tobytes()
                        and back[n].codebook == t.codebook
                        and (back[n].group_depth is None) == (t.group_depth is None)
                        and (t.group_depth is None or back[n].group_depth.tobytes() == t.group_depth.tobytes())
                        for n, t in mq.tensors.items())
            if not exact:
                raise TritforgeError(f"{config}: packed file did not read back identically")
            timings["pack"] = time.perf_counter() - t0
            if not args.no_export:
                t0 = time.perf_counter()
                _say(args, f"{config}: exporting the FP16 HF folder ...")
                folder = export_fp16(ckpt, mq.tensors, os.path.join(tmp, EXPORT_NAME),
                                     {"config": config, "depth": depth, "mode": args.mode})
                if not has_tokenizer(folder):
                    _say(args, f"{config}: note: the source has no tokenizer files, the export has none")
                timings["export"] = time.perf_counter() - t0
            packed_sizes = None
            if not args.no_packed_model:
                from ..codec.packedmodel import folder_bytes, write_packed_model

                t0 = time.perf_counter()
                _say(args, f"{config}: writing the packed model folder ...")
                packed_sizes = write_packed_model(ckpt, mq.tensors, os.path.join(tmp, PACKED_MODEL_NAME), meta)
                if not args.no_export:
                    packed_sizes["fp16_export_bytes"] = folder_bytes(os.path.join(tmp, EXPORT_NAME))
                timings["packed_model"] = time.perf_counter() - t0
            ppl = hidden = None
            if model is not None:
                from ..sim import quality

                t0 = time.perf_counter()
                _say(args, f"{config}: {what} on {len(ids)} tokens ...")
                with quality.substituted(model, mq.tensors):
                    if encoder:
                        h = quality.last_hidden_states(model, ids, progress=not args.quiet,
                                                       desc=f"hidden states {config}")
                    else:
                        q_ppl = quality.perplexity(model, ids, progress=not args.quiet,
                                                   desc=f"perplexity {config}")
                timings["perplexity"] = time.perf_counter() - t0
                if encoder:
                    hidden = {"text": "sim/data/eval_text.txt", "tokens": int(len(ids)),
                              "window": quality.encoder_window(model), "output": "last hidden state",
                              "relative_rms_error": quality.relative_rms_error(source_hidden, h)}
                else:
                    ppl = {"text": "sim/data/eval_text.txt", "tokens": int(len(ids)),
                           "window": quality.WINDOW, "source": source_ppl, "quantized": q_ppl}
            report = {
                "tritforge_version": __version__, "config": config,
                "model": {**desc, "model_type": ckpt.arch, "model_class": ckpt.model_class.__name__,
                          "causal_lm": not encoder,
                          "hidden_size": getattr(ckpt.config, "hidden_size", None),
                          "num_hidden_layers": getattr(ckpt.config, "num_hidden_layers", None)},
                "files": {"packed": PACKED_NAME, "export": None if args.no_export else EXPORT_NAME},
                "packed_roundtrip_exact": exact,
                "packed_model": None if packed_sizes is None else {"folder": PACKED_MODEL_NAME, **packed_sizes},
                "quant": mq.summary(),
                "perplexity": ppl,
                "hidden_state_error": hidden,
                "timings_s": timings,
                "shared_timings_s": {"load": t_load, "prepare_and_overhead": t_shared,
                                     "perplexity_source": t_ppl_source},
                "matrices": [s.to_dict() for s in mq.stats.values()],
            }
            write_json(os.path.join(tmp, REPORT_NAME), report)
        rows.append(report)
        _say(args, f"{config}: wrote {os.path.join(out, config)}")

    print(f"{ckpt.path} ({ckpt.arch}): {desc['linear_matrices']} linear matrices, "
          f"{desc['linear_weights']:,} weights quantized; mode {args.mode}")
    print(summary_table(rows, source_ppl, encoder))
    cal = results[configs[0].name].calibration
    if cal:
        print(f"calibration: {cal['seqs']} x {cal['length']} tokens of {cal['text']}, forward "
              f"{cal['forward_seconds']:.1f} s, Hessian factors {cal['factor_seconds']:.1f} s; "
              f"peak memory {cal['peak_rss_mib']:.0f} MiB")
    for r in rows:
        pm = r.get("packed_model")
        if pm:
            fp16 = pm.get("fp16_export_bytes")
            print(f"{r['config']}: {PACKED_MODEL_NAME}/ {pm['folder_bytes'] / 1e6:,.1f} MB on disk"
                  + (f" against the FP16 export's {fp16 / 1e6:,.1f} MB ({pm['folder_bytes'] / fp16:.2f} x)" if fp16 else "")
                  + f": quantized matrices {pm['quantized_bytes'] / 1e6:,.1f} MB at {pm['quantized_bpw']:.3f} bpw,"
                  f" other tensors {pm['other_tensor_bytes'] / 1e6:,.1f} MB in their source dtype")
    print(f"outputs in {out}/<config>/: {PACKED_NAME}"
          + ("" if args.no_export else f", {EXPORT_NAME}/")
          + ("" if args.no_packed_model else f", {PACKED_MODEL_NAME}/") + f", {REPORT_NAME}")
    return 0
