"""The variable-depth engine (hw/varengine.py) as `tritforge generate` writes it, on Verilator
through cocotb (the packaged stream bench, tritforge.hw.verif.bench_streams, fed by
tritforge.hw.verif.varjob): commands back to back against codec.golden, every result beat
in the cycle sim.varmodel's timeline gives it without stalls, and exact results under
random stalls, back-pressure and a reset in the middle of a transfer."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.hw.verif.varjob import var_stream_job  # noqa: E402
from tritforge.hwconfig import HwConfig  # noqa: E402

from test_varmodel import var_tensor  # noqa: E402

OUT, IN = 11, 80
BUILDS = {
    "d2R4T1": (HwConfig(depth=2, rows=4, vectors=1, max_in_features=128, max_out_features=32,
                        weight_stream="variable", mem_bytes=8), Fraction(7, 2)),
    "d3R3T2": (HwConfig(depth=3, rows=3, vectors=2, max_in_features=128, max_out_features=32,
                        weight_stream="variable", mem_bytes=16), Fraction(12)),
}


@pytest.fixture(scope="module", params=list(BUILDS))
def setup(request):
    cfg, rate = BUILDS[request.param]
    build, _ = harness.build_engine(request, cfg)
    return request.param, cfg, rate, build


def make_job(cfg, rate, seed, n_cmd=3):
    rng = np.random.default_rng(seed)
    t = var_tensor(rng, OUT, IN, cfg.depth)
    blocks = [rng.integers(-128, 128, (cfg.vectors, t.in_padded)).astype(np.int8) for _ in range(n_cmd)]
    return var_stream_job(cfg, t, blocks, rate)


def test_back_to_back_exact_results_and_cycles(setup, tmp_path):
    name, cfg, rate, build = setup
    vj = make_job(cfg, rate, seed=1)
    rep = harness.run_streams(build, vj.job, tmp_path / name, pace=vj.pace)
    assert vj.check(rep) == []
    assert rep["flags"] == {"err": 0, "busy": 0}


def test_the_check_can_fail(setup, tmp_path):
    """The same run held to a timeline one cycle later, and to other accumulators."""
    name, cfg, rate, build = setup
    vj = make_job(cfg, rate, seed=1)
    rep = harness.run_streams(build, vj.job, tmp_path / name, pace=vj.pace)
    vj.cycles = [c + 1 for c in vj.cycles]
    vj.want[0] = (vj.want[0][0], [a + 1 for a in vj.want[0][1]])
    bad = vj.check(rep)
    assert len(bad) == 2 and "result beat 0" in bad[0] and "the models give" in bad[1]


@pytest.mark.parametrize("seed", [2, 3])
def test_exact_results_under_stalls_and_a_reset(setup, tmp_path, seed):
    name, cfg, rate, build = setup
    vj = make_job(cfg, rate, seed=seed)
    reset_at = [int(vj.timeline.issue[0][len(vj.timeline.issue[0]) // 2])] if seed == 3 else []
    rep = harness.run_streams(build, vj.job, tmp_path / f"{name}_{seed}", seed=seed, reset_at=reset_at,
                              stalls={"idle": 0.3, "bp": 0.3, "burst": 3})
    assert vj.check(rep, cycles=False) == []
