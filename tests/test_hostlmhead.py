"""The host-side lm_head ("host-fp16") on a board whose host shares the memory: its time is
max(bytes at the host's read rate, MACs at the host's MAC rate) from the board file's
[host], after the layers (the [host] table's bad figures: tests/test_boards.py)."""
import dataclasses
import importlib.util
import io
from contextlib import redirect_stdout
from importlib import resources
from pathlib import Path

import pytest

from tritforge.sim.boards import HostCpu, get_board, load_board
from tritforge.sim.energy import EnergyTable
from tritforge.sim.estimate import load_shape, project

from test_boards import _kv260_text

SHAPE = "bitnet-b1.58-0.7b"


def _table(board):
    return EnergyTable.load(str(resources.files("tritforge.sim").joinpath("data", "energy", board.energy_table)))


def _run(board, **kw):
    return project(SHAPE, 2, board, _table(board), context=64, weight_format="ternary-2", lm_head="host-fp16",
                   **kw)


def _vh():
    s = load_shape(SHAPE)
    return s["vocab_size"], s["hidden_size"]


def test_kv260_describes_its_host_with_sources():
    b = load_board("kv260")
    assert b.host == HostCpu(cores=4, clock_mhz=1500.0, macs_per_cycle=2.0, read_gbs=None)
    for k in ("host.cores", "host.clock_mhz", "host.macs_per_cycle"):
        assert b.sources[k].strip()
    assert "host.read_gbs" not in b.sources
    assert b.to_dict()["host"]["cores"] == 4


def test_host_time_is_the_larger_of_read_and_compute():
    V, H = _vh()
    base = get_board("kv260")
    r = _run(base)
    host = r["lm_head"]["host"]
    wbytes = 2 * V * H
    assert host["macs"] == V * H
    assert host["compute_s"] == pytest.approx(V * H / (4 * 1500e6 * 2))
    assert host["read_s"] == pytest.approx(base.memory_system().transfer_s(wbytes))
    st = r["final_stages"][-1]
    assert st["time_s"] == pytest.approx(max(host["compute_s"], host["read_s"]))
    # a slow host binds on compute, and the token gets exactly that much longer (no overlap)
    slow = dataclasses.replace(base, host=HostCpu(cores=1, clock_mhz=100.0, macs_per_cycle=1.0))
    rs = _run(slow)
    hs = rs["lm_head"]["host"]
    assert hs["bound"] == "compute" and hs["compute_s"] == pytest.approx(V * H / 100e6)
    assert rs["per_token"]["time_s"] - r["per_token"]["time_s"] == pytest.approx(hs["compute_s"] - st["time_s"])
    assert rs["per_token"]["units"]["lm_head"]["time_s"] == pytest.approx(hs["compute_s"])


def test_host_read_rate_is_used_but_never_beats_the_memory():
    V, H = _vh()
    base = get_board("kv260")
    slow_read = dataclasses.replace(base, host=dataclasses.replace(base.host, read_gbs=2.0))
    h = _run(slow_read)["lm_head"]["host"]
    assert h["read_s"] == pytest.approx(2 * V * H / 2e9) and "read_gbs" in h["read_rate"]
    fast_read = dataclasses.replace(base, host=dataclasses.replace(base.host, read_gbs=1e4))
    h = _run(fast_read)["lm_head"]["host"]
    assert h["read_s"] == pytest.approx(base.memory_system().transfer_s(2 * V * H))
    assert "sustained" in h["read_rate"]


def test_without_a_host_table_only_the_bytes_are_charged():
    b = dataclasses.replace(get_board("kv260"), host=None)
    h = _run(b)["lm_head"]["host"]
    assert h["compute_s"] == 0.0 and h["macs_per_s"] is None


def test_a_sourced_host_read_rate_loads(tmp_path):
    p = tmp_path / "board.toml"
    p.write_text(_kv260_text() + 'read_gbs = 3.0\nread_gbs_source = "a measurement"\n')
    b = load_board(str(p))
    assert b.host.read_gbs == 3.0 and b.sources["host.read_gbs"] == "a measurement"


def test_bench_validate_prints_the_host_lm_head():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_validate.py"
    spec = importlib.util.spec_from_file_location("bench_validate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = io.StringIO()
    with redirect_stdout(out):
        assert mod.main() == 0
    text = out.getvalue()
    tellme = next(line for line in text.splitlines() if line.startswith("TeLLMe v2 (KV260)  "))
    assert "lm_head on the host: read" in tellme and "GMAC/s, after the layers" in tellme
    li = next(line for line in text.splitlines() if line.startswith("Li et al. (KV260, bare metal)  "))
    assert li.rstrip().endswith("within target")
