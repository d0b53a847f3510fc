"""GEMV engine (hw/engine.py) on Verilator through cocotb, against codec.golden and the cycle models.

Builds: one Verilator model per (d, R, T, buffer size) in ``BUILDS``, with the shipped
decoder (``tritforge generate``'s default, ``nibble``); shapes and stall patterns do not
change the RTL, so many small matrices share a build. Per build, one shared vector set
(``codec.vectors``) is written with the golden accumulators and the vectorized model's
cycle counts, then played by the packaged bench ``tritforge.hw.verif.bench_engine`` with
the stepping model compared every cycle. ``STYLE_BUILDS``: one small build with each
other decoder style (hw/decoder.py ``STYLES``), the same bench on a few cases.

Default run: ``RANDOM_DEFAULT`` seeded random configurations per build (shape, vectors,
stall pattern) plus the directed cases, the reset and invalid-byte tests, and every
linear-layer shape of SmolLM2-135M (real rows of layer 0, whole matrices, exact cycles).
``pytest -m slow tests/test_cocotb_engine.py`` runs the long sweep (``RANDOM_SLOW`` per
build, other seeds). ``TRITFORGE_WAVES=1`` writes dump.fst for every run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cocotb"))
import harness  # noqa: E402

from tritforge.codec import golden, vectors  # noqa: E402
from tritforge.codec.quantize import quantize_matrix  # noqa: E402
from tritforge.hw.decoder import STYLES  # noqa: E402
from tritforge.hwconfig import HwConfig  # noqa: E402
from tritforge.sim import fastmodel  # noqa: E402

BUILDS = {
    "d2R4T1": HwConfig(depth=2, rows=4, vectors=1, max_in_features=1536, max_out_features=1536),
    "d1R3T2": HwConfig(depth=1, rows=3, vectors=2, max_in_features=256, max_out_features=64),
    "d3R1T1": HwConfig(depth=3, rows=1, vectors=1, max_in_features=256, max_out_features=64),
    "d4R5T3": HwConfig(depth=4, rows=5, vectors=3, max_in_features=256, max_out_features=64),
    "d2R8T2": HwConfig(depth=2, rows=8, vectors=2, max_in_features=512, max_out_features=128),
}
RANDOM_DEFAULT = 44     # x 5 builds = 220 seeded random configurations in the default run
RANDOM_SLOW = 200       # per build, in the slow sweep
STALLS = [{}, {"idle": 0.3}, {"bp": 0.4, "burst": 3}, {"idle": 0.5, "bp": 0.5, "burst": 4},
          {"idle": 0.1, "bp": 0.1}]


#: one small engine per decoder style other than the shipped one (the BUILDS' style)
STYLE_BUILDS = {
    "arith": HwConfig(depth=3, rows=2, vectors=1, max_in_features=128, max_out_features=32),
    "rom": HwConfig(depth=1, rows=2, vectors=2, max_in_features=128, max_out_features=32),
}
SHIPPED_STYLE = "nibble"


def _build(request, name: str):
    """(build, sidecar path) of the generated engine Verilog for one config."""
    return harness.build_engine(request, BUILDS[name])


def _case(name, cfg, t, xq, stalls):
    run = fastmodel.run_matrix(cfg, t, xq)
    return vectors.make_case(name, t, xq, cfg.to_dict(), run.cycles, stalls)


def random_cases(cfg: HwConfig, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        o = int(rng.integers(1, min(cfg.max_out_features, 4 * cfg.rows + 3) + 1))
        n_in = int(rng.integers(1, min(cfg.max_in_features, 160) + 1))
        n = int(rng.integers(1, 2 * cfg.vectors + 1))
        t, xq = vectors.random_case(rng, cfg.depth, o, n_in, n,
                                    mode=("tritllm-v2", "tritforge")[int(rng.integers(0, 2))])
        stalls = dict(STALLS[int(rng.integers(0, len(STALLS)))])
        out.append(_case(f"rand{i:03d}_{o}x{n_in}_n{n}", cfg, t, xq, stalls))
    return out


def directed(cfg: HwConfig, seed: int) -> list:
    out = []
    for shape in ((cfg.rows + 1, 40), (2 * cfg.rows, 16)):
        for name, t, xq in vectors.directed_cases(cfg.depth, shape[0], shape[1], cfg.vectors, seed):
            out.append(_case(f"{name}_{shape[0]}x{shape[1]}", cfg, t, xq, {}))
    return out


@pytest.fixture(scope="module")
def vector_sets(tmp_path_factory):
    """One shared vector set per build: directed + seeded random (default subset)."""
    root = tmp_path_factory.mktemp("vectors")
    sets = {}
    for i, (name, cfg) in enumerate(BUILDS.items()):
        cases = directed(cfg, seed=i) + random_cases(cfg, RANDOM_DEFAULT, seed=100 + i)
        sets[name] = vectors.write_set(str(root / name), cases, meta={"build": name})
    return sets


@pytest.mark.parametrize("name", list(BUILDS))
def test_engine_vectors(request, tmp_path, vector_sets, name):
    """Directed + random configurations (stalls, stepping model every cycle), reset, invalid bytes."""
    b, side = _build(request, name)
    n = len(vectors.read_set(vector_sets[name]))
    assert n >= RANDOM_DEFAULT
    assert b.meta["decoder_style"] == SHIPPED_STYLE
    assert harness.run_engine(b, side, vector_sets[name], tmp_path, seed=7 + len(name)).tests == 4


def test_every_decoder_style_is_covered():
    """The BUILDS run the shipped decoder, STYLE_BUILDS every other one."""
    import inspect

    from tritforge.commands import generate
    default = inspect.signature(harness.build_engine).parameters["decoder_style"].default
    assert default == SHIPPED_STYLE
    import argparse
    p = argparse.ArgumentParser()
    generate.add_arguments(p)
    assert p.get_default("decoder") == SHIPPED_STYLE
    assert sorted([SHIPPED_STYLE, *STYLE_BUILDS]) == sorted(STYLES)


@pytest.mark.parametrize("style", list(STYLE_BUILDS))
def test_engine_decoder_style(request, tmp_path, style):
    """The engine with another decoder style: directed + a few random cases (stalls, the
    stepping model every cycle), reset mid-transfer and the invalid byte."""
    cfg = STYLE_BUILDS[style]
    b, side = harness.build_engine(request, cfg, decoder_style=style)
    assert b.meta["decoder_style"] == style
    cases = directed(cfg, seed=11) + random_cases(cfg, 6, seed=900 + len(style))
    vs = vectors.write_set(str(tmp_path / "vectors"), cases)
    assert harness.run_engine(b, side, vs, tmp_path / "run", seed=3).tests == 4


#: engines built with the ECP5 primitives (hw/primitives.py) on their behavioural models:
#: a 36-bit pseudo-dual-port buffer (96 words) and an 18-bit one (1,024 words, 8 blocks)
ECP5_BUILDS = {
    "d2R4T1": BUILDS["d2R4T1"],
    "d1R2T2-1024w": HwConfig(depth=1, rows=2, vectors=2, max_in_features=8192, max_out_features=64),
}


@pytest.mark.parametrize("name", list(ECP5_BUILDS))
def test_engine_ecp5_primitives(request, tmp_path, name):
    """The engine with MULT18X18D/DP16KD instances (their registers enabled) behaves like the
    generic one: golden results and the stepping model every cycle, under stalls."""
    cfg = ECP5_BUILDS[name]
    b, side = harness.build_engine(request, cfg, primitives="ecp5")
    cases = directed(cfg, seed=3) + random_cases(cfg, 12, seed=700 + len(name))
    if cfg.act_buffer_words > 512:           # reach the upper words of the buffer
        t, xq = vectors.random_case(np.random.default_rng(9), cfg.depth, 3, cfg.max_in_features, 2)
        cases.append(_case("full_width", cfg, t, xq, {"idle": 0.2, "bp": 0.2}))
    vs = vectors.write_set(str(tmp_path / "ecp5"), cases)
    harness.run_engine(b, side, vs, tmp_path / "run", testcase="vector_cases")


@pytest.mark.model
def test_engine_smollm2_shapes(request, tmp_path):
    """Every SmolLM2-135M linear shape, real rows of layer 0, whole matrices: bit-exact, exact cycles.

    q 576x576, k/v 192x576, gate/up 1536x576, down 576x1536 at d = 2, R = 4; no stalls (the
    cycle count must equal the vectorized model's); then 8 real rows of each under random
    stalls with the stepping model compared every cycle.
    """
    cfg = BUILDS["d2R4T1"]
    w = harness.smollm2_layer(0, roles=("q_proj", "k_proj", "gate_proj", "down_proj"))
    rng = np.random.default_rng(2026)
    full, sample = [], []
    for role, m in w.items():
        t = quantize_matrix(m, cfg.depth)
        x, _ = golden.quantize_activations(rng.standard_normal((1, m.shape[1])), t.in_padded)
        full.append(_case(f"{role}_{m.shape[0]}x{m.shape[1]}", cfg, t, x, {}))
        rows = np.sort(rng.choice(m.shape[0], 8, replace=False))
        ts = quantize_matrix(m[rows], cfg.depth)
        sample.append(_case(f"{role}_rows8x{m.shape[1]}", cfg, ts, x, {"idle": 0.2, "bp": 0.3, "burst": 2}))
    assert sorted(c.tensor.shape for c in full) == [(192, 576), (576, 576), (576, 1536), (1536, 576)]
    b, side = _build(request, "d2R4T1")
    vs = vectors.write_set(str(tmp_path / "smollm2"), full + sample)
    harness.run_engine(b, side, vs, tmp_path / "full", model=False,
                       cases=[c.name for c in full], testcase="vector_cases")
    harness.run_engine(b, side, vs, tmp_path / "sample", model=True,
                       cases=[c.name for c in sample], testcase="vector_cases")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDS))
def test_engine_sweep(request, tmp_path, name):
    """The long sweep: RANDOM_SLOW more seeded random configurations per build."""
    cfg = BUILDS[name]
    cases = random_cases(cfg, RANDOM_SLOW, seed=5000 + list(BUILDS).index(name))
    vs = vectors.write_set(str(tmp_path / "sweep"), cases)
    b, side = _build(request, name)
    harness.run_engine(b, side, vs, tmp_path / "run", testcase="vector_cases")
