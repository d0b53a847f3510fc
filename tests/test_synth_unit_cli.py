"""`tritforge synth --unit`: argument handling (one line, exit 2, nothing written) and one
cheap run, Yosys only (--no-place) on the Rope, whose report and printed lines carry the
unit's own cells."""
import json

import pytest

from tritforge.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--unit", "gemv"], "argument --unit: invalid choice: 'gemv'"),
    (["--unit", "rope", "--lanes", "3"], "unit rope lanes=3: Rope lanes=3 must divide head_dim / 2=32"),
    (["--unit", "rope", "--lanes", "0"], "--lanes 0: expected a whole number of lanes >= 1"),
    (["--unit", "rope", "--lanes", "x"], "argument --lanes: invalid int value: 'x'"),
    (["--unit", "rope", "--rows", "4"], "--rows: expected only without --unit"),
    (["--unit", "rope", "--decoder", "rom"], "--decoder: expected only without --unit"),
    (["--unit", "rope", "--wrapper", "io"], "--wrapper: expected only without --unit"),
    (["--unit", "rope", "--freq", "0"], "--freq 0.0: expected a positive clock in MHz"),
    (["--unit", "rope", "--lanes", "2", "--check-baseline"], "no unit baseline rope_l2_ecp5-85f_s1.json"),
    (["--lanes", "2"], "--lanes: expected only with --unit"),
    (["--no-place"], "--no-place: expected only with --unit"),
])
def test_bad_unit_arguments_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["synth", "--target", "ecp5-85f", "--out", "o"] + argv)
    except SystemExit as exc:                   # argparse's usage errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_unit_synthesis_without_place_and_route(tmp_path, capsys):
    out = tmp_path / "rope"
    assert main(["synth", "--unit", "rope", "--no-place", "--target", "ecp5-85f", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rep = json.loads((out / "report.json").read_text())
    u = rep["unit"]
    assert rep["kind"] == "synthesis only, no place-and-route" and u["fmax_mhz"] is None
    assert rep["meta"]["unit"] == "rope" and rep["meta"]["params"]["primitives"] == "ecp5"
    assert u["dsp"] > 0 and 0 < u["lut"] < rep["resources"]["lut"]
    assert lines[0] == ("synth    ecp5-85f: unit rope (hw/rope.py Rope, head_dim 64) lanes=1 (yosys only)")
    assert lines[2].startswith(f"unit     LUT {u['lut']} + {u['carry']} carry, FF {u['ff']}, "
                               f"BRAM {u['bram']}, DSP {u['dsp']}")
    assert lines[3] == "note     synthesis only, no place-and-route"
    assert lines[-1] == f"wrote    {out}/report.json"
