"""The attention unit (hw/attention.py) in Amaranth's simulator against the golden
reference codec.intattention.attend, bit for bit, under random stalls and back-pressure,
and its cycles against sim/attentioncycles.py's closed form."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.accelconfig import AttentionConfig, VectorConfig
from tritforge.attentionports import attention_ports
from tritforge.attentionunit import AttentionUnitConfig
from tritforge.codec.fixedpoint import quantize_int8
from tritforge.codec.intattention import IntKVCache, attend
from tritforge.hw.attention import AttentionUnit
from tritforge.hw.simdriver import run_streams
from tritforge.ports import by_name
from tritforge.sim.attentioncycles import job_cycles


def small_config(**kw) -> AttentionUnitConfig:
    att = AttentionConfig(max_head_dim=16, max_context=kw.pop("max_context", 40), block=kw.pop("block", 4))
    return AttentionUnitConfig(head_dim=kw.pop("head_dim", 8), group=kw.pop("group", 2),
                               lanes=kw.pop("lanes", 4), attention=att, vector=VectorConfig(), **kw)


def make_job(ucfg: AttentionUnitConfig, keys: int, rng, scale=(1.0, 1.0, 1.0)):
    """Random q (g heads), k, v (keys rows) in fixed point; the unit's streams and the
    golden output (g, head_dim)."""
    g, hd = ucfg.group, ucfg.head_dim
    FR = ucfg.vector.resid_frac_bits
    sq, sk, sv = scale
    q = np.rint(rng.standard_normal((1, g, hd)) * sq * 2 ** FR).astype(np.int64)
    k = np.rint(rng.standard_normal((keys, 1, hd)) * sk * 2 ** FR).astype(np.int64)
    vv = np.rint(rng.standard_normal((keys, 1, hd)) * sv * 2 ** FR).astype(np.int64)
    cache = IntKVCache(1, hd, ucfg.attention, ucfg.vector)
    cache.append(k, vv)
    want = attend(q, np.array([keys - 1]), cache, ucfg.attention, ucfg.vector)[0]
    return streams(ucfg, keys, q, cache), want


def streams(ucfg, keys, q_fix, cache):
    ports = by_name(attention_ports(ucfg))
    L, NB, blk = ucfg.lanes, ucfg.beats, ucfg.attention.block
    qq, qm, qe = quantize_int8(q_fix, ucfg.attention.scale_bits)

    def row(elems, m, e):
        return [ports["kv"].pack({"elems": elems[b * L:(b + 1) * L], "m": m, "e": e}) for b in range(NB)]

    q_beats = []
    for h in range(ucfg.group):
        q_beats += row(qq[0, h], qm[0, h], qe[0, h])
    kv = []
    for j0 in range(0, keys, blk):
        js = range(j0, min(j0 + blk, keys))
        for j in js:
            kv += row(cache.k_q[j, 0], cache.k_m[j, 0], cache.k_e[j, 0])
        for j in js:
            kv += row(cache.v_q[j, 0], cache.v_m[j, 0], cache.v_e[j, 0])
    return {"cmd": [ports["cmd"].pack({"keys": keys})], "q": q_beats, "kv": kv}


def run(ucfg, ins, seed=0, p_valid=1.0, p_ready=1.0):
    unit = AttentionUnit(ucfg)
    n_out = ucfg.group * ucfg.beats
    got, when = run_streams(unit, ins, {"out": n_out}, seed=seed, p_valid=p_valid, p_ready=p_ready,
                            max_cycles=200_000)
    port = by_name(attention_ports(ucfg))["out"]
    beats = [port.unpack(w) for w in got["out"]]
    out = np.array([b["elems"] for b in beats]).reshape(ucfg.group, ucfg.head_dim)
    return out, [b["last"] for b in beats], when


@pytest.mark.parametrize("keys", [1, 3, 4, 9])
def test_matches_golden_and_closed_form(keys):
    ucfg = small_config()
    ins, want = make_job(ucfg, keys, np.random.default_rng(keys))
    out, last, when = run(ucfg, ins)
    np.testing.assert_array_equal(out, want)
    assert last == [False] * (len(last) - 1) + [True]
    assert when["out"][-1] - when["cmd"][0] == job_cycles(ucfg, keys)


@pytest.mark.parametrize("seed", [0, 1])
def test_stalls_and_back_pressure(seed):
    ucfg = small_config(group=3, lanes=2, block=3)
    ins, want = make_job(ucfg, 7, np.random.default_rng(10 + seed), scale=(3.0, 0.5, 2.0))
    out, _, _ = run(ucfg, ins, seed=seed, p_valid=0.6, p_ready=0.5)
    np.testing.assert_array_equal(out, want)


def test_one_lane_one_head_and_full_width_beats():
    for ucfg in (small_config(group=1, lanes=1, head_dim=4, block=2), small_config(lanes=8)):
        ins, want = make_job(ucfg, 5, np.random.default_rng(5))
        out, _, when = run(ucfg, ins)
        np.testing.assert_array_equal(out, want)
        assert when["out"][-1] - when["cmd"][0] == job_cycles(ucfg, 5)
