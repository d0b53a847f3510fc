"""Sweep the engine over R and d for one target: a table and a Pareto plot.

Every point is one ``synthesize_engine`` run (``fpga.synthtop``) kept in
``DIR/points/d<D>_r<R>/``. The table (``sweep.csv``, ``sweep.json``) has the engine's own
LUT/FF/BRAM/DSP, LUT4 per trit-plane lane, Fmax and the throughput figure
MAC/cycle x Fmax (R*16 weight x activation products per cycle, in GMAC/s); ``pareto.png``
plots engine LUTs against that throughput and marks the Pareto front (no other point has
fewer LUTs and more throughput), one front per depth, since d sets the precision. For ``xilinx-estimate`` (no Fmax) the throughput axis
is MAC/cycle. Points that do not fit the device are recorded with their error.
The folder is built under a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import dataclasses
import os

from ..atomic import atomic_folder, write_json
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .synth import target as get_target
from .synthtop import synthesize_engine

COLUMNS = ("depth", "rows", "lanes", "macs_per_cycle", "engine_lut", "engine_carry", "engine_ff",
           "engine_bram", "engine_dsp", "lut_per_lane", "lut_equiv_per_lane", "design_lut",
           "fmax_mhz", "gmac_per_s", "pareto", "error")


def pareto_front(points: list[dict], x: str, y: str) -> set[int]:
    """Indices of points not dominated (fewer-or-equal x and more-or-equal y, one strictly)."""
    front = set()
    for i, p in enumerate(points):
        if p.get(x) is None or p.get(y) is None:
            continue
        dominated = any(q.get(x) is not None and q.get(y) is not None
                        and q[x] <= p[x] and q[y] >= p[y] and (q[x] < p[x] or q[y] > p[y])
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            front.add(i)
    return front


def run_sweep(target: str, rows: list[int], depths: list[int], base: HwConfig, out_dir: str,
              freq: float | None = None, seed: int = 1, progress=print) -> list[dict]:
    t = get_target(target)
    if not rows or not depths:
        raise TritforgeError("sweep: give at least one R and one d")
    with atomic_folder(out_dir) as work:
        points = []
        for d in depths:
            for r in rows:
                hw = dataclasses.replace(base, depth=d, rows=r)
                row = {c: None for c in COLUMNS}
                row.update(depth=d, rows=r, lanes=r * 16 * d, macs_per_cycle=hw.macs_per_cycle)
                try:
                    rep = synthesize_engine(hw, target, os.path.join(work, "points", f"d{d}_r{r}"),
                                            freq, seed)
                except TritforgeError as exc:      # e.g. does not fit the device
                    row["error"] = str(exc)
                else:
                    e = rep["engine"]
                    row.update({k: e[k] for k in ("engine_lut", "engine_carry", "engine_ff",
                                                  "engine_bram", "engine_dsp", "lut_per_lane",
                                                  "lut_equiv_per_lane", "fmax_mhz")})
                    row["design_lut"] = rep["resources"]["lut"]
                    if e["fmax_mhz"] is not None:
                        row["gmac_per_s"] = round(hw.macs_per_cycle * e["fmax_mhz"] / 1e3, 3)
                points.append(row)
                progress(_line(row))
        ykey = "gmac_per_s" if t.nextpnr else "macs_per_cycle"
        for d in depths:            # d sets the precision: one front per depth
            same = [p for p in points if p["depth"] == d]
            front = pareto_front(same, "engine_lut", ykey)
            for i, p in enumerate(same):
                p["pareto"] = i in front if p["engine_lut"] is not None else None
        with open(os.path.join(work, "sweep.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(points)
        write_json(os.path.join(work, "sweep.json"),
                   {"target": target, "kind": t.kind, "seed": seed, "base": base.to_dict(), "points": points})
        plot(points, ykey, f"{target} ({t.kind})", os.path.join(work, "pareto.png"))
    return points


def _line(p: dict) -> str:
    if p["error"]:
        return f"d={p['depth']} R={p['rows']:<3} failed: {p['error']}"
    fm = f"{p['fmax_mhz']:.1f} MHz" if p["fmax_mhz"] is not None else "no P&R"
    return (f"d={p['depth']} R={p['rows']:<3} engine LUT {p['engine_lut']:>6} "
            f"({p['lut_per_lane']:.1f}/lane), FF {p['engine_ff']:>6}, DSP {p['engine_dsp']}, "
            f"BRAM {p['engine_bram']}, {fm}")


def plot(points: list[dict], ykey: str, title: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in points if p["engine_lut"] is not None and p[ykey] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for d in sorted({p["depth"] for p in ok}):
        pts = [p for p in ok if p["depth"] == d]
        dots = ax.scatter([p["engine_lut"] for p in pts], [p[ykey] for p in pts], label=f"d = {d}",
                          zorder=3)
        for p in pts:
            ax.annotate(f"R={p['rows']}", (p["engine_lut"], p[ykey]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["engine_lut"])
        if len(front) > 1:
            ax.step([p["engine_lut"] for p in front], [p[ykey] for p in front], where="post",
                    color=dots.get_facecolor()[0], linestyle="--", alpha=0.6,
                    label=f"Pareto front d = {d}", zorder=2)
    ax.set_xlabel("engine LUTs")
    ax.set_ylabel("GMAC/s (MAC/cycle x Fmax)" if ykey == "gmac_per_s" else "MAC/cycle")
    ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
