"""RmsNorm (hw/rmsnorm.py) in Amaranth's simulator against codec.intnorm.rmsnorm_int8:
random residuals and extremes (zero vector with and without eps, the largest magnitudes
of either sign, one spike among small values, values below the pre-shift), vectors back
to back under stalls, gamma loaded through the ``g`` port and each vector's gamma_frac
and eps_q through the ``k`` port (the same or different per vector, the extremes of the
port's fields), one and several lanes; cycles against sim.vectorcycles; parameter checks;
Verilog; the SmolLM2-sized case (n = 576)."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.intnorm import IntNormWeights, rmsnorm_int8
from tritforge.hw.rmsnorm import RmsNorm
from tritforge.sim.vectorcycles import rmsnorm_cycles
from tritforge.vectorports import GAMMA_FRAC_BITS, eps_bits, rmsnorm_ports

from vectorbench import convert, from_beats, run_ports, to_beats


def weights(vc, n, seed, eps=1e-5):
    rng = np.random.default_rng(seed)
    return IntNormWeights.from_float(rng.normal(1.0, 0.5, size=n), eps, vc.resid_frac_bits, vc.gamma_bits)


def residuals(vc, n, seed):
    rng = np.random.default_rng(seed)
    top = (1 << (vc.resid_bits - 1)) - 1
    spike = rng.integers(-40, 40, size=n)
    spike[n // 3] = -top
    return [rng.integers(-1 << 22, 1 << 22, size=n), np.zeros(n, dtype=np.int64), np.full(n, top),
            np.full(n, -top), spike, rng.integers(-3, 4, size=n), rng.integers(-top, top + 1, size=n)]


def run(vc, w, H, *, seed=0, p_valid=1.0, p_ready=1.0, lanes=1, ks=None):
    """Vectors H through a fresh RmsNorm: gamma words loaded through ``g`` first, then h
    and one ``k`` beat per vector (``ks``: (gamma_frac, eps_q) per vector, else w's)."""
    n = w.n
    dut = RmsNorm(vc, n, lanes=lanes)
    words = [w.g_q[a * lanes:(a + 1) * lanes] for a in range(n // lanes)]
    preload = {"g": [{"addr": a, "value": [int(g) for g in ws] if lanes > 1 else int(ws[0])}
                     for a, ws in enumerate(words)]}
    ks = ks or [(w.gamma_frac, w.eps_q)] * len(H)
    feeds = {"h": to_beats([{"h": int(x)} for h in H for x in h], lanes, ("h",)),
             "k": [{"gamma_frac": gf, "eps_q": eps} for gf, eps in ks]}
    r = run_ports(dut, rmsnorm_ports(vc, n, lanes), feeds, {"o": n * len(H) // lanes}, seed=seed,
                  p_valid=p_valid, p_ready=p_ready, preload=preload)
    r.out["o"] = from_beats(r.out["o"], lanes, ("x",))
    return r


def check(r, vc, w, H, lanes=1, ks=None):
    got = r.out["o"]
    for i, h in enumerate(H):
        wi = w if ks is None else IntNormWeights(w.g_q, ks[i][0], ks[i][1], w.n)
        xq, m, e = rmsnorm_int8(h, wi, vc)
        g = got[i * w.n:(i + 1) * w.n]
        assert [o["x"] for o in g] == xq.tolist()
        assert {(o["m"], o["e"]) for o in g} == {(int(m), int(e))}
        assert [o["last"] for o in g] == [False] * (w.n - lanes) + [True] * lanes


@pytest.mark.parametrize("vc,n,seed", [(VectorConfig(), 16, 1), (VectorConfig(), 24, 2),
                                       (VectorConfig(norm_in_bits=8, gamma_bits=8, scale_bits=12, rsqrt_newton=0), 16, 3),
                                       (VectorConfig(resid_bits=24, resid_frac_bits=8, rsqrt_newton=2,
                                                     rsqrt_lut_bits=4, norm_in_bits=20), 20, 4)])
def test_vectors_match_golden_under_stalls(vc, n, seed):
    w = weights(vc, n, seed)
    H = residuals(vc, n, seed)
    check(run(vc, w, H, seed=seed, p_valid=0.7, p_ready=0.6), vc, w, H)


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_lanes_match_golden_under_stalls(lanes):
    vc = VectorConfig()
    w = weights(vc, 32, lanes)
    H = residuals(vc, 32, lanes)
    check(run(vc, w, H, seed=lanes, p_valid=0.7, p_ready=0.6, lanes=lanes), vc, w, H, lanes)


@pytest.mark.parametrize("lanes,p", [(1, 1.0), (1, 0.6), (4, 0.7)])
def test_constants_per_vector(lanes, p):
    """Each vector its own gamma_frac and eps_q, back to back (the next vector's constants
    are taken while the previous one is still in the Rsqrt and the output), the extremes of
    the k port's fields among them."""
    vc = VectorConfig()
    n = 16
    w = weights(vc, n, 11)
    H = residuals(vc, n, 11)
    top_gf, top_eps = (1 << (GAMMA_FRAC_BITS - 1)) - 1, (1 << eps_bits(vc, n)) - 1
    ks = [(-(1 << (GAMMA_FRAC_BITS - 1)), 0), (top_gf, top_eps), (3, 12345), (-7, 1 << 30), (0, 0),
          (top_gf, 1), (-16, top_eps)][:len(H)]
    check(run(vc, w, H, seed=5, p_valid=p, p_ready=p, lanes=lanes, ks=ks), vc, w, H, lanes, ks)


def test_zero_vector_without_eps():
    vc = VectorConfig()
    w = weights(vc, 16, 5, eps=0.0)
    H = [np.zeros(16, dtype=np.int64), np.ones(16, dtype=np.int64)]
    check(run(vc, w, H), vc, w, H)


@pytest.mark.parametrize("vc,n,lanes", [(VectorConfig(), 16, 1), (VectorConfig(), 64, 1),
                                        (VectorConfig(rsqrt_newton=3), 16, 1), (VectorConfig(scale_bits=8), 32, 1),
                                        (VectorConfig(), 64, 8), (VectorConfig(rsqrt_newton=3), 32, 4)])
def test_cycles_match_closed_form(vc, n, lanes):
    w = weights(vc, n, n)
    H = residuals(vc, n, n)[:1]
    r = run(vc, w, H, lanes=lanes)
    check(r, vc, w, H, lanes)
    assert r.cycles == rmsnorm_cycles(n, vc, lanes)


def test_smollm2_sized_vector():
    vc = VectorConfig()
    w = weights(vc, 576, 7)
    H = [residuals(vc, 576, 7)[0], residuals(vc, 576, 8)[4]]
    r = run(vc, w, H, seed=7, p_valid=0.9, p_ready=0.9)
    check(r, vc, w, H)
    r = run(vc, w, H[:1])
    assert r.cycles == rmsnorm_cycles(576, vc)


@pytest.mark.parametrize("args,lanes,exc", [
    ((None, 16), 1, TypeError), ((VectorConfig(), 0), 1, ValueError), ((VectorConfig(), 1.5), 1, TypeError),
    ((VectorConfig(norm_in_bits=24), 1 << 14), 1, ValueError),           # the sum of squares reaches 2^62
    ((VectorConfig(gamma_bits=24, norm_in_bits=24), 16), 1, ValueError),
    ((VectorConfig(), 16), 3, ValueError), ((VectorConfig(), 16), 0, ValueError)])
def test_bad_parameters_are_refused(args, lanes, exc):
    with pytest.raises(exc):
        RmsNorm(*args, lanes=lanes)


def test_converts_to_verilog():
    vc = VectorConfig()
    convert(RmsNorm(vc, 576), rmsnorm_ports(vc, 576))
