"""Committed synthesis baselines (``fpga/baselines/*.json``) and the regression check.

One file per target and configuration, ``<target>_d<D>_r<R>.json``: the HwConfig, the
engine's own LUT/FF/BRAM/DSP, Fmax (place-and-route targets), the tool versions and the
seed it was measured with, and the tolerances. ``compare`` fails a new report whose area
grew by more than ``area_tolerance`` (default 10 %) or whose Fmax fell by more than
``fmax_tolerance`` (default 10 %); improvements pass (refresh the baseline to lock them
in: ``tritforge synth ... --save-baseline``).
"""
from __future__ import annotations

import glob
import os

from ..atomic import write_json
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from ..jsonfile import read_json

FOLDER = os.path.join(os.path.dirname(__file__), "baselines")
AREA_TOLERANCE = 0.10
FMAX_TOLERANCE = 0.10
AREA_KEYS = ("engine_lut", "engine_ff", "engine_bram", "engine_dsp")
#: small counts (BRAM, DSP) may move by this much whatever the percentage
AREA_SLACK = 2


def file_name(target: str, hw: HwConfig) -> str:
    org = "" if hw.organisation == "lockstep" else f"_{hw.organisation}"
    stream = "_variable" if hw.variable else ""
    return f"{target}_d{hw.depth}_r{hw.rows}{org}{stream}.json"


def from_report(report: dict) -> dict:
    e = report["engine"]
    return {"target": report["target"], "kind": report["kind"],
            "hwconfig": report["meta"]["hwconfig"], "decoder": report["meta"].get("decoder"),
            "wrapper": report["meta"].get("wrapper", "link"),
            "engine": {k: e[k] for k in AREA_KEYS + ("lut_per_lane",)},
            "fmax_mhz": e["fmax_mhz"], "seed": report["seed"],
            "freq_constraint_mhz": report["freq_constraint_mhz"], "tools": report["tools"],
            "area_tolerance": AREA_TOLERANCE, "fmax_tolerance": FMAX_TOLERANCE}


def save(report: dict, folder: str = FOLDER) -> str:
    base = from_report(report)
    hw = HwConfig.from_dict(base["hwconfig"])
    path = os.path.join(folder, file_name(base["target"], hw))
    write_json(path, base)
    return path


def read_baseline(path: str, what: str, check) -> dict:
    """The baseline JSON in ``path`` once ``check(data)`` has passed (a malformed one raises
    ``KeyError``, ``TypeError`` or ``ValueError`` there); one-line errors naming ``path``."""
    data = read_json(path, what)
    try:
        check(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise TritforgeError(f"{path}: not a {what} ({exc})") from None
    return data


def regressions(got: dict, base: dict, figures: dict, keys, small_keys) -> list[str]:
    """Regressions of the measured ``got`` against a baseline ``base`` whose area figures
    are ``figures``: an area key over ``area_tolerance`` (``small_keys`` with
    ``AREA_SLACK`` beside it), Fmax under ``fmax_tolerance``, or no Fmax where the
    baseline has one (empty: within tolerance)."""
    fails = []
    at = float(base.get("area_tolerance", AREA_TOLERANCE))
    for k in keys:
        limit = figures[k] * (1 + at) + (AREA_SLACK if k in small_keys else 0)
        if got[k] > limit:
            fails.append(f"{k} {got[k]} > baseline {figures[k]} + {at:.0%}")
    if base.get("fmax_mhz") is not None:
        ft = float(base.get("fmax_tolerance", FMAX_TOLERANCE))
        if got.get("fmax_mhz") is None:
            fails.append("no Fmax measured (place-and-route missing)")
        elif got["fmax_mhz"] < base["fmax_mhz"] * (1 - ft):
            fails.append(f"Fmax {got['fmax_mhz']:.1f} MHz < baseline {base['fmax_mhz']:.1f} MHz - {ft:.0%}")
    return fails


def _check(data: dict) -> None:
    HwConfig.from_dict(data["hwconfig"])
    for k in AREA_KEYS:
        int(data["engine"][k])


def load(path: str) -> dict:
    return read_baseline(path, "synthesis baseline", _check)


def all_baselines(folder: str = FOLDER) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.json")))


def find(target: str, hw: HwConfig, wrapper: str = "io", folder: str = FOLDER) -> dict:
    path = os.path.join(folder, file_name(target, hw))
    if not os.path.exists(path):
        raise TritforgeError(f"no baseline {os.path.basename(path)} in {folder}")
    base = load(path)
    if HwConfig.from_dict(base["hwconfig"]) != hw:
        raise TritforgeError(f"{path}: measured with other parameters {base['hwconfig']}")
    if base.get("wrapper", "link") != wrapper:
        raise TritforgeError(f"{path}: measured with --wrapper {base.get('wrapper', 'link')}, "
                             f"not {wrapper}")
    return base


def compare(report: dict, base: dict) -> list[str]:
    """Regressions of ``report`` against ``base`` (empty: within tolerance)."""
    return regressions(report["engine"], base, base["engine"], AREA_KEYS, ("engine_bram", "engine_dsp"))
