"""The vector units' stepping models (sim/vectorstep.py) against the RTL (hw/divider.py,
int8quant.py, rsqrt.py, rmsnorm.py, rope.py, silumul.py, requant.py) in every cycle of
Amaranth's simulator: each input stream's beats offered with seeded random idle cycles
(garbage payloads then), random back-pressure on each output, vectors back to back, one
and several lanes, and a synchronous reset in the middle of a vector after which the
streams start again. Every ready and every output valid is compared in every cycle, a
payload in every cycle its valid is high (sim/elementstep.py: undefined otherwise)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from tritforge.accelconfig import VectorConfig
from tritforge.codec.intnorm import IntNormWeights
from tritforge.hw.divider import Divider
from tritforge.hw.int8quant import Int8Quantizer
from tritforge.hw.requant import Requantize
from tritforge.hw.rmsnorm import RmsNorm
from tritforge.hw.rope import Rope
from tritforge.hw.rsqrt import Rsqrt
from tritforge.hw.silumul import SiluMul
from tritforge.vectorports import eps_bits
from tritforge.sim.vectorstep import (DividerStep, Int8QuantizerStep, RequantizeStep, RmsNormStep, RopeStep,
                                      RsqrtStep, SiluMulStep)

from lockstep import lockstep


def lanes_value(values, lanes):
    values = [int(v) for v in values]
    return values[0] if lanes == 1 else tuple(values)


# ---- the units -----------------------------------------------------------------------------

@pytest.mark.parametrize("num_bits,den_bits,quo_bits", [(8, 5, None), (10, 5, 6)])
def test_divider(num_bits, den_bits, quo_bits):
    """Random divisions, den = 0 among them; with quo_bits < num_bits some break
    num < den · 2^quo_bits and the model still follows the non-restoring steps bit for bit."""
    rng = random.Random(1)
    items = [{"num": rng.getrandbits(num_bits), "den": rng.choice([0, 1, rng.getrandbits(den_bits)])}
             for _ in range(12)]
    model = DividerStep(num_bits, den_bits, quo_bits)
    taken = lockstep(Divider(num_bits, den_bits, quo_bits), model, {"i": items}, seed=2,
                     reset_at=17, cycles=260)
    assert taken["o"] == len(items)


def quant_vectors(rng, in_bits, lanes, lengths):
    """Int8Quantizer beats of vectors of the given element counts (last beat zero-padded):
    random values, a zero vector, the extremes."""
    top = (1 << in_bits) - 1
    beats = []
    for k, n in enumerate(lengths):
        v = [rng.randint(-top, top) for _ in range(n)] if k % 3 else [0] * n if k == 0 else [top, -top] * n
        v = v[:n] + [0] * (-n % lanes)
        nb = len(v) // lanes
        beats += [{"v": lanes_value(v[b * lanes:(b + 1) * lanes], lanes), "last": b == nb - 1}
                  for b in range(nb)]
    return beats


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("lanes,lengths,p_ready,reset_at", [(1, (5, 7, 1, 6), 0.6, None), (1, (5, 7, 1, 6), 0.6, 30),
                                                             (3, (5, 7, 1, 6), 0.6, 45), (1, (1, 2, 1, 1, 3, 1), 0.12, None),
                                                             (1, (7, 7, 7, 2, 7, 7), 0.9, None), (1, (6, 1, 7, 7, 3), 0.3, 52),
                                                             (1, (12, 12, 3, 12, 12), 1.0, None), (2, (12, 11, 3, 12), 0.5, 70)])
def test_int8quant(banks, lanes, lengths, p_ready, reset_at):
    """Vectors back to back; with rare ready, short vectors' output tails are still in the
    pipeline when the next vector's division is done (the hand-over waits for them); with
    two banks a vector comes in while the previous one is divided and read (vectors longer
    than the NORM-to-last-read distance: the next receive waits for the read of its bank)."""
    in_bits, B, max_n = 12, 8, max(7, *lengths)
    items = quant_vectors(random.Random(lanes), in_bits, lanes, lengths)
    model = Int8QuantizerStep(in_bits, B, max_n, lanes=lanes, banks=banks)
    taken = lockstep(Int8Quantizer(in_bits, B, max_n, lanes=lanes, banks=banks), model, {"i": items},
                     seed=lanes + 10 * banks, p_ready=p_ready, reset_at=reset_at, cycles=420)
    assert taken["o"] == len(items)


@pytest.mark.parametrize("reset_at", [None, 9])
def test_rsqrt(reset_at):
    vc = VectorConfig(rsqrt_frac_bits=10, rsqrt_lut_bits=4, rsqrt_newton=1)
    rng = random.Random(3)
    items = [{"ss": max(1, rng.getrandbits(rng.randint(1, 20)))} for _ in range(30)]
    taken = lockstep(Rsqrt(vc, 20), RsqrtStep(vc, 20), {"i": items}, seed=4, reset_at=reset_at, cycles=150)
    assert taken["o"] == len(items)


NORM_CFG = VectorConfig(resid_bits=16, resid_frac_bits=6, norm_in_bits=8, gamma_bits=8, scale_bits=10,
                        rsqrt_frac_bits=10, rsqrt_lut_bits=4)


def norm_items(vc, n, lanes, seed, g_rounds):
    """Four vectors (random, zero, small, the largest magnitude), each with its ``k`` beat
    (the largest eps_q with the largest pre-shift), and ``g_rounds`` rounds of gamma word
    writes (alternating signs)."""
    N = n // lanes
    rng = np.random.default_rng(seed)
    w = IntNormWeights.from_float(rng.normal(1.0, 0.5, size=n), 1e-5, vc.resid_frac_bits, vc.gamma_bits)
    top = (1 << (vc.resid_bits - 1)) - 1
    H = [rng.integers(-top, top + 1, size=n), np.zeros(n, dtype=np.int64), rng.integers(-40, 40, size=n),
         np.full(n, -top)]
    words = [w.g_q[a * lanes:(a + 1) * lanes] for a in range(N)]
    eps_top = (1 << eps_bits(vc, n)) - 1
    return {"h": [{"h": lanes_value(h[b * lanes:(b + 1) * lanes], lanes)} for h in H for b in range(N)],
            "g": [{"addr": a, "value": lanes_value(words[a] * (-1) ** r, lanes)}
                  for r in range(g_rounds) for a in range(N)],
            "k": [{"gamma_frac": gf, "eps_q": eps}
                  for gf, eps in ((w.gamma_frac, w.eps_q), (3, 0), (-32, 1), (31, eps_top))]}


@pytest.mark.parametrize("lanes,p_valid,p_ready,reset_at", [(1, 0.5, 0.6, None), (2, 0.5, 0.6, 40),
                                                            (2, 1.0, 1.0, None), (3, 0.9, 0.9, None)])
def test_rmsnorm(lanes, p_valid, p_ready, reset_at):
    """Gamma words written through ``g`` all the time, while vectors are received and
    scanned (the model follows the writes where the RTL's reads see them), per-vector
    (gamma_frac, eps_q) on ``k``, a zero vector with eps_q = 0 (ss clamped to 1); at full
    rate a vector's ss enters the Rsqrt while the previous one's is still in it."""
    vc, n = NORM_CFG, 6
    items = norm_items(vc, n, lanes, lanes, g_rounds=40)
    taken = lockstep(RmsNorm(vc, n, lanes=lanes), RmsNormStep(vc, n, lanes=lanes), items, seed=lanes,
                     p_valid=p_valid, p_ready=p_ready, reset_at=reset_at, cycles=520)
    assert taken["o"] == len(items["h"])


def test_rmsnorm_gamma_write_in_reset_cycle():
    """The last gamma write of each word comes in the reset cycle and is not repeated:
    the memory keeps it (a reset clears registers, not memories)."""
    vc, n = NORM_CFG, 6
    items = norm_items(vc, n, 1, 5, g_rounds=2)
    taken = lockstep(RmsNorm(vc, n), RmsNormStep(vc, n), items, seed=5, p_valid=1.0, p_ready=0.8,
                     reset_at=2 * n - 1, restart=("h", "k"), cycles=300)
    assert taken["o"] == len(items["h"])


@pytest.mark.parametrize("lanes,reset_at", [(1, None), (2, 13)])
def test_rope(lanes, reset_at):
    vc, head_dim, xb, cb = VectorConfig(rope_frac_bits=8), 8, 12, 10
    rng = random.Random(5)
    heads = 3
    top = (1 << xb) - 1
    xs = [rng.choice([rng.randint(-top, top), top, -top]) for _ in range(heads * head_dim)]
    W = head_dim // 2 // lanes
    cs = [(rng.randint(-(1 << (cb - 1)), (1 << (cb - 1)) - 1), rng.randint(-(1 << (cb - 1)), (1 << (cb - 1)) - 1))
          for _ in range(heads * head_dim // 2)]
    items = {"x": [{"x": lanes_value(xs[b * lanes:(b + 1) * lanes], lanes)} for b in range(len(xs) // lanes)],
             "cs": [{"c": lanes_value([c for c, _ in cs[b * lanes:(b + 1) * lanes]], lanes),
                     "s": lanes_value([s for _, s in cs[b * lanes:(b + 1) * lanes]], lanes)}
                    for b in range(heads * W)]}
    taken = lockstep(Rope(vc, head_dim, x_bits=xb, cs_bits=cb, lanes=lanes),
                     RopeStep(vc, head_dim, x_bits=xb, cs_bits=cb, lanes=lanes), items, seed=6,
                     reset_at=reset_at, cycles=200)
    assert taken["o"] == len(items["x"])


@pytest.mark.parametrize("lanes,reset_at", [(1, None), (2, 11)])
def test_silumul(lanes, reset_at):
    vc = VectorConfig(resid_bits=20, resid_frac_bits=8, silu_lut_bits=5, sigmoid_frac_bits=10)
    rng = random.Random(7)
    top = (1 << (vc.resid_bits - 1)) - 1
    elems = [(rng.choice([rng.randint(-top, top), rng.randint(-5000, 5000)]), rng.randint(-top, top))
             for _ in range(24 * lanes)]
    items = [{"g": lanes_value([g for g, _ in elems[b:b + lanes]], lanes),
              "u": lanes_value([u for _, u in elems[b:b + lanes]], lanes)} for b in range(0, len(elems), lanes)]
    taken = lockstep(SiluMul(vc, lanes=lanes), SiluMulStep(vc, lanes=lanes), {"i": items}, seed=8,
                     reset_at=reset_at, cycles=120)
    assert taken["o"] == len(items)


@pytest.mark.parametrize("residual,lanes,reset_at", [(False, 1, None), (True, 2, 12)])
def test_requantize(residual, lanes, reset_at):
    """Right and left shifts (e - a - out_frac of either sign), saturation either way, and
    ties of both roundings (the pre-shift's and the product's)."""
    vc, acc_bits = VectorConfig(resid_bits=16, resid_frac_bits=6, scale_bits=8), 20
    rng = random.Random(9)
    top = (1 << (acc_bits - 1)) - 1
    items = []
    ties = [(3, 1, 128, 7), (-3, 1, 128, 7), (1, 0, 128, 14), (-1, 0, 128, 14), (5, 2, 192, 9)]
    for k in range(30):
        acc, a, m, e = ties[k] if k < len(ties) else (rng.randint(-top, top), rng.randint(0, 5),
                                                      rng.randint(1 << 7, (1 << 8) - 1),
                                                      rng.choice([rng.randint(-20, 40), rng.randint(12, 26)]))
        beat = {"acc": lanes_value([acc] + [rng.randint(-top, top) for _ in range(lanes - 1)], lanes),
                "m": m, "e": e, "a": a}
        if residual:
            beat["res"] = lanes_value([rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(lanes)], lanes)
        items.append(beat)
    taken = lockstep(Requantize(vc, acc_bits, residual=residual, lanes=lanes),
                     RequantizeStep(vc, acc_bits, residual=residual, lanes=lanes), {"i": items}, seed=10,
                     reset_at=reset_at, cycles=120)
    assert taken["o"] == len(items)
