"""``tritforge inspect PATH``: what a packed trit file or a packed model folder holds.

Reads and fully checks the file (``codec.packfile.read_packed``: format, version, sizes,
checksums, every trit byte, codebook words) or the folder (``codec.packedmodel``: its
config's ``quantization_config``, shards, every tensor's SHA-256, then the same per-matrix
checks), needing nothing else (no source checkpoint), then prints per matrix its shape, padding, depth, mode,
bytes, information and physical bpw and codebook range, and totals. A variable-depth matrix
(a mixed config, ``codec.mixeddepth``) shows its base depth with a ``v`` and its groups per
depth 0..d (``groups by depth``), and the total line the histogram over all matrices. With ``--source`` it
also loads the original checkpoint and prints each matrix's relative MSE and SQNR; without
it, the errors ``tritforge quantize`` recorded in the file's metadata are shown, if any.
"""
from __future__ import annotations

import json
import math
import os
import re

from ..errors import TritforgeError
from ..codec.packfile import RECORDED_KEY

HELP = ("show shapes, depth, bpw (information and physical), codebook ranges and errors of a packed file "
        "or packed model folder")


def add_arguments(p) -> None:
    p.add_argument("file", help="packed trit file (model.trit.safetensors), a config folder holding one, "
                                "or a packed model folder (<config>/packed)")
    p.add_argument("--source", metavar="PATH",
                   help="the checkpoint it was quantized from (folder, .gguf or 'default'): adds MSE/SQNR")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")


def _resolve(path: str) -> str:
    from ..codec.packedmodel import is_packed_model
    from .quantize import PACKED_NAME

    if os.path.isdir(path) and is_packed_model(path):
        return path
    if os.path.isdir(path):
        inner = os.path.join(path, PACKED_NAME)
        if not os.path.isfile(inner):
            if os.path.isfile(os.path.join(path, "config.json")):
                from ..codec.packedmodel import read_packed_model

                read_packed_model(path)     # a model folder: raises the reason it is not a packed one
            raise TritforgeError(f"{path}: a folder without {PACKED_NAME}; expected a packed file")
        return inner
    return path


def _natural(name: str):
    """Sort key that puts layers.2 before layers.10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def inspect_file(path: str, source: str | None = None) -> dict:
    """All figures of a packed file (and its errors against ``source`` if given)."""
    from ..codec import layout, packfile
    from ..codec.quantize import weight_error

    from ..codec import packedmodel

    path = _resolve(path)
    if os.path.isdir(path):
        pm = packedmodel.read_packed_model(path)
        tensors, model = pm.trit_tensors(), dict(pm.note)
        fmt = f"{packedmodel.FORMAT} model folder"
        disk = packedmodel.folder_bytes(path)
    else:
        tensors, model = packfile.read_packed(path)
        fmt, disk = packfile.FORMAT, os.path.getsize(path)
    recorded = model.pop(RECORDED_KEY, None)
    ckpt = None
    if source:
        from ..codec.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source)
        errors_from = f"source {ckpt.path}"
    elif recorded is not None:
        if not isinstance(recorded, dict) or set(recorded) != set(tensors):
            raise TritforgeError(f"{path}: damaged metadata ({RECORDED_KEY} does not list the file's matrices)")
        errors_from = "errors recorded at quantization"
    else:
        errors_from = None
    rows, sq_err, sq_ref = [], 0.0, 0.0
    for name in sorted(tensors, key=_natural):
        t = tensors[name]
        info = packfile.info(name, t)
        cb = t.codebook
        row = {"name": name, "shape": list(t.shape), "pad": t.pad, "depth": t.depth, "mode": t.mode,
               "variable_depth": t.variable, "groups_by_depth": t.depth_histogram(),
               "bytes": info.bytes, "info_bpw": info.info_bpw, "physical_bpw": info.physical_bpw,
               "codebook_lo": float(cb.values[0]), "codebook_hi": float(cb.values[-1]),
               "codebook_decades": math.log10(cb.hi / cb.lo), "levels_max": layout.max_level(t.depth)}
        if ckpt is not None:
            if name not in ckpt.tensors:
                raise TritforgeError(f"{path}: matrix {name} is not in the source {ckpt.path}")
            w = ckpt.tensors[name]
            if tuple(w.shape) != tuple(t.shape):
                raise TritforgeError(f"{path}: matrix {name} has shape {tuple(t.shape)}, "
                                     f"the source's is {tuple(w.shape)}")
            err = weight_error(w, t)
            e, r = err["sq_err"], err["sq_ref"]
        elif errors_from is not None:
            try:
                e, r = (float(x) for x in recorded[name])
            except (TypeError, ValueError):
                raise TritforgeError(f"{path}: damaged metadata ({RECORDED_KEY} of {name})") from None
        if errors_from is not None:
            row["rel_mse"] = e / r if r > 0 else 0.0
            row["sqnr_db"] = -10 * math.log10(row["rel_mse"]) if row["rel_mse"] > 0 else None
            sq_err += e
            sq_ref += r
        rows.append(row)
    weights = sum(r["shape"][0] * r["shape"][1] for r in rows)
    nbytes = sum(r["bytes"] for r in rows)
    depths = sorted({r["depth"] for r in rows})
    info_bits = sum(r["info_bpw"] * r["shape"][0] * r["shape"][1] for r in rows)
    hist = [0] * (max(depths) + 1)
    for r in rows:
        for k, n in enumerate(r["groups_by_depth"]):
            hist[k] += n
    total = {"matrices": len(rows), "weights": weights, "bytes": nbytes, "depths": depths,
             "variable_depth": any(r["variable_depth"] for r in rows), "groups_by_depth": hist,
             "modes": sorted({r["mode"] for r in rows}), "file_bytes": disk,
             "info_bpw": info_bits / weights, "physical_bpw": nbytes * 8 / weights}
    if errors_from is not None:
        rel = sq_err / sq_ref if sq_ref > 0 else 0.0
        total["rel_mse"] = rel
        total["sqnr_db"] = -10 * math.log10(rel) if rel > 0 else None
    version = packfile.VARIABLE_VERSION if total["variable_depth"] else packfile.VERSION
    return {"file": os.path.abspath(path), "format": fmt, "format_version": version,
            "model": model, "source": ckpt.path if ckpt else None, "errors_from": errors_from,
            "total": total, "matrices": rows}


def format_table(res: dict) -> str:
    has_err = res["errors_from"] is not None
    tot, model = res["total"], res["model"]
    lines = [f"{res['file']}: {res['format']} v{res['format_version']}, {tot['file_bytes']:,} bytes",
             f"model: {model.get('source', '?')} ({model.get('architecture', '?')}), "
             f"config {model.get('config', '?')}, mode {', '.join(tot['modes'])}"]
    width = max([len("matrix")] + [len(r["name"]) for r in res["matrices"]])
    var = tot["variable_depth"]
    dw = 2 if var else 1
    head = (f"{'matrix':<{width}} {'shape':>11} {'pad':>3} {'d':>{dw}} {'bytes':>9} {'bpw info':>8} "
            f"{'bpw phys':>8} {'codebook lo..hi':>21}")
    if has_err:
        head += f" {'rel MSE':>9} {'SQNR dB':>7}"
    if var:
        head += f"  groups by depth {'/'.join(map(str, range(len(tot['groups_by_depth']))))}"
    lines += [head, "-" * len(head)]
    for r in res["matrices"]:
        shape = f"{r['shape'][0]}x{r['shape'][1]}"
        d = f"{r['depth']}v" if r["variable_depth"] else str(r["depth"])
        line = (f"{r['name']:<{width}} {shape:>11} {r['pad']:>3} {d:>{dw}} {r['bytes']:>9,} "
                f"{r['info_bpw']:>8.3f} {r['physical_bpw']:>8.3f} "
                f"{r['codebook_lo']:>10.3e}..{r['codebook_hi']:<9.3e}")
        if has_err:
            sq = "inf" if r["sqnr_db"] is None else f"{r['sqnr_db']:.2f}"
            line += f" {r['rel_mse']:>9.5f} {sq:>7}"
        if var:
            line += "  " + "/".join(map(str, r["groups_by_depth"]))
        lines.append(line)
    lines.append("-" * len(head))
    total = (f"total: {tot['matrices']} matrices, {tot['weights']:,} weights, {tot['bytes']:,} bytes, "
             f"d {','.join(map(str, tot['depths']))}, bpw information {tot['info_bpw']:.3f}, "
             f"physical {tot['physical_bpw']:.3f}")
    if var:
        g = sum(tot["groups_by_depth"])
        total += ("; variable depth per group, groups by depth "
                  + ", ".join(f"{k}: {n:,} ({n / g:.1%})" for k, n in enumerate(tot["groups_by_depth"]) if n)
                  + f", mean depth {sum(k * n for k, n in enumerate(tot['groups_by_depth'])) / g:.3f}")
    if has_err:
        sq = "inf" if tot["sqnr_db"] is None else f"{tot['sqnr_db']:.2f} dB"
        total += f"; rel MSE {tot['rel_mse']:.5f}, SQNR {sq} ({res['errors_from']})"
    lines.append(total)
    return "\n".join(lines)


def run(args) -> int:
    res = inspect_file(args.file, args.source)
    print(json.dumps(res, indent=1) if args.json else format_table(res))
    return 0
