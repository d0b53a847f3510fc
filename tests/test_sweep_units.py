"""`tritforge sweep --units`: the accelerator's units (not the engine) over lanes and seeds
on a two-worker Dask cluster, Yosys only (xilinx-estimate, the cheapest units): each
point's figures are the unit's own as `synth --unit` reports them, a second run comes
from the cache, the unit flow's sources key the points, and bad input is one line."""
import csv
import json
import os

import pytest

from tritforge.cli import main
from tritforge.fpga import sweeppoint

from test_fuzz import _leftovers
from test_sweep_dask import sweep_once

ARGV = ["sweep", "--target", "xilinx-estimate", "--units", "rope,silumul", "--lanes", "1,2",
        "--workers", "2"]


def _rows(out) -> dict:
    with open(os.path.join(out, "sweep.csv")) as f:
        return {r["point"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    return sweep_once(tmp_path_factory.mktemp("unitsweep"), ARGV, 0)


def test_each_unit_at_each_lanes_is_a_point_with_the_units_own_figures(swept):
    out, text = swept
    assert "Dask LocalCluster, 2 worker processes" in text
    rows = _rows(out)
    assert sorted(rows) == ["rope_l1", "rope_l2", "silumul_l1", "silumul_l2"]
    for name, r in rows.items():
        assert r["status"] == "ok" and r["cached"] == "False" and r["fmax_mhz"] == ""
        report = json.load(open(os.path.join(out, "points", name, "report.json")))
        assert report["meta"]["unit"] == r["unit"] and report["meta"]["lanes"] == int(r["lanes"])
        own = report["modules"]["top.unit"]                     # the unit without its pin shell
        assert int(r["lut"]) == own["lut"] > 0 and int(r["dsp"]) == own["dsp"]
        assert int(r["design_lut"]) == report["resources"]["lut"] > own["lut"]
        assert f"{name:<10} unit LUT {own['lut']:>6}" in text
    for unit in ("rope", "silumul"):          # twice the lanes: more logic, twice the multipliers
        one, two = rows[f"{unit}_l1"], rows[f"{unit}_l2"]
        assert int(two["lut"]) > int(one["lut"]) and int(two["dsp"]) == 2 * int(one["dsp"])
        assert one["pareto"] == two["pareto"] == "True"          # one front per unit
    summary = json.load(open(os.path.join(out, "sweep.json")))
    assert summary["axes"] == {"units": ["rope", "silumul"], "lanes": [1, 2], "seeds": [1]}
    assert summary["source_digest"] == sweeppoint.source_digest(sweeppoint.UNIT_FLOW_MODULES)
    assert open(os.path.join(out, "pareto.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(os.path.join(out, "cache"))) == sorted(r["key"] for r in rows.values())
    assert _leftovers(out) == []


def test_a_second_run_builds_nothing(swept, capsys):
    out, _ = swept
    before = _rows(out)
    assert main([*ARGV, "--out", out]) == 0
    text = capsys.readouterr().out
    assert "cluster" not in text and "4 built, 0 failed or stopped, 4 from the cache" in text
    after = _rows(out)
    assert {n: r["cached"] for n, r in after.items()} == dict.fromkeys(before, "True")
    assert {n: r["lut"] for n, r in after.items()} == {n: r["lut"] for n, r in before.items()}


def test_the_unit_points_are_keyed_by_the_unit_flows_sources():
    from tritforge.fpga.sweep import Flow
    from tritforge.fpga.unitsweep import UnitAxes, plan_units

    files = sweeppoint.source_files(sweeppoint.UNIT_FLOW_MODULES)
    assert {"tritforge.fpga.unitsynth", "tritforge.fpga.unitshell", "tritforge.hw.attention",
            "tritforge.hw.layer", "tritforge.hw.rmsnorm", "tritforge.fpga.synth"} <= set(files)
    assert "tritforge.fpga.unitsweep" not in files and "tritforge.fpga.synthtop" not in files
    # a unit's default lanes given again by number is one point; unit, lanes and seed key it;
    # the units built to check them leave no Amaranth warning behind
    import gc
    import warnings

    from amaranth.hdl import Fragment, Module

    Fragment.get(Module(), None)        # Amaranth warns of unused ones once anything is elaborated
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        points = plan_units(UnitAxes(units=("rope", "attention"), lanes=(None, 1), seeds=(1, 2)),
                            Flow("ecp5-85f"))
        gc.collect()
    assert [str(w.message) for w in seen if "never used" in str(w.message)] == []
    assert [p.name for p in points] == ["rope_l1_s1", "rope_l1_s2", "attention_l16_s1",
                                        "attention_l16_s2", "attention_l1_s1", "attention_l1_s2"]
    assert len({p.key for p in points}) == len(points)
    assert {p.spec["router"] for p in points if p.values["unit"] == "attention"} == {"router2"}
    assert all(p.spec["place"] and p.spec["freq_mhz"] == 200.0 for p in points)


def test_the_element_rate_is_the_lanes_times_fmax_except_for_the_layer():
    from tritforge.fpga.sweep import Flow, Point
    from tritforge.fpga.unitsweep import _row

    record = {"status": "ok", "error": None, "key": "k", "seconds": 1.0,
              "report": {"unit": {"lut": 10, "carry": 1, "lut_equiv": 12, "ff": 20, "bram": 0, "dsp": 1,
                                  "lutram": 0, "fmax_mhz": 150.0}, "resources": {"lut": 30}}}
    rows = {name: _row(Point({"unit": name, "lanes": 4, "seed": 1}, None, {}, "k", f"{name}_l4"), record, False)
            for name in ("rope", "attention", "layer")}
    assert rows["rope"]["melem_per_s"] == rows["attention"]["melem_per_s"] == 600.0
    assert rows["layer"]["melem_per_s"] is None and rows["layer"]["fmax_mhz"] == 150.0


@pytest.mark.parametrize("extra, message", [
    (["--units", "rope,fft"], "--units 'rope,fft': 'fft' is not one of attention"),
    (["--units", "rope", "--lanes", "3"], "--lanes: unit rope lanes=3: Rope lanes=3 must divide"),
    (["--units", "rope", "--lanes", "0"], "--lanes 0: expected whole numbers of lanes >= 1"),
    (["--units", "rope", "--depths", "1"], "--depths: expected only without --units"),
    (["--units", "rope", "--max-in-features", "64"], "--max-in-features: expected only without --units"),
    (["--units", "rope", "--wrapper", "link"], "--wrapper: expected only without --units"),
    (["--units", "rope", "--seeds", "1,-1"], "--seeds -1: expected integers >= 0"),
    (["--units", "rope", "--freq", "0"], "--freq 0.0: expected a positive clock"),
    (["--lanes", "2", "--depths", "1", "--rows", "1"], "--lanes: expected only with --units"),
    (["--depths", "1"], "--rows: required (the engine's axes), unless --units is given"),
])
def test_bad_input_is_one_line_and_writes_nothing(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(["sweep", "--target", "xilinx-estimate", "--out", "o", *extra])
    except SystemExit as exc:        # argparse's own errors (tritforge.cli.Parser.error)
        rc = exc.code
    assert rc == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.out == "" and os.listdir(tmp_path) == []
