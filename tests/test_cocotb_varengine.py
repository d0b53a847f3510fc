"""The variable-depth engine (hw/varengine.py) as `tritforge generate` writes it, on Verilator
through cocotb (the packaged stream bench, tritforge.hw.verif.bench_streams): commands
back to back against codec.golden, every result beat in the cycle sim.varmodel's timeline
gives it without stalls, and exact results under random stalls, back-pressure and a reset
in the middle of a transfer."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.codec import golden, layout  # noqa: E402
from tritforge.hwconfig import HwConfig  # noqa: E402
from tritforge.ports import by_name, var_engine_ports  # noqa: E402
from tritforge.sim import varmodel  # noqa: E402

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


def make_stream(cfg, rate, seed, n_cmd=3):
    """Commands of one matrix (the first writes its codebook, the others share it), the
    model's timeline, and the bench's input words: the codebook, the commands from the
    cycle the model's host offers the first, the activations, and the memory beats from
    the cycle the first command is taken, each carrying the bytes the model's memory
    delivers in that cycle (``varmodel.complete_cycles``' W)."""
    rng = np.random.default_rng(seed)
    ports = by_name(var_engine_ports(cfg))
    tensors = [var_tensor(rng, OUT, IN, cfg.depth)] * n_cmd      # one matrix, its codebook once
    cb = tensors[0].codebook
    xs = [rng.integers(-128, 128, (cfg.vectors, t.in_padded)).astype(np.int8) for t in tensors]
    cols = [layout.var_stream_columns(t.q, t.k, t.group_depth, cfg.depth, cfg.rows) for t in tensors]
    tl = varmodel.timeline(cfg, [varmodel.VarCommand(OUT, IN, np.diff(s), codebook=j == 0)
                                 for j, (_, s) in enumerate(cols)], rate)
    data = np.concatenate([d for d, _ in cols])
    ng = -(-IN // 16)
    cmd = ports["cmd"].pack({"last_group": ng - 1, "last_tile": cfg.tiles(OUT) - 1, "load_act": 1,
                             "cb_bank": 0})
    cbw = [ports["cb"].pack({"index": e, "mantissa": int(m), "shift": int(s)})
           for e, (m, s) in enumerate(zip(cb.mantissa, cb.left_shift))]
    act = [layout.pack_activation_group(x[v, 16 * g:16 * g + 16])
           for x in xs for v in range(cfg.vectors) for g in range(ng)]
    mem, sent, m = [], 0, 0
    while sent < data.size:
        n = min(data.size, (m + 1) * rate.numerator // rate.denominator) - sent
        mem.append(ports["mem"].pack({"data": int.from_bytes(data[sent:sent + n].tobytes(), "little"),
                                      "count": n}))
        sent, m = sent + n, m + 1
    job = {"inputs": {"cb": cbw, "cmd": [cmd] * n_cmd, "act": act, "mem": mem},
           "outputs": {"res": n_cmd * cfg.tiles(OUT) * cfg.vectors}, "flags": ["err", "busy"]}
    # a paced source's first beat is offered in cycle latency + 1 (streams.Pace)
    pace = {"cmd": {"rate": 1, "latency": tl.accept[0] - 1}, "mem": {"rate": 1, "latency": tl.taken[0] - 1}}
    want = []
    for t, x in zip(tensors, xs):
        ref = np.pad(golden.accumulators(t, x), ((0, 0), (0, cfg.tiles(OUT) * cfg.rows - OUT)))
        want += [(v, ref[v, r * cfg.rows:(r + 1) * cfg.rows].tolist()) for r in range(cfg.tiles(OUT))
                 for v in range(cfg.vectors)]
    return job, pace, tl, want


def result_cycles(cfg, tl) -> list:
    """Per result beat, the cycle it is valid: a tile's last column issued in c gives vector
    v's beat in c + v + pipeline_stages (hw/ENGINE.md)."""
    ng = -(-IN // 16)
    return [int(c[ng * (tile + 1) - 1]) + v + cfg.pipeline_stages
            for c in tl.issue for tile in range(cfg.tiles(OUT)) for v in range(cfg.vectors)]


def results(cfg, report) -> list:
    port = by_name(var_engine_ports(cfg))["res"]
    return [(b["vector"], list(b["acc"])) for b in map(port.unpack, report["outputs"]["res"])]


def test_back_to_back_exact_results_and_cycles(setup, tmp_path):
    name, cfg, rate, build = setup
    job, pace, tl, want = make_stream(cfg, rate, seed=1)
    rep = harness.run_streams(build, job, tmp_path / name, pace=pace)
    assert rep["cycles"]["cmd"][0] == tl.accept[0]
    assert results(cfg, rep) == want
    assert rep["cycles"]["res"] == result_cycles(cfg, tl)
    assert rep["flags"] == {"err": 0, "busy": 0}


@pytest.mark.parametrize("seed", [2, 3])
def test_exact_results_under_stalls_and_a_reset(setup, tmp_path, seed):
    name, cfg, rate, build = setup
    job, _, tl, want = make_stream(cfg, rate, seed=seed)
    reset_at = [int(tl.issue[0][len(tl.issue[0]) // 2])] if seed == 3 else []
    rep = harness.run_streams(build, job, tmp_path / f"{name}_{seed}", seed=seed, reset_at=reset_at,
                              stalls={"idle": 0.3, "bp": 0.3, "burst": 3})
    assert results(cfg, rep) == want
    assert rep["flags"]["err"] == 0
