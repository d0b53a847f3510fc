"""`tritforge generate`: Verilog + JSON sidecar (every HwConfig parameter, derived values,
port map matching the Verilog), help for every option, clean errors."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tritforge.cli import main
from tritforge.commands import _hwoptions
from tritforge.hwconfig import HwConfig

SMALL = ["--depth", "1", "--rows", "2", "--vectors", "2", "--max-in-features", "64",
         "--max-out-features", "32"]


def test_writes_verilog_and_sidecar(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", *SMALL, "--clock-mhz", "150", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    stages = HwConfig(depth=1).pipeline_stages
    assert "wrote" in printed and f"{stages} pipeline stages" in printed
    v = (out / "tritforge_engine.v").read_text()
    meta = json.loads((out / "tritforge_engine.json").read_text())
    cfg = HwConfig(depth=1, rows=2, vectors=2, max_in_features=64, max_out_features=32, clock_mhz=150.0)
    assert meta["hwconfig"] == cfg.to_dict()
    assert HwConfig.from_json(str(out / "tritforge_engine.json")) == cfg
    for key, value in cfg.derived().items():
        assert meta["derived"][key] == value
    assert meta["derived"]["pipeline_stages"] == cfg.pipeline_stages
    # every port of the sidecar is a port of the module, with that direction and width
    header = v[v.index("module tritforge_engine"):v.index(");")]
    names = set(re.findall(r"\b(\w+)\s*[,)]?\s*$", header.replace(",", "\n"), re.M))
    for p in meta["ports"]:
        decl = re.search(rf"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?{p['name']};",
                         v, re.M)
        assert decl, p["name"]
        assert decl.group(1) == ("input" if p["dir"] == "in" else "output")
        assert int(decl.group(2) or 0) + 1 == p["width"], p["name"]
        assert p["name"] in names
    res = next(p for p in meta["ports"] if p["name"] == "res__payload")
    acc = next(f for f in res["fields"] if f["name"] == "acc")
    assert acc["count"] == 2 and acc["stride"] == cfg.widths.acc and acc["elem_signed"]


def test_variable_depth_engine_sidecar(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", *SMALL, "--weight-stream", "variable", "--mem-bytes", "12",
                 "--out", str(out)]) == 0
    assert "stream   variable-depth columns of up to 8 B on mem (12 B a beat), word FIFO 32 beats, " \
           "gearbox 23 cycles" in capsys.readouterr().out
    meta = json.loads((out / "tritforge_engine.json").read_text())
    cfg = HwConfig.from_json(str(out / "tritforge_engine.json"))
    assert cfg.variable and cfg.mem_bytes == 12
    d = meta["derived"]
    assert d["column_span"] == cfg.column_span == 2             # 8 bytes from byte 11 of 12
    # columns of at least 2 bytes: 5 more can start in a beat, a chain stage each
    assert cfg.chain_moves == cfg.chain_stages == 5
    assert d["gearbox_cycles"] == cfg.gearbox_cycles == 12 + 5 + 6
    assert d["window_words"] == cfg.window_words == 32          # 2 + 17 beats, rounded up
    assert d["column_bytes_max"] == -(-(4 * 2 + 16 * 2 * 1) // 5) and d["column_header_bytes"] == 2
    ports = {p["name"]: p for p in meta["ports"]}
    assert "w__payload" not in ports and ports["mem__valid"]["dir"] == "in"
    assert [f["name"] for f in ports["mem__payload"]["fields"]] == ["data", "count"]
    assert ports["mem__payload"]["width"] == 8 * 12 + 4
    v = (out / "tritforge_engine.v").read_text()
    assert re.search(r"input\s+(?:wire\s+)?\[99:0\]\s+mem__payload;", v)


def test_config_file_and_overrides(tmp_path):
    src = tmp_path / "hw.json"
    src.write_text(json.dumps({"depth": 3, "rows": 1, "max_in_features": 32, "max_out_features": 4}))
    out = tmp_path / "o"
    assert main(["generate", "--config", str(src), "--rows", "2", "--top", "eng", "--out", str(out)]) == 0
    meta = json.loads((out / "eng.json").read_text())
    assert meta["hwconfig"]["depth"] == 3 and meta["hwconfig"]["rows"] == 2 and meta["top"] == "eng"
    assert "module eng(" in (out / "eng.v").read_text()


def test_help_documents_every_hwconfig_field(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(HwConfig):
        assert "--" + f.name.replace("_", "-") in text
        assert f.name in _hwoptions.FIELD_HELP


@pytest.mark.parametrize("args,message", [
    (["--depth", "5"], "depth"),
    (["--rows", "0"], "rows"),
    (["--max-in-features", "100"], "multiple of 16"),
    (["--top", "1bad"], "identifier"),
    (["--weight-stream", "variable", "--organisation", "array", "--rows", "8"], "lockstep"),
    (["--mem-bytes", "0"], "mem_bytes"),
    (["--weight-stream", "variable", "--rows", "8", "--mem-bytes", "6"], "mem_bytes=6"),
])
def test_bad_input_one_line_error_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["generate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".generate-") for p in tmp_path.iterdir())


def test_missing_config_file(tmp_path, capsys):
    assert main(["generate", "--config", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
