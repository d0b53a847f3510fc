"""Group dot product (hw/groupdot.py) in Amaranth's simulator against codec.golden:
directed cases (all 0, all +1, all -1, alternating, extremes, sparse, dense) and seeded
random ones, with random valid/ready stalls."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from tritforge.codec import golden, layout
from tritforge.hw.actmultiples import ActMultiples
from tritforge.hw.groupdot import GroupDot
from tritforge.hw.simdriver import run_stream
from tritforge.hwconfig import HwConfig, groupdot_stages


def multiples(x, depth: int) -> dict:
    """What hw.actmultiples.ActMultiples gives the group dot: +-3**i x per plane."""
    out = {}
    for i in range(depth):
        out[f"pos{i}"] = [int(v) * 3 ** i for v in x]
        out[f"neg{i}"] = [-int(v) * 3 ** i for v in x]
    return out


def directed(L: int):
    """(name, q (16,), x (16,)) pairs of one row."""
    alt = np.array([1, -1] * 8)
    return [
        ("zero", np.zeros(16), np.full(16, 127)),
        ("plus", np.ones(16), np.arange(-120, 136, 16) % 255 - 127),
        ("minus", -np.ones(16), np.full(16, -127)),
        ("alternating", alt * L, alt * 127),
        ("max", np.full(16, L), np.full(16, 127)),
        ("max-neg", np.full(16, L), np.full(16, -128)),
        ("max-pos", np.full(16, -L), np.full(16, -128)),
        ("low-digit", np.full(16, -1), np.full(16, -128)),
        ("min", np.full(16, -L), np.full(16, 127)),
        ("sparse", np.eye(16)[3] * L, np.full(16, -127)),
        ("dense", np.arange(16) % (2 * L + 1) - L, np.arange(16) * 17 % 255 - 127),
    ]


def cases(cfg: HwConfig, rng):
    L = cfg.level
    rows = []
    for _, q, x in directed(L):
        rows.append((np.tile(q, (cfg.rows, 1)).astype(np.int8), x.astype(np.int8)))
    for _ in range(24):
        q = rng.integers(-L, L + 1, size=(cfg.rows, 16))
        q[rng.random(q.shape) < rng.random()] = 0              # random sparsity
        rows.append((q.astype(np.int8), rng.integers(-128, 128, size=16).astype(np.int8)))
    return rows


@pytest.mark.parametrize("depth,rows", [(1, 1), (2, 4), (3, 2), (4, 4)])
def test_group_dot_matches_golden(depth, rows):
    cfg = HwConfig(depth=depth, rows=rows)
    gd = GroupDot(cfg, tag_shape=8)
    rng = np.random.default_rng(100 + depth)
    cs = cases(cfg, rng)
    items = []
    for n, (q, x) in enumerate(cs):
        planes = layout.to_trits(q, depth).transpose(0, 2, 1).tolist()   # [r][plane][lane]
        items.append(gd.in_layout.const({"planes": planes, "mult": multiples(x, depth),
                                         "tag": n}).as_value().value)
    got = run_stream(gd, items, seed=depth, p_valid=0.6, p_ready=0.6)
    assert len(got) == len(cs)
    for n, ((q, x), word) in enumerate(zip(cs, got)):
        c = gd.out_layout.from_bits(word)
        p = [int(c["p"][r]) for r in range(rows)]
        exp = golden.group_dots(q, x)[:, 0].tolist()
        assert exp == golden.group_dots_by_planes(q, x, depth)[:, 0].tolist()
        assert int(c["tag"]) == n and p == exp, f"case {n}"
    # the extremes reach the width bound
    assert max(abs(v) for v in golden.group_dots(np.full((1, 16), -cfg.level), np.full(16, -128))) \
        == 16 * cfg.level * 128 < 2 ** (cfg.widths.dot - 1)


def test_latency_is_terms_then_one_stage_per_adder_level():
    for depth, stages in ((1, 5), (2, 6), (3, 7), (4, 7)):
        gd = GroupDot(HwConfig(depth=depth, rows=1))
        Fragment.get(gd, None)                     # elaborates: the tree asserts its levels
        assert gd.latency == GroupDot.stages(depth) == groupdot_stages(depth) == stages


@pytest.mark.parametrize("depth, copies", [(1, 0), (2, 0), (3, 0), (4, 0), (2, 8), (3, 3)])
def test_activation_multiples_are_exact(depth, copies):
    """Every int8 activation -128..127 through ActMultiples: +-3**i x, two stages, with stalls;
    with enable copies (``copies`` > 0) the enable is given a cycle ahead on ``adv_next``
    (high in the first cycle, the copies' reset value)."""
    from amaranth.sim import Simulator

    dut = ActMultiples(depth, enable_copies=copies)
    xs = list(range(-128, 128))
    words = [xs[n:n + 16] + [0] * (16 - len(xs[n:n + 16])) for n in range(0, len(xs), 16)]
    got = []

    async def bench(ctx):
        rng = np.random.default_rng(depth)
        pending = list(words)
        inflight = []                              # words entered, oldest first
        nxt = True if copies else bool(rng.random() < 0.7)
        while pending or any(w is not None for w in inflight):
            en, nxt = nxt, bool(rng.random() < 0.7)
            if pending:
                ctx.set(dut.x, pending[0])
            ctx.set(dut.adv_next if copies else dut.en, nxt if copies else en)
            await ctx.tick()
            if en:
                inflight.append(pending.pop(0) if pending else None)
                if len(inflight) > dut.latency:
                    inflight.pop(0)
                if len(inflight) == dut.latency and inflight[0] is not None:
                    got.append((inflight[0], {k: [int(v) for v in ctx.get(dut.mult[k])]
                                              for k in multiples([0], depth)}))
                    inflight[0] = None
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [w for w, _ in got] == words
    for w, mult in got:
        assert mult == multiples(w, depth)
