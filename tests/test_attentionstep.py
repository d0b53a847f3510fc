"""The attention unit's stepping model (sim/attentionstep.py) against the RTL
(hw/attention.py) in every cycle: random valid/ready, garbage payloads on idle cycles,
back-to-back jobs, a reset in the middle of a job, and a job with bad rows."""
from __future__ import annotations

import numpy as np
import pytest

from tritforge.attentionports import attention_ports
from tritforge.hw.attention import AttentionUnit
from tritforge.ports import by_name
from tritforge.sim.attentionstep import AttentionStepModel

from lockstep import lockstep
from test_hw_attention import make_job, small_config


def lockstep_jobs(ucfg, jobs, **kw):
    """The unit and its model in lockstep over ``jobs`` (the streams' payload words, jobs
    back to back); returns (output beats taken after the last reset, the last cycle's
    flags)."""
    model = AttentionStepModel(ucfg)
    ports = by_name(model.ports)
    items = {n: [ports[n].unpack(w) for job in jobs for w in job[n]] for n in ("cmd", "q", "kv")}
    flags = {}
    taken = lockstep(AttentionUnit(ucfg), model, items, flags=flags, **kw)
    return taken["out"], flags


@pytest.mark.parametrize("seed", [1, 2])
def test_model_matches_rtl_every_cycle(seed):
    ucfg = small_config(group=2, lanes=4, block=3)
    rng = np.random.default_rng(seed)
    jobs = [make_job(ucfg, n, rng)[0] for n in (5, 1, 7)]
    outs, last = lockstep_jobs(ucfg, jobs, seed=seed, p_valid=0.7, p_ready=0.6, cycles=900)
    assert outs == 3 * ucfg.group * ucfg.beats and not last["busy"] and not last["err"]


def test_reset_in_the_middle_of_a_job():
    ucfg = small_config(group=2, lanes=4, block=3)
    jobs = [make_job(ucfg, 6, np.random.default_rng(7))[0]]
    outs, last = lockstep_jobs(ucfg, jobs, seed=3, p_valid=0.8, p_ready=0.8, reset_at=40, cycles=500)
    assert outs == ucfg.group * ucfg.beats and not last["busy"]


def test_bad_rows_match_too():
    ucfg = small_config(group=2, lanes=4, block=3)
    job = make_job(ucfg, 4, np.random.default_rng(8))[0]
    port = by_name(attention_ports(ucfg))["kv"]
    for i, fields in ((4, {"e": -60}), (9, {"elems": (-128, 5, 6, 7)}), (14, {"e": -40})):
        beat = dict(port.unpack(job["kv"][i]))
        beat.update(fields)
        job["kv"][i] = port.pack(beat)
    outs, last = lockstep_jobs(ucfg, [job], seed=4, p_valid=0.9, p_ready=0.9, cycles=300)
    assert last["err"] and outs == ucfg.group * ucfg.beats
