"""Reports of a run (or a projection): self-contained HTML, Markdown, PNG plots, the JSON.

``render(result, out_dir)`` takes the run-result JSON document (written by ``tritforge run``,
or by ``sim.estimate.project``; ``check_result`` says what it must hold) and writes into ``out_dir``:

    result.json    the document the report was drawn from
    roofline.png   left: roofline (MAC/s against MAC per weight byte, memory and compute roofs,
                   one point per layer); right: compute time against memory time per layer
                   (above the diagonal: compute-bound)
    energy.png     energy per token by action (which table, which version)
    cycles.png     cycles per layer for one decode token, by projection kind
    sweep.png      (when the result has ``context_sweep``, as ``tritforge estimate --report`` writes
                   it) tokens/s and J/token against context, time per token by unit and bytes
                   per token by class
    report.md      Markdown, linking the PNGs
    report.html    one file with the PNGs embedded (base64): opens anywhere, alone

Every file is staged with the command's other outputs and moved into place only when the
command succeeds (``tritforge.atomic``), so an error or an interrupt leaves no file of it.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os

from matplotlib.figure import Figure

from ..atomic import atomic_merge
from ..documents.result import RunResult
from ..documents.validation import validate
from ..jsonfile import read_json

FILES = ("result.json", "roofline.png", "energy.png", "cycles.png", "report.md", "report.html")
#: written only when the result holds the data
OPTIONAL_FILES = ("sweep.png",)
_UNIT_COLORS = {"engine": "#1f77b4", "attention": "#ff7f0e", "vector": "#2ca02c", "lm_head": "#9467bd",
                "static": "#7f7f7f"}
_BYTE_COLORS = {"weights": "#1f77b4", "kv_read": "#ff7f0e", "kv_write": "#ffbb78", "lm_head": "#9467bd",
                "embedding": "#2ca02c", "logits_out": "#d62728"}
_QUALITY = (("ppl_source", "perplexity, source model"), ("ppl_quantized", "perplexity, dequantized (float)"),
            ("ppl_hw", "perplexity, hardware path"), ("top1_agreement", "top-1 agreement with source"),
            ("logit_rmse", "logit RMSE"), ("logit_max_abs_err", "logit max abs error"),
            ("hw_vs_dequant_rel_err", "hardware vs dequantized product, rel. error"))
_KIND_COLORS = {"q_proj": "#1f77b4", "k_proj": "#aec7e8", "v_proj": "#17becf", "o_proj": "#9467bd",
                "gate_proj": "#ff7f0e", "up_proj": "#ffbb78", "down_proj": "#d62728"}
_BOUND_COLORS = {"memory": "#1f77b4", "compute": "#d62728"}


# --- I/O -----------------------------------------------------------------------------------

def load_result(path: str) -> dict:
    """The run-result document in ``path``, checked (``tritforge.documents.result``)."""
    data = read_json(path, "run result")
    check_result(data, path)
    return data


def check_result(result, where: str = "run result") -> None:
    """Refuse a result the report cannot draw, with one line naming ``where`` and the field."""
    validate(RunResult, result, where)


# --- figures -------------------------------------------------------------------------------

def kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _macs(layer: dict) -> int:
    """Weight x activation products of one layer for one token."""
    return int(layer["out"]) * int(layer["in"])


def _plot_roofline(result: dict, path: str) -> None:
    board, layers = result["board"], result["layers"]
    hw = (result.get("hwconfig") or {})
    rows = hw.get("rows", board.get("rows", 1))
    peak = rows * 16 * board["clock_mhz"] * 1e6                       # MAC/s
    bw = board["bandwidth_gbs"] * 1e9
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    xs = [_macs(l) / max(l["weight_bytes"], 1) for l in layers]
    ys = [_macs(l) / max(l["compute_s"], l["memory_s"], 1e-30) for l in layers]
    ridge = peak / bw
    lo = min(min(xs), ridge) / 8
    hi = max(max(xs), ridge) * 8
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, bw * x) for x in grid], color="k", lw=1.5, label="roof")
    ax.axhline(peak, color="#d62728", ls=":", lw=1,
               label=f"compute roof {peak / 1e9:,.0f} GMAC/s (R={rows} x 16 x {board['clock_mhz']:g} MHz)")
    ax.plot(grid, [bw * x for x in grid], color="#1f77b4", ls=":", lw=1,
            label=f"memory roof {board['bandwidth_gbs']:g} GB/s")
    for bound in ("memory", "compute"):
        pts = [(x, y) for x, y, l in zip(xs, ys, layers) if l["bound"] == bound]
        if pts:
            ax.scatter(*zip(*pts), s=18, color=_BOUND_COLORS[bound], zorder=3, edgecolor="k", lw=0.3,
                       label=f"{len(pts)} layers {bound}-bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MAC per weight byte)")
    ax.set_ylabel("achieved MAC/s")
    ax.set_title(f"Roofline, {board['name']} (one decode token)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)

    ms = [l["memory_s"] * 1e6 for l in layers]
    cs = [l["compute_s"] * 1e6 for l in layers]
    top = max(ms + cs) * 1.08
    ax2.plot([0, top], [0, top], color="k", lw=0.8, ls="--", label="compute = memory")
    for k in sorted({kind(l["name"]) for l in layers}):
        pts = [(m, c) for m, c, l in zip(ms, cs, layers) if kind(l["name"]) == k]
        ax2.scatter(*zip(*pts), s=22, color=_KIND_COLORS.get(k), edgecolor="k", lw=0.3, label=k, zorder=3)
    ax2.set_xlim(0, top)
    ax2.set_ylim(0, top)
    ax2.set_xlabel("memory time per layer (us): weight bytes / bandwidth")
    ax2.set_ylabel("compute time per layer (us): cycles / clock")
    ax2.set_title("Per layer: compute vs memory time (above line: compute-bound)", fontsize=10)
    ax2.legend(fontsize=7, loc="lower right")
    ax2.grid(True, alpha=0.2)
    fig.savefig(path, dpi=110)


def _plot_energy(result: dict, path: str) -> None:
    pt, table = result["per_token"], result["energy_table"]
    items = sorted(((k, v) for k, v in pt["energy_breakdown_j"].items() if v > 0), key=lambda kv: kv[1])
    total = pt["energy_j"]
    fig = Figure(figsize=(8, 0.45 * max(len(items), 3) + 1.4), layout="constrained")
    ax = fig.subplots()
    if items:
        names, vals = zip(*items)
        ax.barh(names, [v * 1e3 for v in vals], color="#2ca02c")
        for i, v in enumerate(vals):
            ax.text(v * 1e3, i, f" {v * 1e3:.3g} mJ ({100 * v / total:.1f} %)", va="center", fontsize=8)
        ax.set_xlim(0, max(vals) * 1e3 * 1.45)
    ax.set_xlabel("energy per decode token (mJ; static_board and dram_background = power x time per token)")
    ax.set_title(f"Energy per token: {total * 1e3:.4g} mJ — table {table['name']} {table['version']}, "
                 f"memory {result['board'].get('memory', '?')}", fontsize=10)
    ax.grid(True, axis="x", alpha=0.2)
    fig.savefig(path, dpi=110)


def _plot_cycles(result: dict, path: str) -> None:
    layers = result["layers"]
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax = fig.subplots()
    kinds = [kind(l["name"]) for l in layers]
    for k in dict.fromkeys(kinds):       # one bar series per kind, in order of appearance
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        ax.bar(idx, [layers[i]["cycles"] for i in idx], width=1.0, label=k,
               color=_KIND_COLORS.get(k, "#7f7f7f"))
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_xlabel("layer (execution order)")
    ax.set_ylabel("cycles per decode token")
    ax.set_title(f"Cycles per layer: {sum(l['cycles'] for l in layers):,} per token at "
                 f"{result['board']['clock_mhz']:g} MHz")
    ax.legend(fontsize=7, ncol=7, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.grid(True, axis="y", alpha=0.2)
    fig.savefig(path, dpi=110)


def _plot_sweep(result: dict, path: str) -> None:
    sw = result["context_sweep"]
    ctx = [p["context"] for p in sw]
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    (a1, a2), (a3, a4) = fig.subplots(2, 2)
    a1.plot(ctx, [p["tokens_per_s"] for p in sw], marker="o", color="#1f77b4")
    a1.set_ylabel("decode tokens/s")
    a1.set_title("Throughput against context")
    a2.plot(ctx, [p["energy_j"] * 1e3 for p in sw], marker="o", color="#d62728")
    a2.set_ylabel("mJ per token")
    a2.set_title("Energy per token against context (static power included)")
    bottom = [0.0] * len(sw)
    for u in ("engine", "attention", "vector", "lm_head"):
        vals = [p["time_s_by_unit"].get(u, 0.0) * 1e3 for p in sw]
        a3.fill_between(ctx, bottom, [b + v for b, v in zip(bottom, vals)], label=u, color=_UNIT_COLORS[u], alpha=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a3.set_ylabel("ms per token")
    a3.set_title("Time per token by unit (stages in order)")
    a3.legend(fontsize=8, loc="upper left")
    bottom = [0.0] * len(sw)
    for k in ("weights", "lm_head", "kv_read", "kv_write", "embedding", "logits_out"):
        vals = [p["bytes"].get(k, 0) / 1e6 for p in sw]
        a4.fill_between(ctx, bottom, [b + v for b, v in zip(bottom, vals)], label=k, color=_BYTE_COLORS[k], alpha=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a4.set_ylabel("MB per token")
    a4.set_title("Bytes per token by class")
    a4.legend(fontsize=8, loc="upper left")
    for ax in (a1, a2, a3, a4):
        ax.set_xlabel("context (tokens in the KV cache)")
        ax.grid(True, alpha=0.2)
    fig.suptitle(f"{(result.get('model') or {}).get('name', 'model')} on {result['board']['name']}: context sweep "
                 f"0..{ctx[-1]:,}")
    fig.savefig(path, dpi=110)


def sweep_table(result: dict) -> list[list[str]]:
    rows = []
    for p in result.get("context_sweep") or []:
        t = p["time_s_by_unit"]
        rows.append([f"{p['context']:,}", _fmt(p["tokens_per_s"]), _fmt(p["energy_j"] * 1e3),
                     *(_fmt(t.get(u, 0.0) * 1e6) for u in ("engine", "attention", "vector", "lm_head")),
                     _fmt(p["bytes"].get("kv_read", 0) / 1e6)])
    return rows


_SWEEP_HEAD = ["context", "tok/s", "mJ/token", "engine us", "attention us", "vector us", "lm_head us",
               "K/V read MB"]


# --- tables --------------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def kinds_table(result: dict) -> list[dict]:
    """One row per projection kind (q_proj, ...): count and per-token sums."""
    rows: dict[str, dict] = {}
    for l in result["layers"]:
        r = rows.setdefault(kind(l["name"]), {"kind": kind(l["name"]), "shape": f"{l['out']} x {l['in']}",
                                              "count": 0, "cycles": 0, "compute_us": 0.0, "memory_us": 0.0,
                                              "weight_bytes": 0, "energy_uj": 0.0, "memory_bound": 0})
        r["count"] += 1
        r["cycles"] += l["cycles"]
        r["compute_us"] += l["compute_s"] * 1e6
        r["memory_us"] += l["memory_s"] * 1e6
        r["weight_bytes"] += l["weight_bytes"]
        r["energy_uj"] += sum(l["energy_pj"].values()) * 1e-6
        r["memory_bound"] += l["bound"] == "memory"
    return list(rows.values())


def summary(result: dict) -> list[tuple[str, str]]:
    """(label, value) rows of the headline figures."""
    pt, board, table = result["per_token"], result["board"], result["energy_table"]
    model = (result.get("model") or {})
    hw = (result.get("hwconfig") or {})
    out = [("model", f"{model.get('name', '?')} ({model.get('arch', '?')}, {model.get('layers', '?')} layers, "
                     f"hidden {model.get('hidden', '?')})"),
           ("config / mode", f"{result.get('config', '?')} / {result.get('mode', '?')}"),
           ("board", f"{board['name']}: {board.get('clock_mhz')} MHz, {board.get('bandwidth_gbs')} GB/s "
                     f"{board.get('memory', '')}"),
           ("array", f"R = {hw.get('rows', board.get('rows', '?'))} rows, T = {hw.get('vectors', board.get('vectors', '?'))}"
                     f" vectors, d = {hw.get('depth', '?')}"),
           ("energy table", f"{table['name']} {table['version']} ({table.get('path', '')})")]
    if result.get("tokens"):
        out.append(("tokens", f"{result['tokens'].get('prompt', '?')} prompt, {result['tokens'].get('generated', '?')} generated"))
    timing = (result.get("timing") or {})
    for key, label in (("ttft_s", "time to first token (s)"), ("prefill_cycles", "prefill cycles"),
                       ("decode_cycles_per_token", "decode cycles per token"),
                       ("decode_tokens_per_s", "decode tokens/s"),
                       ("wall_s_per_token", "simulation wall time per token (s)")):
        if timing.get(key) is not None:
            out.append((label, _fmt(timing[key])))
    mark = {"compute": "", "memory": ""}
    mark[pt["bound"]] = "  <- binds"
    out += [("tokens/s, compute bound", _fmt(pt["tokens_per_s_compute"]) + mark["compute"]),
            ("tokens/s, memory bound", _fmt(pt["tokens_per_s_memory"]) + mark["memory"]),
            ("tokens/s, estimate", _fmt(pt["tokens_per_s"])),
            ("energy per token (J)", _fmt(pt["energy_j"]))]
    if pt.get("weight_bytes") is not None:
        out.append(("weight bytes per token", _fmt(pt["weight_bytes"])))
    if pt.get("memory_efficiency") is not None:
        out.append(("memory", f"{100 * pt['memory_efficiency']:.1f} % of peak sustained "
                              f"({_fmt(pt['sustained_gbs'])} GB/s)"))
    if pt.get("static_w") is not None:
        out.append(("static power", f"board {pt['static_w']:g} W + DRAM background {pt['dram_background_w']:g} W"))
    if pt.get("context") is not None:
        out.append(("context", f"{pt['context']:,} tokens"))
    if pt.get("bytes") is not None:
        out.append(("bytes per token", ", ".join(f"{k} {_fmt(v)}" for k, v in pt["bytes"].items())))
    fit = result.get("memory_fit")
    if fit:
        used = fit.get("total_bytes", fit["weight_bytes"])
        out.append(("fits the board memory", f"{'yes' if fit['fits'] else 'NO'}: {_fmt(used)} of "
                                               f"{_fmt(fit['capacity_bytes'])} bytes"))
    a = result.get("assumptions")
    if a:
        out.append(("projection assumptions", f"zero-trit fraction {a.get('zero_trit_fraction')}; "
                                              f"not counted: {a.get('not_counted')}"))
    return out


def _quality_rows(result: dict) -> list[tuple[str, str]]:
    q = result.get("quality") or {}
    return [(label, _fmt(q[key])) for key, label in _QUALITY if key in q and q[key] is not None]


_KIND_COLS = (("kind", "kind"), ("shape", "out x in"), ("count", "count"), ("cycles", "cycles"),
              ("compute_us", "compute us"), ("memory_us", "memory us"), ("memory_bound", "memory-bound"),
              ("weight_bytes", "weight bytes"), ("energy_uj", "energy uJ"))


def _markdown(result: dict) -> str:
    lines = [f"# tritforge report: {(result.get('model') or {}).get('name', 'run')}", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in summary(result)]
    if result.get("generated_text"):
        lines += ["", "## Generated text", "", "Prompt: " + str(result.get("prompt", "")), "",
                  "```", str(result["generated_text"]), "```"]
    lines += ["", "## Roofline", "", "![roofline](roofline.png)", "", "## Energy per token", "",
              "![energy](energy.png)", "", "| action | J per token |", "|---|---|"]
    for k, v in sorted(result["per_token"]["energy_breakdown_j"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {_fmt(v)} |")
    lines += ["", "## Cycles per layer", "", "![cycles](cycles.png)", "",
              "| " + " | ".join(h for _, h in _KIND_COLS) + " |", "|" + "---|" * len(_KIND_COLS)]
    for r in kinds_table(result):
        lines.append("| " + " | ".join(_fmt(r[k]) for k, _ in _KIND_COLS) + " |")
    if result.get("context_sweep"):
        lines += ["", "## Context sweep", "", "![sweep](sweep.png)", "",
                  "| " + " | ".join(_SWEEP_HEAD) + " |", "|" + "---|" * len(_SWEEP_HEAD)]
        lines += ["| " + " | ".join(r) + " |" for r in sweep_table(result)]
    lines += ["", "## Quality", ""]
    q = _quality_rows(result)
    if q:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in q]
    else:
        lines.append("Not measured (a projection, or a run without quality figures).")
    lines += ["", f"Drawn from [result.json](result.json). Energy table: {result['energy_table']['name']} "
                  f"{result['energy_table']['version']}.", ""]
    return "\n".join(lines)


def _html_table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(folder: str, name: str, alt: str) -> str:
    with open(os.path.join(folder, name), "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html(result: dict, folder: str) -> str:
    title = f"tritforge report: {(result.get('model') or {}).get('name', 'run')}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left;font-size:13px}img{max-width:100%}pre{background:#f4f4f4;padding:1em;"
             "white-space:pre-wrap}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", _html_table(summary(result))]
    if result.get("generated_text"):
        parts += ["<h2>Generated text</h2>", f"<p>Prompt: {html.escape(str(result.get('prompt', '')))}</p>",
                  f"<pre>{html.escape(str(result['generated_text']))}</pre>"]
    parts += ["<h2>Roofline</h2>", _img(folder, "roofline.png", "roofline"),
              "<h2>Energy per token</h2>", _img(folder, "energy.png", "energy breakdown"),
              _html_table([(k, _fmt(v)) for k, v in sorted(result["per_token"]["energy_breakdown_j"].items(),
                                                          key=lambda kv: -kv[1])], ["action", "J per token"]),
              "<h2>Cycles per layer</h2>", _img(folder, "cycles.png", "cycles per layer"),
              _html_table([[_fmt(r[k]) for k, _ in _KIND_COLS] for r in kinds_table(result)],
                          [h for _, h in _KIND_COLS]),
              "<details><summary>every layer</summary>",
              _html_table([(l["name"], f"{l['out']} x {l['in']}", _fmt(l["cycles"]), _fmt(l["compute_s"] * 1e6),
                            _fmt(l["memory_s"] * 1e6), l["bound"], _fmt(sum(l["energy_pj"].values()) * 1e-6))
                           for l in result["layers"]],
                          ["layer", "out x in", "cycles", "compute us", "memory us", "bound", "energy uJ"]),
              "</details>"]
    if result.get("context_sweep"):
        parts += ["<h2>Context sweep</h2>", _img(folder, "sweep.png", "context sweep"),
                  _html_table(sweep_table(result), _SWEEP_HEAD)]
    parts += ["<h2>Quality</h2>"]
    q = _quality_rows(result)
    parts.append(_html_table(q, ["metric", "value"]) if q else
                 "<p>Not measured (a projection, or a run without quality figures).</p>")
    t = result["energy_table"]
    parts += [f"<p>Energy table: {html.escape(t['name'])} {html.escape(str(t['version']))} "
              f"(sha256 {html.escape(str(t.get('sha256', ''))[:16])}). Drawn from result.json "
              f"(written next to this file).</p></body></html>"]
    return "\n".join(parts)


# --- entry point ---------------------------------------------------------------------------

def render(result: dict, out_dir: str) -> dict[str, str]:
    """Write the report files into ``out_dir`` (created if needed); return {file: path}.

    The files are staged together (``atomic.atomic_merge``): they replace the same-named
    files of ``out_dir`` when the command succeeds, other files there stay."""
    check_result(result)
    out_dir = os.path.abspath(out_dir)
    names = list(FILES)
    with atomic_merge(out_dir) as tmp:
        with open(os.path.join(tmp, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        _plot_roofline(result, os.path.join(tmp, "roofline.png"))
        _plot_energy(result, os.path.join(tmp, "energy.png"))
        _plot_cycles(result, os.path.join(tmp, "cycles.png"))
        if result.get("context_sweep"):
            _plot_sweep(result, os.path.join(tmp, "sweep.png"))
            names.append("sweep.png")
        with open(os.path.join(tmp, "report.md"), "w") as f:
            f.write(_markdown(result))
        with open(os.path.join(tmp, "report.html"), "w") as f:
            f.write(_html(result, tmp))
    return {name: os.path.join(out_dir, name) for name in names}
