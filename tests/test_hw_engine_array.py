"""The engine array (hw/engine_array.py): N engines of 4 rows behind broadcast command,
codebook and activation streams, each with its own weight and result streams.

An array of N engines is N engines: under random valid/ready patterns on every port (each
engine's weight and result streams their own), every engine's ports are sampled in every
cycle and replayed into the stepping model of its configuration (``StepModel``), which
must give the same outputs in every cycle; and every engine's results equal the golden
accumulators of its rows (rows ``first..first+3`` of every tile of R rows)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from tritforge.codec import layout
from tritforge.hw.broadcast import CreditBroadcast, RegisteredTree, tree_levels
from tritforge.hw.engine import GemvEngine
from tritforge.hw.engine_array import EngineArray, build_engine
from tritforge.hw.simdriver import _Top
from tritforge.hwconfig import CODEBOOK_BANK_WORDS, HwConfig
from tritforge.ports import IN, OUT, array_ports, engine_ports, ports_of
from tritforge.sim.stepmodel import Inputs, StepModel, make_job

from test_hw_engine import codebook


def test_ports_and_refusals():
    cfg = HwConfig(rows=16, organisation="array")
    names = [p.name for p in array_ports(cfg)]
    assert names == ["cmd", "cb", "act", "w0", "w1", "w2", "w3", "res0", "res1", "res2", "res3",
                     "err", "busy"]
    one = {p.name: p for p in engine_ports(cfg.slice_config(4))}
    ports = {p.name: p for p in ports_of(cfg)}
    assert ports["w2"].width == one["w"].width == 8 * layout.beat_bytes(2, 4)
    assert ports["res3"].fields == one["res"].fields
    assert cfg.engines == 4 and HwConfig(rows=16).engines == 1
    assert isinstance(build_engine(HwConfig(rows=4)), GemvEngine)
    with pytest.raises(ValueError, match="organisation"):
        GemvEngine(cfg)
    with pytest.raises(ValueError, match="organisation"):
        EngineArray(HwConfig(rows=16))
    with pytest.raises(ValueError):
        EngineArray(cfg, fanout=1)
    assert HwConfig.from_dict(cfg.to_dict()) == cfg


def test_tree_levels():
    assert [tree_levels(n, 2) for n in (1, 2, 3, 4, 8, 9)] == [1, 1, 2, 2, 3, 4]
    assert tree_levels(8, 4) == 2 and RegisteredTree(8, 5, 2).levels == 3


def test_credit_broadcast_delivers_every_item_in_order():
    """Random valid at the input, random ready per consumer: every consumer gets every
    item in order, and the input is never refused for longer than the queues need."""
    n, items = 3, list(range(1, 120))
    dut = CreditBroadcast(8, n, 4)
    top = _Top(dut)
    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    got = [[] for _ in range(n)]
    rng = random.Random(3)

    async def bench(ctx):
        i = 0
        for _ in range(1500):
            valid = i < len(items) and rng.random() < 0.8
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, items[i] if valid else rng.getrandbits(8))
            readies = [rng.random() < 0.5 for _ in range(n)]
            for j in range(n):
                ctx.set(dut.o[j].ready, readies[j])
            if valid and ctx.get(dut.i.ready):
                i += 1
            for j in range(n):
                if ctx.get(dut.o[j].valid) and readies[j]:
                    got[j].append(ctx.get(dut.o[j].payload))
            await ctx.tick()
        assert ctx.get(dut.idle)

    sim.add_testbench(bench)
    sim.run()
    assert got == [items] * n


def _sample(ctx, eng, ports):
    """The engine's port values this cycle: its ``Inputs`` record and its outputs (as
    ``hw.simdriver.PortSim`` observes them)."""
    rec = Inputs(rst=False)
    out = {}
    for p in ports:
        iface = getattr(eng, p.name)
        if not p.stream:
            out[p.name] = bool(ctx.get(iface))
            continue
        values = ctx.get(iface.payload)
        if p.dir == IN:
            setattr(rec, f"{p.name}_valid", bool(ctx.get(iface.valid)))
            out[f"{p.name}_ready"] = bool(ctx.get(iface.ready))
            if p.word:
                setattr(rec, p.record(p.fields[0]), int(values))
            else:
                for f in p.fields:
                    v = values[f.name]
                    setattr(rec, p.record(f), bool(v) if f.flag else int(v))
        else:
            setattr(rec, f"{p.name}_ready", bool(ctx.get(iface.ready)))
            out[f"{p.name}_valid"] = bool(ctx.get(iface.valid))
            for f in p.fields:
                v = values[f.name]
                out[p.record(f)] = (tuple(int(x) for x in v) if f.count
                                    else bool(v) if f.flag else int(v))
    return rec, out


def _array_jobs(cfg, rng, shapes):
    """Per job: the command, codebook, activation words, and per engine its beats and
    expected results (its rows of every tile of ``cfg.rows`` rows)."""
    jobs, xq = [], None
    for out, in_f, load in shapes:
        if load:
            xq = rng.integers(-128, 128, size=(cfg.vectors, in_f)).astype(np.int8)
            xq[0, :16] = -128
        q = rng.integers(-cfg.level, cfg.level + 1, size=(out, in_f)).astype(np.int8)
        k = rng.integers(0, 27, size=(out, in_f // 16)).astype(np.uint8)
        mant, shift = codebook(rng, cfg)
        tiles = cfg.tiles(out)
        qp = np.zeros((tiles * cfg.rows, q.shape[1]), dtype=q.dtype)
        kp = np.zeros((tiles * cfg.rows, k.shape[1]), dtype=k.dtype)
        qp[:out], kp[:out] = q, k
        per = []
        for first, rows in cfg.slices:
            sel = [t * cfg.rows + first + r for t in range(tiles) for r in range(rows)]
            job, exp = make_job(cfg.slice_config(rows), qp[sel], kp[sel], xq, mant, shift,
                                load_act=load)
            assert job.last_tile == tiles - 1
            per.append((job, exp))
        jobs.append(per)
    return jobs


@pytest.mark.parametrize("rows,vectors,shapes", [
    (8, 1, [(13, 48, True), (16, 48, False), (5, 32, True)]),
    (10, 2, [(20, 32, True), (7, 48, True)]),
])
def test_array_is_engines_cycle_by_cycle(rows, vectors, shapes):
    cfg = HwConfig(depth=2, rows=rows, vectors=vectors, max_in_features=64, max_out_features=32,
                   organisation="array")
    rng = np.random.default_rng(rows + vectors)
    jobs = _array_jobs(cfg, rng, shapes)
    dut = EngineArray(cfg)
    n = len(dut.engines)
    models = [StepModel(cfg.slice_config(rows)) for _, rows in cfg.slices]
    eports = [engine_ports(m.cfg) for m in models]
    records = [[] for _ in range(n)]
    results = [[[] for _ in jobs] for _ in range(n)]
    pick = random.Random(rows)
    top = _Top(dut)
    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")

    async def bench(ctx):
        send, phase, cb_i = 0, "cb", 0          # the job whose codebook / command goes next
        accepted, act = 0, [0, 0]               # jobs accepted; (job, word) of the act stream
        beat = [[0, 0] for _ in range(n)]        # per engine (job, beat)
        done = [0] * n                           # per engine jobs with all results
        for _ in range(6000):
            if min(done) == len(jobs):
                break
            lead = [per[0][0] for per in jobs]
            # codebook of job `send` into bank send % 2 once job send - 2 has its results
            cbv = cmdv = False
            if send < len(jobs) and min(done) >= send - 1 and pick.random() < 0.8:
                if phase == "cb":
                    cbv = True
                    ctx.set(dut.cb.payload, {"index": (send % 2) * CODEBOOK_BANK_WORDS + cb_i,
                                             "mantissa": lead[send].mantissa[cb_i],
                                             "shift": lead[send].shift[cb_i]})
                else:
                    cmdv = True
                    ctx.set(dut.cmd.payload, {"last_group": lead[send].last_group,
                                              "last_tile": lead[send].last_tile,
                                              "load_act": lead[send].load_act, "cb_bank": send % 2})
            ctx.set(dut.cb.valid, cbv)
            ctx.set(dut.cmd.valid, cmdv)
            while act[0] < accepted and act[1] == len(lead[act[0]].act_words):
                act[:] = [act[0] + 1, 0]
            actv = act[0] < accepted and pick.random() < 0.8
            ctx.set(dut.act.valid, actv)
            ctx.set(dut.act.payload, lead[act[0]].act_words[act[1]] if actv else pick.getrandbits(128))
            wv, rr = [], []
            for e in range(n):
                v = beat[e][0] < accepted and pick.random() < 0.7
                w = getattr(dut, f"w{e}")
                ctx.set(w.valid, v)
                ctx.set(w.payload, jobs[beat[e][0]][e][0].beats[beat[e][1]] if v
                        else pick.getrandbits(len(w.payload)))
                r = pick.random() < 0.6
                ctx.set(getattr(dut, f"res{e}").ready, r)
                wv.append(v)
                rr.append(r)
            for e, (_, eng) in enumerate(dut.engines):
                records[e].append(_sample(ctx, eng, eports[e]))
            # the array's handshakes
            if cbv and ctx.get(dut.cb.ready):
                cb_i += 1
                if cb_i == layout.CODEBOOK_SIZE:
                    phase, cb_i = "cmd", 0
            if cmdv and ctx.get(dut.cmd.ready):
                accepted, send, phase = accepted + 1, send + 1, "cb"
            if actv and ctx.get(dut.act.ready):
                act[1] += 1
            for e in range(n):
                if wv[e] and ctx.get(getattr(dut, f"w{e}").ready):
                    beat[e][1] += 1
                    if beat[e][1] == len(jobs[beat[e][0]][e][0].beats):
                        beat[e] = [beat[e][0] + 1, 0]
                res = getattr(dut, f"res{e}")
                if rr[e] and ctx.get(res.valid):
                    p = ctx.get(res.payload)
                    results[e][done[e]].append((int(p.vector), tuple(int(a) for a in p.acc),
                                                bool(p.last)))
                    done[e] += bool(p.last)
            await ctx.tick()
        assert min(done) == len(jobs), f"not finished: {done}"
        for _ in range(8):
            await ctx.tick()
        assert not ctx.get(dut.busy) and not ctx.get(dut.err)

    sim.add_testbench(bench)
    sim.run()
    for e in range(n):
        for j, per in enumerate(jobs):
            assert results[e][j] == per[e][1], f"engine {e} job {j}"
        outs = [p for p in eports[e] if p.dir == OUT and p.stream]
        for c, (rec, got) in enumerate(records[e]):
            want = vars(models[e].step(rec))
            for p in outs:       # the payload is the model's in every cycle (hw/ENGINE.md)
                got.update({p.record(f): None for f in p.fields if want[p.record(f)] is None})
            assert got == want, f"engine {e} cycle {c}: " + ", ".join(
                f"{k}: rtl {got[k]} model {want[k]}" for k in want if got[k] != want[k])


def test_array_verilog_lints_clean(tmp_path):
    """The generated array (two engines) lints clean as the engine does; its sidecar lists
    every engine's streams and the broadcast's cycles."""
    from test_hw_lint import lint
    from tritforge.hw import verilog

    cfg = HwConfig(depth=2, rows=8, max_in_features=64, max_out_features=32, organisation="array")
    out = verilog.write(cfg, str(tmp_path / "gen"))
    r = lint(out["verilog"])
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr
    meta = verilog.sidecar(cfg)
    names = {p["name"] for p in meta["ports"]}
    assert {"w0__payload", "w1__valid", "res1__payload", "res0__ready", "busy"} <= names
    assert meta["derived"]["engines"] == 2 and meta["derived"]["broadcast_cycles"]["cmd"] == 3
