"""Sweep the engine over a design space on Dask distributed: a table, Pareto plots, a cache.
The cluster, the cache and the output (``run_points``, ``write_output``, ``mark_fronts``,
``plot``) serve the unit sweep (``fpga.unitsweep``) too.

Axes: d, R, T, the nextpnr seed, the decoder style and the primitive set (``Axes``); every
combination is one point, one ``synthesize_engine`` run (``fpga.synthtop``) with the same
flow options (``Flow``: target, clock constraint, wrapper, router, Yosys only or place and
route, a time limit per point).

Points run on Dask distributed (``distributed.Client``): a ``LocalCluster`` of ``workers``
worker processes (one point at a time each) or an existing cluster at ``scheduler``. Each
point runs in a process of its own on its worker (``fpga.sweeppoint.run_point``), which a
time limit or an interrupted sweep stops whole; progress is reported as points complete
(``distributed.as_completed``). A point that fails (does not fit the device, a tool error)
or runs out of time is recorded with its one-line error and the others go on.

The cache: every point's result is kept under ``cache/<key>/`` (``point.json``: the record;
the flow's ``report.json``, ``synth.ys`` and gzip-compressed logs), where ``key`` is the
hash of the point's inputs (``fpga.sweeppoint.point_key``: the HwConfig, target, seed,
clock constraint, decoder, primitive set, wrapper, router, Yosys-only or not, the tool
versions and the digest of the generator's sources). Each entry is committed on its own as
its point completes, outside the sweep's output, so an interrupted sweep run again resumes
(its cached points are not run again) and a point already run by any sweep with the same
cache is free. A point built with other tools or sources than the sweep started with (a
worker of another machine, sources edited meanwhile) is cached under the key of what it
was built from, and its row's ``note`` says so. Points that failed are cached too (they fail the same way again; with
``retry_failed`` they run again); points that ran out of time or whose process died are
not.

The estimator joins the table (``Estimator``): for a model shape and a board (its memory
system, static power and energy table; ``sim.estimate.project``), each built point's
tokens/s and J/token with the engine it measured (R, T, d) at its Fmax, or at the clock
constraint where nothing was placed and routed.

The output folder gets ``sweep.csv`` and ``sweep.json`` (one row per point: the engine's
own LUT/FF/BRAM/DSP, LUT4 per trit-plane lane, Fmax, MAC/cycle x Fmax in GMAC/s, tokens/s,
J/token, status and error), ``pareto.png`` (engine LUTs against GMAC/s, or MAC/cycle
without place and route) and ``pareto_tokens.png`` (engine LUTs against tokens/s), each
marking the Pareto front (no other point has fewer LUTs and more throughput) per depth,
since d sets the precision; and ``points/<name>/`` per point (its ``point.json`` and, when
built, its report and logs). These entries replace the same-named ones of the folder
together when the sweep completes (``atomic_merge``); the cache beside them stays.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import logging
import os
import shutil
from dataclasses import dataclass

from ..atomic import atomic_folder, atomic_merge, scratch, write_json
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .sweeppoint import one_line, point_key, run_point, source_digest
from .synth import pick_router, tool_versions
from .synth import target as get_target

COLUMNS = ("depth", "rows", "vectors", "seed", "decoder", "primitives", "lanes", "macs_per_cycle",
           "engine_lut", "engine_carry", "engine_ff", "engine_bram", "engine_dsp", "lut_per_lane",
           "lut_equiv_per_lane", "design_lut", "fmax_mhz", "gmac_per_s", "pareto",
           "est_clock_mhz", "tokens_per_s", "j_per_token", "est_bound", "model_fits",
           "pareto_tokens", "status", "error", "note", "cached", "seconds", "key", "point")

#: statuses whose records are cached: the flow's result, or its error (the same inputs
#: fail the same way); a time limit or a lost process may not recur
CACHED = ("ok", "failed")

#: the flow's wrappers (``fpga.synthtop.WRAPPERS``)
WRAPPER_NAMES = ("io", "link")


@dataclass(frozen=True)
class Axes:
    """The values of each swept parameter; every combination is one point."""
    depths: tuple[int, ...]
    rows: tuple[int, ...]
    vectors: tuple[int, ...] = (1,)
    seeds: tuple[int, ...] = (1,)
    decoders: tuple[str, ...] = (None,)       #: None: the engine's default style
    primitives: tuple[str, ...] = (None,)     #: None: the target's primitive set


@dataclass(frozen=True)
class Flow:
    """The flow options shared by every point."""
    target: str
    freq_mhz: float | None = None             #: clock constraint; None: the HwConfig's clock
    wrapper: str = "io"
    router: str = "auto"                      #: a router, or "auto": synth.pick_router per point
    yosys_only: bool = False
    timeout_s: float | None = None            #: per point; None: no limit


@dataclass(frozen=True)
class Estimator:
    """The model shape and board every built point is projected on (``sim.estimate.project``)."""
    model: str                                #: a bundled shape name or an HF config.json
    board: object                             #: ``sim.boards.Board``: memory, static power
    table: object                             #: ``sim.energy.EnergyTable``
    context: int = 0


@dataclass(frozen=True)
class Point:
    values: dict          #: depth, rows, vectors, seed, decoder, primitives (resolved)
    hw: HwConfig
    spec: dict
    key: str
    name: str             #: its folder under points/


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


# --- the points ---------------------------------------------------------------------------

_AXIS_OPTION = {"depth": "--depths", "rows": "--rows", "vectors": "--vectors"}
_NAME_PART = (("depth", "d{}"), ("rows", "r{}"), ("vectors", "t{}"), ("seed", "s{}"),
              ("decoder", "{}"), ("primitives", "{}"))


def plan(axes: Axes, base: HwConfig, flow: Flow) -> list[Point]:
    """Every point of ``axes`` (in axis order), checked before anything runs: each value's
    HwConfig, the decoder styles, primitive sets, wrapper, router and flow options."""
    from ..hw.decoder import DEFAULT_STYLE, STYLES
    from ..hw.primitives import PRIMITIVES

    t = get_target(flow.target)
    for name in ("depths", "rows", "vectors", "seeds", "decoders", "primitives"):
        if not getattr(axes, name):
            raise TritforgeError(f"--{name}: expected at least one value")
    for field, values in (("depth", axes.depths), ("rows", axes.rows), ("vectors", axes.vectors)):
        for v in values:
            try:
                HwConfig.from_dict({**base.to_dict(), field: v}, "options")
            except TritforgeError as exc:
                raise TritforgeError(f"{_AXIS_OPTION[field]} {v}: {str(exc).removeprefix('options: ')}") from None
    for s in axes.seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise TritforgeError(f"--seeds {s}: expected integers >= 0")
    for d in axes.decoders:
        if d is not None and d not in STYLES:
            raise TritforgeError(f"--decoders {d!r}: expected one of {', '.join(STYLES)}")
    for p in axes.primitives:
        if p is not None and p not in PRIMITIVES:
            raise TritforgeError(f"--primitives {p!r}: expected one of {', '.join(PRIMITIVES)}")
    if flow.wrapper not in WRAPPER_NAMES:
        raise TritforgeError(f"--wrapper {flow.wrapper!r}: expected one of {', '.join(WRAPPER_NAMES)}")
    pick_router(flow.router)                     # checks the name
    if flow.freq_mhz is not None and not flow.freq_mhz > 0:
        raise TritforgeError(f"--freq {flow.freq_mhz}: expected a positive clock in MHz")
    if flow.timeout_s is not None and not flow.timeout_s > 0:
        raise TritforgeError(f"--timeout-per-point {flow.timeout_s}: expected a positive number of seconds")

    tools, source = tool_versions(), source_digest()
    varying = {"depth": axes.depths, "rows": axes.rows, "vectors": axes.vectors,
               "seed": axes.seeds, "decoder": axes.decoders, "primitives": axes.primitives}
    varying = {k: tuple(dict.fromkeys(v)) for k, v in varying.items()}     # each value once
    points = []
    for d, r, v, s, dec, prim in itertools.product(*varying.values()):
        hw = HwConfig.from_dict({**base.to_dict(), "depth": d, "rows": r, "vectors": v}, "options")
        values = {"depth": d, "rows": r, "vectors": v, "seed": s,
                  "decoder": dec or DEFAULT_STYLE, "primitives": prim or t.primitives}
        spec = {"hwconfig": hw.to_dict(), "target": t.name, "seed": s,
                "freq_mhz": flow.freq_mhz or hw.clock_mhz, "decoder": values["decoder"],
                "primitives": values["primitives"], "wrapper": flow.wrapper,
                "router": pick_router(flow.router, hw),
                "place": bool(t.nextpnr) and not flow.yosys_only, "tools": tools, "source": source}
        name = "_".join(fmt.format(values[k]) for k, fmt in _NAME_PART
                        if k in ("depth", "rows") or len(varying[k]) > 1)
        points.append(Point(values, hw, spec, point_key(spec), name))
    return points


# --- the cache ----------------------------------------------------------------------------

class Cache:
    """Point records by key, one folder each (``cache/<key>/point.json`` and the point's
    files), each committed atomically as its point completes."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        if os.path.lexists(self.folder) and not os.path.isdir(self.folder):
            raise TritforgeError(f"--cache {folder}: exists and is not a folder")

    def path(self, key: str) -> str:
        return os.path.join(self.folder, key)

    def get(self, point: Point) -> dict | None:
        path = os.path.join(self.path(point.key), "point.json")
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        # the key is a hash: an entry of other inputs (or edited by hand) is not this point's
        return record if record.get("spec") == point.spec and record.get("status") in CACHED else None

    def put(self, record: dict) -> None:
        """Commit ``record`` (its files as files, the rest as ``point.json``) now, outside
        the command's output transaction: it stays even if the sweep is interrupted later."""
        with scratch(), atomic_folder(self.path(record["key"])) as work:
            for name, data in record["files"].items():
                with open(os.path.join(work, name), "wb") as f:
                    f.write(data)
            with open(os.path.join(work, "point.json"), "w") as f:
                json.dump(_without_files(record), f, indent=1)
                f.write("\n")


def _without_files(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "files"}


# --- the cluster --------------------------------------------------------------------------

def default_workers() -> int:
    """Workers of the local cluster: half the cores (nextpnr and Yosys are single-threaded
    and take much memory), at least 1, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A ``distributed.Client``: of a ``LocalCluster`` of ``workers`` processes (one
    thread each: one point at a time), or of the cluster at ``scheduler``. Yields the
    client and a line describing it; leaving the block shuts the local cluster down."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise TritforgeError(f"--scheduler {scheduler}: cannot connect ({one_line(exc, 200)})") from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            yield client, f"Dask scheduler {scheduler}, {n} worker{'s' * (n != 1)}"
        return
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TritforgeError(f"--workers {workers}: expected a positive number of workers")
    # the scheduler's HTTP server (dashboard, health) on a free port: a fixed one clashes
    # with any other cluster on the machine
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client, f"Dask LocalCluster, {workers} worker process{'es' * (workers != 1)} ({cluster.scheduler_address})"


# --- the sweep ----------------------------------------------------------------------------

def run_sweep(axes: Axes, base: HwConfig, out_dir: str, flow: Flow, *,
              estimator: Estimator | None = None, cache_dir: str | None = None,
              workers: int | None = None, scheduler: str | None = None,
              retry_failed: bool = False, progress=print, started=None) -> list[dict]:
    """Run every point not in the cache on Dask, then write the table and plots into
    ``out_dir`` (module docstring). ``progress(line)`` is called once per point (cached
    ones first); ``started(line)`` once the cluster is up. Returns the rows."""
    t = get_target(flow.target)
    points = plan(axes, base, flow)
    cache = open_cache(out_dir, cache_dir)
    ykey = "gmac_per_s" if points[0].spec["place"] else "macs_per_cycle"
    table = run_points(points, cache, flow, lambda p, record, cached: _row(p, record, cached, estimator),
                       _line, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                       progress=progress, started=started)
    # d sets the precision: a front per depth
    mark_fronts(table, "depth", "engine_lut", ykey, "pareto")
    if estimator is not None:
        mark_fronts(table, "depth", "engine_lut", "tokens_per_s", "pareto_tokens")
    summary = {"target": t.name, "kind": t.kind if points[0].spec["place"] or not t.nextpnr
               else "yosys only, no place-and-route",
               "axes": dataclasses.asdict(axes), "flow": dataclasses.asdict(flow),
               "base": base.to_dict(), "tools": points[0].spec["tools"],
               "source_digest": points[0].spec["source"], "estimate": _estimate_meta(estimator)}

    def plots(work: str) -> None:
        title = f"{t.name} ({summary['kind']})"
        plot(table, ykey, "GMAC/s (MAC/cycle x Fmax)" if ykey == "gmac_per_s" else "MAC/cycle",
             "pareto", title, os.path.join(work, "pareto.png"), **ENGINE_PLOT)
        if estimator is not None:
            meta = summary["estimate"]
            plot(table, "tokens_per_s", "tokens/s (estimate)", "pareto_tokens",
                 f"{title}: {meta['model']} on {meta['board']}, context {meta['context']:,}",
                 os.path.join(work, "pareto_tokens.png"), **ENGINE_PLOT)

    write_output(out_dir, points, table, cache, COLUMNS, summary, plots)
    return table


def open_cache(out_dir: str, cache_dir: str | None) -> Cache:
    """The sweep's cache: ``cache_dir``, else ``out_dir/cache`` (``out_dir`` checked)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise TritforgeError(f"--out {out_dir}: exists and is not a folder")
    return Cache(cache_dir or os.path.join(out_dir, "cache"))


def run_points(points: list[Point], cache: Cache, flow: Flow, row, line, *, workers: int | None = None,
               scheduler: str | None = None, retry_failed: bool = False, progress=print,
               started=None) -> list[dict]:
    """The rows of ``points`` (in their order): a cached point's from its cached record,
    every other point's once it has run on Dask (``row(point, record, cached)``; each
    completed point committed to the cache and announced by ``progress(line(row, done,
    total, width))``)."""
    total, width = len(points), max(len(p.name) for p in points)
    rows, todo = {}, []
    for p in points:
        record = cache.get(p)
        if record is not None and not (retry_failed and record["status"] == "failed"):
            rows[p.key] = row(p, record, True)
            progress(line(rows[p.key], len(rows), total, width))
        else:
            todo.append(p)
    if todo:
        todo_workers = None if scheduler else min(workers or default_workers(), len(todo))
        with dask_client(todo_workers, scheduler) as (client, what):
            if started is not None:
                started(what)
            futures = {client.submit(run_point, p.spec, flow.timeout_s, key=f"tritforge-point-{p.key}",
                                     pure=False): p for p in todo}
            from distributed import as_completed
            for fut in as_completed(list(futures)):
                try:
                    record = fut.result()
                except Exception as exc:          # the worker was lost, or a bug in the task
                    record = {"key": futures[fut].key, "spec": futures[fut].spec, "note": None,
                              "status": "crashed", "error": one_line(f"{type(exc).__name__}: {exc}"),
                              "seconds": None, "report": None, "files": {}}
                if record["status"] in CACHED:
                    cache.put(record)
                p = futures[fut]
                rows[p.key] = row(p, record, False)
                progress(line(rows[p.key], len(rows), total, width))
    return [rows[p.key] for p in points]


def write_output(out_dir: str, points: list[Point], table: list[dict], cache: Cache,
                 columns: tuple[str, ...], summary: dict, plots) -> None:
    """``points/<name>/`` per point, ``sweep.csv`` (``columns``), ``sweep.json`` (``summary``
    with the cache folder and the rows) and what ``plots(folder)`` draws, replacing the
    same-named entries of ``out_dir`` together."""
    with atomic_merge(os.path.abspath(out_dir)) as work:
        for p, row in zip(points, table):
            dest = os.path.join(work, "points", p.name)
            entry = cache.path(row["key"])
            if row["status"] in CACHED and os.path.isdir(entry):
                shutil.copytree(entry, dest, copy_function=_link_or_copy)
            else:
                os.makedirs(dest)
                with open(os.path.join(dest, "point.json"), "w") as f:
                    json.dump({"key": row["key"], "spec": p.spec, "status": row["status"],
                               "error": row["error"], "seconds": row["seconds"]}, f, indent=1)
                    f.write("\n")
        with open(os.path.join(work, "sweep.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(table)
        write_json(os.path.join(work, "sweep.json"), {**summary, "cache": cache.folder, "points": table})
        plots(work)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:             # another file system
        shutil.copy2(src, dst)


def mark_fronts(table: list[dict], group: str, xkey: str, ykey: str, column: str) -> None:
    """``column``: whether a row is on the Pareto front (``pareto_front``) of the rows with
    its ``group`` value (None where it has no x or y)."""
    for g in dict.fromkeys(p[group] for p in table):
        same = [p for p in table if p[group] == g]
        front = pareto_front(same, xkey, ykey)
        for i, p in enumerate(same):
            p[column] = (i in front) if p[xkey] is not None and p[ykey] is not None else None


def _row(p: Point, record: dict, cached: bool, estimator: Estimator | None) -> dict:
    row = {c: None for c in COLUMNS}
    row.update(p.values, lanes=p.hw.rows * 16 * p.hw.depth, macs_per_cycle=p.hw.macs_per_cycle,
               status=record["status"], error=record["error"], note=record.get("note"), cached=cached,
               seconds=record.get("seconds"), key=record["key"], point=p.name)
    if record["status"] != "ok":
        return row
    rep = record["report"]
    e = rep["engine"]
    row.update({k: e[k] for k in ("engine_lut", "engine_carry", "engine_ff", "engine_bram", "engine_dsp",
                                  "lut_per_lane", "lut_equiv_per_lane", "fmax_mhz")})
    row["design_lut"] = rep["resources"]["lut"]
    if e["fmax_mhz"] is not None:
        row["gmac_per_s"] = round(p.hw.macs_per_cycle * e["fmax_mhz"] / 1e3, 3)
    if estimator is not None:
        row.update(estimate_point(p.hw, e["fmax_mhz"] or p.spec["freq_mhz"], p.name, estimator))
    return row


def estimate_point(hw: HwConfig, clock_mhz: float, label: str, est: Estimator) -> dict:
    """Tokens/s and J/token of ``est.model`` with the engine ``hw`` at ``clock_mhz`` on
    ``est.board``'s memory and static power (``sim.boards.with_hwconfig``, as
    ``tritforge estimate --hw``)."""
    from ..sim.boards import with_hwconfig
    from ..sim.estimate import project

    board = with_hwconfig(est.board, dataclasses.replace(hw, clock_mhz=float(clock_mhz)), label)
    try:
        r = project(est.model, hw.depth, board, est.table, context=est.context)
    except TritforgeError as exc:
        return {"est_clock_mhz": clock_mhz, "est_bound": f"estimate failed: {one_line(exc, 200)}"}
    pt = r["per_token"]
    return {"est_clock_mhz": clock_mhz, "tokens_per_s": round(pt["tokens_per_s"], 3),
            "j_per_token": round(pt["energy_j"], 6), "est_bound": pt["bound"],
            "model_fits": r["memory_fit"]["fits"]}


def _estimate_meta(est: Estimator | None) -> dict | None:
    if est is None:
        return None
    from ..sim.estimate import load_shape

    shape = load_shape(est.model)
    return {"model": shape.get("_name", est.model), "model_config": shape.get("_path"),
            "board": est.board.name, "board_title": est.board.title, "context": est.context,
            "energy_table": f"{est.table.name} {est.table.version}",
            "clock": "each point's Fmax; its clock constraint where it was not placed and routed"}


def _line(p: dict, done: int, total: int, width: int) -> str:
    head = f"[{done}/{total}] {p['point']:<{width}}"
    if p["status"] != "ok":
        return f"{head} {p['status']}{' (cached)' * bool(p['cached'])}: {p['error']}"
    fm = f"{p['fmax_mhz']:.1f} MHz" if p["fmax_mhz"] is not None else "no P&R"
    tok = (f", {p['tokens_per_s']:.2f} tok/s, {p['j_per_token']:.4f} J/token"
           if p["tokens_per_s"] is not None else "")
    when = "cached" if p["cached"] else f"{p['seconds']:.0f} s"
    when += f"; {p['note']}" if p["note"] else ""
    return (f"{head} engine LUT {p['engine_lut']:>6} ({p['lut_per_lane']:.1f}/lane), "
            f"FF {p['engine_ff']:>6}, DSP {p['engine_dsp']}, BRAM {p['engine_bram']}, {fm}{tok} ({when})")


#: the engine's plots: engine LUTs on x, a colour and a front per depth
ENGINE_PLOT = {"xkey": "engine_lut", "xlabel": "engine LUTs", "group": "depth", "group_label": "d = {}"}


def plot(points: list[dict], ykey: str, ylabel: str, front: str, title: str, path: str, *,
         xkey: str, xlabel: str, group: str, group_label: str) -> None:
    """``xkey`` (log scale) against ``ykey``, one colour and one Pareto front (``front``
    column) per ``group`` value, each point labelled with its name after the first part."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in points if p[xkey] is not None and p[ykey] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for g in dict.fromkeys(p[group] for p in sorted(ok, key=lambda p: str(p[group]))):
        label = group_label.format(g)
        pts = [p for p in ok if p[group] == g]
        dots = ax.scatter([p[xkey] for p in pts], [p[ykey] for p in pts], label=label, zorder=3)
        for p in pts:
            ax.annotate(p["point"].split("_", 1)[1], (p[xkey], p[ykey]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        line = sorted((p for p in pts if p[front]), key=lambda p: p[xkey])
        if len(line) > 1:
            ax.step([p[xkey] for p in line], [p[ykey] for p in line], where="post",
                    color=dots.get_facecolor()[0], linestyle="--", alpha=0.6,
                    label=f"Pareto front {label}", zorder=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if ok:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no point was built", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
