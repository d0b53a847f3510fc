"""tritforge.hw.verif without a simulator: stall generators, payload packing against the
RTL's own layouts, scoreboard messages, the sidecar's derived figures (against their
owners and the stepping model), packaging.

The cocotb side of the library runs on Verilator in tests/test_cocotb_engine.py (the
packaged bench) and tests/test_verif_readme.py (the README's example bench).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tritforge.hw.verif import Payload, Scoreboard, ScoreboardError, Stall, sidecar_payloads, stalls_for
from tritforge.hw.verif.scoreboard import ResultBeat
from tritforge.hwconfig import FIFO_DEPTH, HwConfig

ROOT = Path(__file__).resolve().parents[1]


# --- stalls ----------------------------------------------------------------------------------

def _runs(seq: list[bool]) -> list[int]:
    out, n = [], 0
    for s in seq + [False]:
        if s:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_stall_is_seeded_and_bounded():
    g1, g2, g3 = Stall(7, 0.3, 4), Stall(7, 0.3, 4), Stall(8, 0.3, 4)
    s1 = [g1.next() for _ in range(4000)]
    assert s1 == [g2.next() for _ in range(4000)]
    assert s1 != [g3.next() for _ in range(4000)]
    # a stall starts in a fraction p of the free cycles and lasts 1..burst cycles (mean 2.5):
    # p * 2.5 / (p * 2.5 + 1 - p) = 0.517 of the cycles are stalled
    assert 0.47 < sum(s1) / len(s1) < 0.57 and max(_runs(s1)) >= 4
    g = Stall(3, 0.3)
    one = [g.next() for _ in range(4000)]
    assert 0.27 < sum(one) / len(one) < 0.33
    g = Stall(1, 0.0, 5)
    assert not any(g.next() for _ in range(1000))
    d = g1.describe()
    assert d == {"seed": 7, "p": 0.3, "burst": 4}
    again, g4 = Stall.from_dict(d), Stall(7, 0.3, 4)
    assert [again.next() for _ in range(100)] == [g4.next() for _ in range(100)]
    assert all(Stall(0, 1.0).next() for _ in range(20))           # p = 1: never moves
    for bad in ({"p": 1.5}, {"p": -0.1}, {"burst": 0}, {"burst": 1.5}):
        with pytest.raises(ValueError):
            Stall(**{"seed": 0, **bad})


def test_stalls_for_a_bench():
    g = stalls_for({"idle": 0.2, "bp": 0.5, "burst": 3}, 11, ("cmd", "w"), ("res",))
    assert set(g) == {"cmd", "w", "res"}
    assert g["cmd"].p == 0.2 and g["res"].p == 0.5 and g["res"].burst == 3
    assert g["cmd"].seed != g["w"].seed                 # each port its own sequence
    again = stalls_for({"idle": 0.2, "bp": 0.5, "burst": 3}, 11, ("w",), ())
    assert again["w"].seed == g["w"].seed               # seeded by name, not by order
    assert stalls_for({}, 0, ("cmd",), ("res",)) == {"cmd": None, "res": None}
    with pytest.raises(ValueError, match="unknown keys"):
        stalls_for({"idel": 0.1}, 0, ("cmd",))
    with pytest.raises(ValueError):
        stalls_for({"idle": 0.1, "burst": 0}, 0, ("cmd",))


# --- payloads ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [HwConfig(depth=2, rows=4, vectors=1),
                                 HwConfig(depth=3, rows=6, vectors=3, max_in_features=256,
                                          max_out_features=64)], ids=["d2R4T1", "d3R6T3"])
def test_payloads_equal_the_rtl_layouts(cfg):
    """Sidecar packing equals the engine's own Amaranth payload layouts, both ways."""
    from amaranth.lib import data

    from tritforge.hw.engine import GemvEngine
    from tritforge.hw.verilog import sidecar

    side = json.loads(json.dumps(sidecar(cfg)))          # as read back from the file
    pay = sidecar_payloads(side)
    eng = GemvEngine(cfg)
    rng = np.random.default_rng(cfg.rows)
    lay = {n: getattr(eng, n).payload.shape() for n in ("cmd", "cb", "res")}
    negative = 0
    for _ in range(20):
        cmd = {"last_group": int(rng.integers(cfg.max_groups)), "last_tile": int(rng.integers(cfg.tiles_max)),
               "load_act": int(rng.integers(2))}
        assert pay["cmd"].pack(cmd) == lay["cmd"].const(cmd).as_value().value
        cb = {"index": int(rng.integers(32)), "mantissa": int(rng.integers(2 ** cfg.mant_bits)),
              "shift": int(rng.integers(16))}
        assert pay["cb"].pack(cb) == lay["cb"].const(cb).as_value().value
        word = int.from_bytes(rng.bytes(-(-lay["res"].size // 8)), "little") & ((1 << lay["res"].size) - 1)
        got, ref = pay["res"].unpack(word), data.Const(lay["res"], word)
        assert got["acc"] == tuple(int(ref.acc[r]) for r in range(cfg.rows))
        negative += min(got["acc"]) < 0
        assert (got["vector"], got["last"]) == (int(ref.vector), int(ref.last))
        assert pay["res"].pack(got) == word
    assert negative > 0                                     # signed accumulators were read
    with pytest.raises(ValueError, match="out of range"):
        pay["cb"].pack({"mantissa": 2 ** cfg.mant_bits})
    with pytest.raises(KeyError):
        pay["cmd"].pack({"groups": 1})


def test_payload_signed_arrays():
    port = {"name": "x__payload", "width": 10, "fields": [
        {"name": "a", "offset": 0, "width": 8, "signed": False, "count": 2, "stride": 4, "elem_signed": True},
        {"name": "b", "offset": 8, "width": 2, "signed": True}]}
    p = Payload(port)
    w = p.pack({"a": [-8, 7], "b": -1})
    assert w == 0b11_0111_1000 and p.unpack(w) == {"a": (-8, 7), "b": -1}
    for bad in ({"a": [8, 0]}, {"a": [0]}, {"b": 2}):
        with pytest.raises(ValueError):
            p.pack(bad)


# --- scoreboard --------------------------------------------------------------------------------

def test_scoreboard_names_the_wrong_beat_and_row():
    cfg = HwConfig(depth=2, rows=4, vectors=2, max_in_features=64, max_out_features=16)
    sb = Scoreboard(cfg)
    acc = np.arange(1, 13).reshape(2, 6) * 1000           # 2 vectors x 6 rows: 2 tiles
    want = sb.expect(acc, tiles=2)
    assert [b.fields() for b in want] == [((1000, 2000, 3000, 4000), 0, False),
                                          ((7000, 8000, 9000, 10000), 1, False),
                                          ((5000, 6000, 0, 0), 0, False),
                                          ((11000, 12000, 0, 0), 1, True)]
    sb.check("ok", list(want), want)
    assert (sb.commands, sb.beats) == (1, 4)
    bad = list(want)
    bad[3] = ResultBeat((11000, 12001, 0, 5), 1, True, cycle=77)
    with pytest.raises(ScoreboardError) as e:
        sb.check("case x", bad, want)
    msg = str(e.value)
    assert "result beat 3 (tile 1, vector 1) (accepted in cycle 77)" in msg
    assert "row 5 (lane 1): expected 12000, got 12001" in msg and "row 7 (lane 3): expected 0, got 5" in msg
    bad[3] = ResultBeat(want[3].acc, 1, False)
    with pytest.raises(ScoreboardError, match="last: expected 1, got 0"):
        sb.check("case x", bad, want)
    with pytest.raises(ScoreboardError, match="3 result beats, expected 4"):
        sb.check("case x", list(want[:3]), want)
    with pytest.raises(ScoreboardError, match=r"12 cycles on the RTL, the cycle model says 11 \(no stalls; \+1\)"):
        sb.check_cycles("case x", 12, 11)


# --- the sidecar's derived figures -------------------------------------------------------------

def test_sidecar_derived_figures(tmp_path):
    """Every figure from its owner, and the stepping model's timing equals them."""
    from tritforge.codec import golden, layout
    from tritforge.hw import verilog
    from tritforge.sim import fastmodel
    from tritforge.sim.stepmodel import Inputs, JobDriver, StepModel, make_job, run

    cfg = HwConfig(depth=2, rows=4, vectors=2, max_in_features=128, max_out_features=32)
    paths = verilog.write(cfg, str(tmp_path))
    d = json.loads(Path(paths["sidecar"]).read_text())["derived"]
    assert d["err_latency"] == cfg.err_latency and d["fifo_depth"] == FIFO_DEPTH
    assert (d["cmd_accept_cycles"], d["load_open_cycles"], d["end_cycles"]) == (
        fastmodel.CMD_ACCEPT_CYCLES, fastmodel.LOAD_OPEN_CYCLES, fastmodel.END_CYCLES)
    assert d["command_overhead_cycles"] == 3                   # hw/ENGINE.md "Sequence"
    assert (d["act_min"], d["act_max"]) == (-128, 127) and golden.ACT_BITS == 8
    assert d["shift_limit"] == cfg.shift_limit and d["shift_bits"] == cfg.shift_bits
    assert (d["codebook_entries"], d["byte_limit"]) == (layout.CODEBOOK_SIZE, layout.BYTE_LIMIT)
    assert d["pipeline_stages"] == cfg.pipeline_stages and d["act_stride"] == cfg.act_stride

    # a command's cost from the sidecar alone: accept .. busy low on an idle engine
    rng = np.random.default_rng(0)
    out, in_pad, T = 6, 48, cfg.vectors
    q = rng.integers(-4, 5, size=(out, in_pad)).astype(np.int8)
    k = rng.integers(0, 27, size=(out, 3)).astype(np.uint8)
    xq = rng.integers(-127, 128, size=(T, in_pad)).astype(np.int8)
    job, _ = make_job(cfg, q, k, xq, np.full(27, 7), np.zeros(27, int))
    bad = make_job(cfg, q, k, xq, np.full(27, 7), np.zeros(27, int))[0]
    bad.beats[0] |= 0xFF                                        # byte 0 = 255 >= byte_limit
    trace = run(StepModel(cfg), JobDriver(cfg, [job, bad], overlap=False))
    accepts = [n for n, (i, o) in enumerate(trace) if i.cmd_valid and o.cmd_ready]
    ng, tiles = in_pad // 16, -(-out // cfg.rows)
    cost = (d["cmd_accept_cycles"] + T * ng + d["load_open_cycles"] + tiles * ng * T
            + d["pipeline_stages"] + d["end_cycles"])
    again = next(n for n in range(accepts[0] + 1, len(trace)) if not trace[n][1].busy)
    assert again - accepts[0] == cost == fastmodel.command_cycles(cfg, out, in_pad)
    taken = [n for n, (i, o) in enumerate(trace) if i.w_valid and o.w_ready and n > accepts[1]][0]
    err = [o.err for _, o in trace]
    assert not err[taken + d["err_latency"] - 1] and err[taken + d["err_latency"]]
    # res.ready low: the result FIFO holds fifo_depth beats, then the engine holds
    m = StepModel(cfg)
    drv = JobDriver(cfg, [make_job(cfg, np.ones((32, 16), np.int8),
                                   np.zeros((32, 1), np.uint8), xq[:, :16],
                                   np.ones(27, int), np.zeros(27, int))[0]], p_ready=0.0)
    for _ in range(200):
        inp = drv.inputs()
        drv.observe(inp, m.step(inp))
    assert m.count == d["fifo_depth"] and not m.outputs(Inputs()).w_ready


# --- packaging -----------------------------------------------------------------------------------

def test_every_package_folder_is_listed():
    """Every folder with an __init__.py under a mapped package is in pyproject's packages."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    assert "tritforge.hw.verif" in listed and tool["package-dir"]["tritforge.hw.verif"] == "hw/verif"
    for pkg, folder in tool["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((pkg,) + rel) in listed, f"{init.parent} is not a listed package"


def test_verif_imports_neither_amaranth_nor_the_rtl():
    code = ("import sys, tritforge.hw.verif; "
            "bad = [m for m in sys.modules if m.startswith('amaranth') or m in "
            "('tritforge.hw.engine', 'tritforge.hw.verilog', 'tritforge.hw.decoder')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
