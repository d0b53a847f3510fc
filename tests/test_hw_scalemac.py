"""Scale multiply-accumulate (hw/scalemac.py) in Amaranth's simulator against
codec.golden.accumulate: random jobs with T in {1, 2}, stalls, and the accumulator's
extreme case reaching the width bound of codec.golden.widths exactly."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.codec import golden
from tritforge.hw.scalemac import ScaleMac
from tritforge.hw.simdriver import run_stream
from tritforge.hwconfig import HwConfig


def codebook_setup(mac: ScaleMac, mant, shift):
    async def setup(ctx):
        # also write the unused indices 27..31: they must change nothing
        for k in list(range(27)) + [27, 31]:
            ctx.set(mac.cb.valid, 1)
            ctx.set(mac.cb.payload.as_value(), mac.cb.payload.shape().const({
                "index": k, "mantissa": int(mant[k % 27]) ^ (0xFFF if k >= 27 else 0),
                "shift": int(shift[k % 27])}).as_value().value)
            await ctx.tick()
        ctx.set(mac.cb.valid, 0)
    return setup


def run_job(cfg: HwConfig, P, k, mant, shift, seed, p_valid=0.6, p_ready=0.6):
    """P, k: (tiles, ng, T, R) / (tiles, ng, R). Returns [(vector, acc list, last)] per beat."""
    mac = ScaleMac(cfg)
    tiles, ng, T, R = P.shape
    items = []
    for t in range(tiles):
        for g in range(ng):
            for v in range(T):
                items.append(mac.in_layout.const({
                    "p": P[t, g, v].tolist(), "k": k[t, g].tolist(),
                    "tag": {"vector": v, "first": g == 0, "final": g == ng - 1,
                            "last": t == tiles - 1 and g == ng - 1 and v == T - 1}}).as_value().value)
    words = run_stream(mac, items, seed=seed, p_valid=p_valid, p_ready=p_ready,
                       setup=codebook_setup(mac, mant, shift), n_out=tiles * T)
    lay = mac.o.payload.shape()
    out = []
    for w in words:
        c = lay.from_bits(w)
        out.append((int(c["vector"]), [int(c["acc"][r]) for r in range(R)], bool(c["last"])))
    return out


def expected(P, k, mant, shift):
    tiles, ng, T, R = P.shape
    out = []
    for t in range(tiles):
        for v in range(T):
            # golden.accumulate: P (..., rows, ng), k (rows, ng)
            acc = golden.accumulate(P[t, :, v].T, k[t].T, mant, shift)
            out.append((v, [int(a) for a in acc], t == tiles - 1 and v == T - 1))
    return out


@pytest.mark.parametrize("depth,rows,vectors", [(1, 1, 1), (2, 4, 2), (4, 2, 1), (3, 1, 2), (1, 9, 2)])
def test_random_jobs_match_golden(depth, rows, vectors):
    cfg = HwConfig(depth=depth, rows=rows, vectors=vectors, max_in_features=256)
    rng = np.random.default_rng(depth * 100 + rows * 10 + vectors)
    pmax = 16 * cfg.level * 127
    tiles, ng = 3, 5
    P = rng.integers(-pmax, pmax + 1, size=(tiles, ng, vectors, rows))
    P[0, 0] = pmax
    P[1, 1] = -pmax
    k = rng.integers(0, 27, size=(tiles, ng, rows))
    mant = rng.integers(2 ** 11, 2 ** 12, size=27)
    mant[0] = 0
    shift = rng.integers(0, 16, size=27)
    assert run_job(cfg, P, k, mant, shift, seed=vectors) == expected(P, k, mant, shift)


@pytest.mark.parametrize("sign", [1, -1])
def test_accumulator_extreme_reaches_bound(sign):
    """Every group at |P| = 16*L*128 with the largest mantissa and shift over max_groups
    groups: the accumulator reaches the documented bound exactly and does not wrap."""
    cfg = HwConfig(depth=4, rows=1, vectors=1, max_in_features=1024)
    w = cfg.widths
    ng = cfg.max_groups
    P = np.full((1, ng, 1, 1), sign * 16 * cfg.level * 128, dtype=np.int64)
    k = np.full((1, ng, 1), 26)
    mant = np.full(27, 2 ** cfg.mant_bits - 1)
    shift = np.full(27, cfg.shift_limit)
    got = run_job(cfg, P, k, mant, shift, seed=7, p_valid=1.0, p_ready=0.8)
    assert got == [(0, [sign * w.bound], True)]
    assert w.bound < 2 ** (w.acc - 1)
