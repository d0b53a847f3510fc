"""Sweep the accelerator's units (``fpga.unitsynth``: the attention unit, the vector units,
the decoder-layer top) over lanes and nextpnr seeds on Dask distributed, as ``fpga.sweep``
sweeps the engine: the same cluster, per-point processes, time limit, cache and
all-or-nothing output (``fpga.sweep.run_points``, ``write_output``).

Axes (``UnitAxes``): the units, their lanes (None: each unit's own default) and the seeds;
every combination is one point, one ``synthesize_unit`` run in the unit's pin shell with
the flow options of ``fpga.sweep.Flow`` (target, clock constraint, router, Yosys only,
time limit; a unit has no wrapper choice, its shell is ``fpga.unitshell``). A point's key
covers the unit, lanes, target, seed, clock, router, whether nextpnr runs, the tool
versions and the digest of the unit flow's sources (``fpga.sweeppoint.UNIT_FLOW_MODULES``).

Output: ``sweep.csv`` and ``sweep.json`` (a row per point: the unit's own LUT4, carry,
flip-flops, BRAM, DSP, LUT RAM, the clock's Fmax and the element rate lanes x Fmax where
the lanes are the unit's stream's, ``unitsynth.Unit.lanes_are_rate``: not the layer's),
``pareto.png`` (unit LUTs against M elements/s, or lanes without place and route, a
Pareto front per unit: its lanes trade area for rate) and ``points/<name>/``.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass

from ..errors import TritforgeError
from .sweep import Flow, Point, mark_fronts, open_cache, plot, run_points, write_output
from .sweeppoint import UNIT_FLOW_MODULES, point_key, source_digest
from .synth import pick_router, tool_versions
from .synth import target as get_target

COLUMNS = ("unit", "lanes", "seed", "lut", "carry", "lut_equiv", "ff", "bram", "dsp", "lutram",
           "design_lut", "fmax_mhz", "melem_per_s", "pareto", "status", "error", "note", "cached",
           "seconds", "key", "point")


@dataclass(frozen=True)
class UnitAxes:
    """The swept values; every combination is one point."""
    units: tuple[str, ...]
    lanes: tuple[int | None, ...] = (None,)     #: None: the unit's own default
    seeds: tuple[int, ...] = (1,)


def plan_units(axes: UnitAxes, flow: Flow) -> list[Point]:
    """Every point of ``axes``, checked before anything runs: each unit at each of its lanes
    (``unitsynth.check``: its parameters, no elaboration), the seeds and flow options."""
    from .unitsynth import check, unit

    t = get_target(flow.target)
    for name in ("units", "lanes", "seeds"):
        if not getattr(axes, name):
            raise TritforgeError(f"--{name}: expected at least one value")
    for name in axes.units:
        unit(name)
    for s in axes.seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise TritforgeError(f"--seeds {s}: expected integers >= 0")
    for lanes in axes.lanes:
        if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
            raise TritforgeError(f"--lanes {lanes}: expected whole numbers of lanes >= 1")
    if flow.freq_mhz is not None and not flow.freq_mhz > 0:
        raise TritforgeError(f"--freq {flow.freq_mhz}: expected a positive clock in MHz")
    if flow.timeout_s is not None and not flow.timeout_s > 0:
        raise TritforgeError(f"--timeout-per-point {flow.timeout_s}: expected a positive number of seconds")
    pick_router(flow.router)                     # checks the name

    varying = {"unit": tuple(dict.fromkeys(axes.units)),
               "lanes": tuple(dict.fromkeys(axes.lanes)), "seed": tuple(dict.fromkeys(axes.seeds))}
    # a unit's default lanes also given by number is one point
    combos = dict.fromkeys((name, unit(name).lanes if lanes is None else lanes, seed)
                           for name, lanes, seed in itertools.product(*varying.values()))
    try:
        check(dict.fromkeys((name, lanes) for name, lanes, _ in combos), t.primitives)
    except TritforgeError as exc:
        raise TritforgeError(f"--lanes: {exc}") from None
    tools, source = tool_versions(), source_digest(UNIT_FLOW_MODULES)
    points = []
    for name, lanes, seed in combos:
        spec = {"unit": name, "lanes": lanes, "target": t.name, "seed": seed,
                "freq_mhz": flow.freq_mhz or 200.0, "router": pick_router(flow.router, unit=name),
                "place": not flow.yosys_only, "tools": tools, "source": source}
        point = f"{name}_l{lanes}" + (f"_s{seed}" if len(varying["seed"]) > 1 else "")
        points.append(Point({"unit": name, "lanes": lanes, "seed": seed}, None, spec, point_key(spec), point))
    return points


def run_unit_sweep(points: list[Point], out_dir: str, flow: Flow, *, cache_dir: str | None = None,
                   workers: int | None = None, scheduler: str | None = None,
                   retry_failed: bool = False, progress=print, started=None) -> list[dict]:
    """As ``fpga.sweep.run_sweep``, for the units' ``points`` (``plan_units``; module
    docstring). Returns the rows."""
    t = get_target(flow.target)
    cache = open_cache(out_dir, cache_dir)
    placed = bool(t.nextpnr) and not flow.yosys_only
    ykey = "melem_per_s" if placed else "lanes"
    table = run_points(points, cache, flow, _row, _line, workers=workers, scheduler=scheduler,
                       retry_failed=retry_failed, progress=progress, started=started)
    mark_fronts(table, "unit", "lut", ykey, "pareto")       # a unit's lanes trade area for rate
    kind = t.kind if placed or not t.nextpnr else "yosys only, no place-and-route"
    axes = {k: list(dict.fromkeys(p.values[k] for p in points)) for k in ("unit", "lanes", "seed")}
    summary = {"target": t.name, "kind": kind,
               "axes": {"units": axes["unit"], "lanes": axes["lanes"], "seeds": axes["seed"]},
               "flow": dataclasses.asdict(flow), "tools": points[0].spec["tools"],
               "source_digest": points[0].spec["source"]}
    ylabel = "M elements/s (lanes x Fmax)" if placed else "lanes (elements per cycle)"
    write_output(out_dir, points, table, cache, COLUMNS, summary,
                 lambda work: plot(table, ykey, ylabel, "pareto", f"{t.name} units ({kind})",
                                   os.path.join(work, "pareto.png"), xkey="lut", xlabel="unit LUT4",
                                   group="unit", group_label="{}"))
    return table


def _row(p: Point, record: dict, cached: bool) -> dict:
    from .unitsynth import unit

    row = {c: None for c in COLUMNS}
    row.update(p.values, status=record["status"], error=record["error"], note=record.get("note"),
               cached=cached, seconds=record.get("seconds"), key=record["key"], point=p.name)
    if record["status"] != "ok":
        return row
    rep = record["report"]
    row.update({k: rep["unit"][k] for k in ("lut", "carry", "lut_equiv", "ff", "bram", "dsp", "lutram",
                                            "fmax_mhz")})
    row["design_lut"] = rep["resources"]["lut"]
    if row["fmax_mhz"] is not None and unit(p.values["unit"]).lanes_are_rate:
        row["melem_per_s"] = round(p.values["lanes"] * row["fmax_mhz"], 1)
    return row


def _line(r: dict, done: int, total: int, width: int) -> str:
    head = f"[{done}/{total}] {r['point']:<{width}}"
    if r["status"] != "ok":
        return f"{head} {r['status']}{' (cached)' * bool(r['cached'])}: {r['error']}"
    fm = f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] is not None else "no P&R"
    when = "cached" if r["cached"] else f"{r['seconds']:.0f} s"
    when += f"; {r['note']}" if r["note"] else ""
    return (f"{head} unit LUT {r['lut']:>6} (+{r['carry']} carry), FF {r['ff']:>6}, DSP {r['dsp']}, "
            f"BRAM {r['bram']}, LUT RAM {r['lutram']}, {fm} ({when})")
