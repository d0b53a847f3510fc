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
from tritforge.errors import TritforgeError
from tritforge.codec.intattention import IntKVCache, attend
from tritforge.hw.attention import AttentionUnit
from tritforge.hw.simdriver import run_streams
from tritforge.ports import by_name
from tritforge.sim.attentioncycles import job_cycles
from tritforge.sim.attentionstreams import cache_beats, q_beats


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
    qq, qm, qe = quantize_int8(q_fix, ucfg.attention.scale_bits)
    return {"cmd": [ports["cmd"].pack({"keys": keys})], "q": q_beats(ucfg, qq[0], qm[0], qe[0]),
            "kv": cache_beats(ucfg, cache, 0, keys)}


def run(ucfg, ins, seed=0, p_valid=1.0, p_ready=1.0, final=None, n_out=None):
    unit = AttentionUnit(ucfg)
    n_out = ucfg.group * ucfg.beats if n_out is None else n_out
    got, when = run_streams(unit, ins, {"out": n_out}, seed=seed, p_valid=p_valid, p_ready=p_ready,
                            max_cycles=200_000, min_cycles=20, final=final)
    port = by_name(attention_ports(ucfg))["out"]
    beats = [port.unpack(w) for w in got["out"]]
    out = np.array([b["elems"] for b in beats]).reshape(-1, ucfg.head_dim)
    return out, [b["last"] for b in beats], when


@pytest.mark.parametrize("keys", [1, 3, 4, 9])
def test_matches_golden_and_closed_form(keys):
    ucfg = small_config()
    ins, want = make_job(ucfg, keys, np.random.default_rng(keys))
    out, last, when = run(ucfg, ins)
    np.testing.assert_array_equal(out, want)
    assert last == [False] * (len(last) - 1) + [True]
    assert when["out"][-1] - when["cmd"][0] == job_cycles(ucfg, keys)


@pytest.mark.parametrize("pv", ["dsp", "lut"])
def test_both_product_builds_match_the_golden(pv):
    """The p·V products as multipliers on (p · m_v, v << ls) or as shift-and-add, with
    left-shifted weights (small V steps) and right-shifted ones."""
    ucfg = small_config(group=3, lanes=2, block=3, pv_multiplier=pv)
    for scale in ((1.0, 1.0, 1.0), (1.0, 1.0, 3e4)):
        ins, want = make_job(ucfg, 7, np.random.default_rng(11), scale=scale)
        out, _, when = run(ucfg, ins)
        np.testing.assert_array_equal(out, want)
        assert when["out"][-1] - when["cmd"][0] == job_cycles(ucfg, 7)


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


def test_a_clean_job_leaves_err_low():
    ucfg = small_config()
    ins, _ = make_job(ucfg, 5, np.random.default_rng(3))
    flags = {"err": None, "busy": None}
    run(ucfg, ins, final=flags)
    assert flags == {"err": 0, "busy": 0}


@pytest.mark.parametrize("keys", [0, 41])
def test_a_command_outside_the_context_is_dropped_with_err(keys):
    ucfg = small_config(max_context=40)
    port = by_name(attention_ports(ucfg))["cmd"]
    flags = {"err": None, "busy": None}
    run(ucfg, {"cmd": [port.pack({"keys": keys})]}, final=flags, n_out=0)
    assert flags == {"err": 1, "busy": 0}


def test_a_job_after_a_refused_command_is_exact():
    """A refused command loads the job's registers but leaves the unit idle: the next
    command's job is the golden's, in the closed form's cycles, with err still high."""
    ucfg = small_config(max_context=40)
    ins, want = make_job(ucfg, 9, np.random.default_rng(3))
    ins["cmd"] = [by_name(attention_ports(ucfg))["cmd"].pack({"keys": 41})] + ins["cmd"]
    flags = {"err": None, "busy": None}
    out, _, when = run(ucfg, ins, final=flags)
    np.testing.assert_array_equal(out, want)
    assert flags == {"err": 1, "busy": 0}
    assert when["out"][-1] - when["cmd"][1] == job_cycles(ucfg, 9)


def _corrupt(ucfg, ins, index, **fields):
    port = by_name(attention_ports(ucfg))["kv"]
    beat = dict(port.unpack(ins["kv"][index]))
    beat.update(fields)
    ins["kv"][index] = port.pack(beat)


@pytest.mark.parametrize("fault", ["minus128", "unnormalized", "logit-shift", "weight-shift"])
def test_bad_kv_rows_raise_err_and_the_job_still_ends(fault):
    """A bad row flags the sticky err; the job runs to its end so the streams stay aligned.
    The golden reference refuses the out-of-range steps too."""
    ucfg = small_config()
    keys = 3
    ins, _ = make_job(ucfg, keys, np.random.default_rng(4))
    NB = ucfg.beats
    k_row1, v_row0 = NB, keys * NB                      # first beats of K row 1 and V row 0
    if fault == "minus128":
        _corrupt(ucfg, ins, k_row1 + 1, elems=(-128,) + (0,) * (ucfg.lanes - 1))
    elif fault == "unnormalized":
        _corrupt(ucfg, ins, k_row1, m=(1 << (ucfg.attention.scale_bits - 1)) - 1)
    elif fault == "logit-shift":
        _corrupt(ucfg, ins, k_row1, e=-60)
    else:
        _corrupt(ucfg, ins, v_row0, e=-(ucfg.w_left_max + ucfg.w_shift_fixed + 1))
    flags = {"err": None, "busy": None}
    run(ucfg, ins, final=flags)
    assert flags == {"err": 1, "busy": 0}


def test_golden_refuses_steps_outside_the_contract():
    ucfg = small_config()
    rng = np.random.default_rng(6)
    q = rng.integers(-2 ** 16, 2 ** 16, (1, 2, 8))
    cache = IntKVCache(1, 8, ucfg.attention, ucfg.vector)
    cache.append(rng.integers(-2 ** 16, 2 ** 16, (3, 1, 8)), rng.integers(-2 ** 16, 2 ** 16, (3, 1, 8)))
    cache.k_e = cache.k_e.copy()
    cache.k_e[1, 0] = -60
    with pytest.raises(TritforgeError, match="outside the contract's range"):
        attend(q, np.array([2]), cache, ucfg.attention, ucfg.vector)


@pytest.mark.parametrize("kw,exc", [
    ({"head_dim": 6, "lanes": 4}, TritforgeError),       # not a multiple of lanes
    ({"group": 0}, TritforgeError),
    ({"lanes": True}, TritforgeError),
    ({"pv_multiplier": "booth"}, TritforgeError),
])
def test_config_checks(kw, exc):
    with pytest.raises(exc):
        small_config(**kw)


def test_unit_checks_its_parameters_before_building():
    with pytest.raises(TypeError):
        AttentionUnit(AttentionConfig())
    poly = AttentionUnitConfig(head_dim=8, group=1, lanes=4,
                               attention=AttentionConfig(max_head_dim=16, exp_method="poly2"))
    with pytest.raises(ValueError, match="lut"):
        AttentionUnit(poly)


def test_verilog_lints_clean(tmp_path):
    from amaranth.back import verilog

    from test_hw_lint import lint
    p = tmp_path / "attention.v"
    p.write_text(verilog.convert(AttentionUnit(small_config(group=3)), name="tritforge_attention"))
    r = lint(str(p))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
