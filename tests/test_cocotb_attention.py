"""The attention unit (hw/attention.py) on Verilator through cocotb (the packaged stream
bench, tritforge.hw.verif.bench_streams): back-to-back jobs against the golden reference
under random stalls and back-pressure, a reset in the middle of a transfer, and the exact
cycles of sim/attentioncycles.py without stalls."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.attentionports import attention_ports  # noqa: E402
from tritforge.hw.attention import AttentionUnit  # noqa: E402
from tritforge.ports import by_name  # noqa: E402
from tritforge.sim.attentioncycles import job_cycles  # noqa: E402

from test_hw_attention import make_job, small_config  # noqa: E402

UCFG = small_config(group=3, lanes=4, block=4, head_dim=8)
KEYS = (9, 1, 4, 17)


@pytest.fixture(scope="module")
def build(request):
    return harness.build_component(request, AttentionUnit(UCFG), "tritforge_attention",
                                   meta={"unit": "attention", "config": UCFG.describe()})


@pytest.fixture(scope="module")
def build_ecp5(request):
    return harness.build_component(request, AttentionUnit(UCFG, primitives="ecp5"), "tritforge_attention_ecp5",
                                   meta={"unit": "attention", "config": UCFG.describe(), "primitives": "ecp5"},
                                   ecp5_models=True)


@pytest.fixture(scope="module")
def jobs():
    rng = np.random.default_rng(11)
    made = [make_job(UCFG, n, rng, scale=(1.0 + i, 1.0, 0.5 + i)) for i, n in enumerate(KEYS)]
    ins = {p: sum((j[p] for j, _ in made), []) for p in ("cmd", "q", "kv")}
    return ins, [w for _, w in made]


def outputs(report):
    port = by_name(attention_ports(UCFG))["out"]
    beats = [port.unpack(w) for w in report["outputs"]["out"]]
    return np.array([b["elems"] for b in beats]).reshape(len(KEYS), UCFG.group, UCFG.head_dim)


def job_of(ins):
    return {"inputs": ins, "outputs": {"out": len(KEYS) * UCFG.group * UCFG.beats}, "flags": ["err", "busy"]}


def test_exact_results_and_cycles_without_stalls(build, jobs, tmp_path):
    ins, want = jobs
    rep = harness.run_streams(build, job_of(ins), tmp_path)
    np.testing.assert_array_equal(outputs(rep), np.array(want))
    assert rep["flags"] == {"err": 0, "busy": 0}
    # each job's last output beat, from the cycle its command was accepted
    last = [rep["cycles"]["out"][(i + 1) * UCFG.group * UCFG.beats - 1] for i in range(len(KEYS))]
    for i, n in enumerate(KEYS):
        assert last[i] - rep["cycles"]["cmd"][i] == job_cycles(UCFG, n)


def test_ecp5_primitives_exact(build_ecp5, jobs, tmp_path):
    """The multipliers as MULT18X18D tiles with their own registers (the ECP5 primitive
    set, run as behavioural models): the same results and cycles, under stalls too."""
    ins, want = jobs
    rep = harness.run_streams(build_ecp5, job_of(ins), tmp_path)
    np.testing.assert_array_equal(outputs(rep), np.array(want))
    last = [rep["cycles"]["out"][(i + 1) * UCFG.group * UCFG.beats - 1] for i in range(len(KEYS))]
    assert [last[i] - rep["cycles"]["cmd"][i] for i in range(len(KEYS))] == [job_cycles(UCFG, n) for n in KEYS]
    rep = harness.run_streams(build_ecp5, job_of(ins), tmp_path / "stalls", stalls={"idle": 0.3, "bp": 0.3}, seed=3)
    np.testing.assert_array_equal(outputs(rep), np.array(want))


@pytest.mark.parametrize("seed,stalls", [(1, {"idle": 0.3, "bp": 0.3, "burst": 3}),
                                         (2, {"idle": 0.6, "bp": 0.1})])
def test_stalls_and_back_pressure(build, jobs, tmp_path, seed, stalls):
    ins, want = jobs
    rep = harness.run_streams(build, job_of(ins), tmp_path, stalls=stalls, seed=seed)
    np.testing.assert_array_equal(outputs(rep), np.array(want))


def test_reset_in_the_middle_of_transfers(build, jobs, tmp_path):
    """Resets during the query load, the KV stream and the output: the unit returns to idle
    and the replayed jobs still give the golden results."""
    ins, want = jobs
    rep = harness.run_streams(build, job_of(ins), tmp_path, stalls={"idle": 0.2, "bp": 0.2}, seed=5,
                              reset_at=[7, 60, 140])
    np.testing.assert_array_equal(outputs(rep), np.array(want))
    assert rep["flags"]["err"] == 0


def test_kv_served_at_a_memory_pace(build, jobs, tmp_path):
    """The KV stream at half a beat per cycle after a 20-cycle latency (a memory's pace,
    tritforge.hw.verif.streams.Pace): the same results, and each job's KV beats spaced
    by two cycles on average."""
    ins, want = jobs
    rep = harness.run_streams(build, job_of(ins), tmp_path, pace={"kv": {"rate": 0.5, "latency": 20}})
    np.testing.assert_array_equal(outputs(rep), np.array(want))
    kv = rep["cycles"]["kv"]
    assert kv[0] >= 20
    n = 2 * KEYS[0] * UCFG.beats                          # the first job's KV beats
    assert kv[n - 1] - kv[0] >= 2 * (n - 1) - 2
