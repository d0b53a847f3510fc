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
