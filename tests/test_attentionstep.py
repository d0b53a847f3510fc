"""The attention unit's stepping model (sim/attentionstep.py) against the RTL
(hw/attention.py) in every cycle: random valid/ready, garbage payloads on idle cycles,
back-to-back jobs, a reset in the middle of a job, and a job with bad rows."""
from __future__ import annotations

import random

import numpy as np
import pytest

from tritforge.attentionports import attention_ports
from tritforge.hw.attention import AttentionUnit
from tritforge.hw.simdriver import PortSim
from tritforge.ports import by_name
from tritforge.sim.attentionstep import AttentionStepModel, Inputs

from test_hw_attention import make_job, small_config


class JobsDriver:
    """Offers each input port's beats in order with random idle cycles (random payloads
    then), random ``out`` back-pressure, and an optional reset at ``reset_at`` after which
    the jobs start again from the beginning."""

    def __init__(self, ucfg, jobs, seed, p_valid, p_ready, reset_at=None, cycles=3000):
        self.ports = by_name(attention_ports(ucfg))
        self.items = {n: sum((job[n] for job in jobs), []) for n in ("cmd", "q", "kv")}
        self.pos = dict.fromkeys(self.items, 0)
        self.rng = random.Random(seed)
        self.p_valid, self.p_ready = p_valid, p_ready
        self.reset_at, self.cycle, self.cycles = reset_at, 0, cycles
        self.records = []

    @property
    def done(self):
        return self.cycle >= self.cycles

    def inputs(self):
        rec = Inputs(rst=self.cycle == self.reset_at)
        for n, items in self.items.items():
            port = self.ports[n]
            valid = self.pos[n] < len(items) and self.rng.random() < self.p_valid
            word = items[self.pos[n]] if valid else self.rng.getrandbits(port.width)
            setattr(rec, f"{n}_valid", valid)
            for f, v in port.unpack(word).items():
                setattr(rec, f"{n}_{f}", v)
        rec.out_ready = self.rng.random() < self.p_ready
        return rec

    def observe(self, rec, out):
        self.records.append((rec, out))
        self.cycle += 1
        if rec.rst:
            self.pos = dict.fromkeys(self.items, 0)
            return
        for n in self.items:
            if getattr(rec, f"{n}_valid") and out[f"{n}_ready"]:
                self.pos[n] += 1


def lockstep(ucfg, jobs, **kw):
    drv = JobsDriver(ucfg, jobs, **kw)
    PortSim(AttentionUnit(ucfg), attention_ports(ucfg)).run(drv, max_cycles=drv.cycles)
    model = AttentionStepModel(ucfg)
    outs = 0
    for n, (rec, rtl) in enumerate(drv.records):
        want = vars(model.step(rec))
        assert rtl == want, f"cycle {n}: " + ", ".join(
            f"{k}: rtl {rtl[k]} model {want[k]}" for k in want if rtl[k] != want[k])
        outs += rtl["out_valid"] and rec.out_ready
    return outs, drv.records[-1][1]


@pytest.mark.parametrize("seed", [1, 2])
def test_model_matches_rtl_every_cycle(seed):
    ucfg = small_config(group=2, lanes=4, block=3)
    rng = np.random.default_rng(seed)
    jobs = [make_job(ucfg, n, rng)[0] for n in (5, 1, 7)]
    outs, last = lockstep(ucfg, jobs, seed=seed, p_valid=0.7, p_ready=0.6, cycles=900)
    assert outs == 3 * ucfg.group * ucfg.beats and not last["busy"] and not last["err"]


def test_reset_in_the_middle_of_a_job():
    ucfg = small_config(group=2, lanes=4, block=3)
    jobs = [make_job(ucfg, 6, np.random.default_rng(7))[0]]
    outs, last = lockstep(ucfg, jobs, seed=3, p_valid=0.8, p_ready=0.8, reset_at=40, cycles=500)
    assert outs == ucfg.group * ucfg.beats and not last["busy"]


def test_bad_rows_match_too():
    ucfg = small_config(group=2, lanes=4, block=3)
    job = make_job(ucfg, 4, np.random.default_rng(8))[0]
    port = by_name(attention_ports(ucfg))["kv"]
    for i, fields in ((4, {"e": -60}), (9, {"elems": (-128, 5, 6, 7)}), (14, {"e": -40})):
        beat = dict(port.unpack(job["kv"][i]))
        beat.update(fields)
        job["kv"][i] = port.pack(beat)
    outs, last = lockstep(ucfg, [job], seed=4, p_valid=0.9, p_ready=0.9, cycles=300)
    assert last["err"] and outs == ucfg.group * ucfg.beats
