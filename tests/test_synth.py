"""Synthesis baselines: every committed fpga/baselines/*.json is re-measured and compared
with its tolerance (area +10 %, Fmax -10 %). Slow (yowasp yosys + nextpnr, minutes per
file): marked ``synth``, run by ``make test-synth``, not in the default suite."""
import os

import pytest

from tritforge.fpga import baseline
from tritforge.fpga.synthtop import synthesize_engine
from tritforge.hwconfig import HwConfig

FILES = baseline.all_baselines()


@pytest.mark.synth
def test_there_are_baselines_for_every_target():
    targets = {baseline.load(p)["target"] for p in FILES}
    assert {"ecp5-85f", "ice40-up5k", "xilinx-estimate"} <= targets


@pytest.mark.synth
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p) for p in FILES])
def test_baseline(path, tmp_path):
    base = baseline.load(path)
    hw = HwConfig.from_dict(base["hwconfig"])
    report = synthesize_engine(hw, base["target"], str(tmp_path / "run"),
                               freq=base["freq_constraint_mhz"], seed=base["seed"],
                               decoder_style=base.get("decoder"),
                               wrapper=base.get("wrapper", "link"))
    fails = baseline.compare(report, base)
    assert not fails, f"{os.path.basename(path)}: " + "; ".join(fails)


def test_parse_pnr_keeps_every_step_of_a_critical_path(tmp_path):
    """nextpnr's report: the critical path's steps, each with its cells, net and delay."""
    from tritforge.fpga import synth as fsynth
    steps = [{"type": "clk-to-q", "delay": 0.5, "from": {"cell": "a", "port": "CLK"}, "to": {"cell": "a", "port": "Q"}},
             {"type": "routing", "delay": 2.25, "net": "n1", "from": {"cell": "a", "port": "Q"},
              "to": {"cell": "b", "port": "D"}},
             {"type": "logic", "delay": 0.25, "from": {"cell": "b", "port": "D"}, "to": {"cell": "b", "port": "F"}}]
    rep = {"fmax": {"$glbnet$clk": {"achieved": 250.0, "constraint": 200.0}},
           "critical_paths": [{"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": steps}]}
    (tmp_path / "pnr.json").write_text(__import__("json").dumps(rep))
    cp = fsynth.parse_pnr(str(tmp_path / "pnr.json"), "")["critical_paths"][0]
    assert (cp["delay_ns"], cp["logic_levels"], cp["start"], cp["end"]) == (3.0, 1, "a", "b")
    assert cp["steps"][1] == {"type": "routing", "delay_ns": 2.25, "from": "a.Q", "to": "b.D", "net": "n1"}
    assert [s["type"] for s in cp["steps"]] == ["clk-to-q", "routing", "logic"] and "net" not in cp["steps"][0]
