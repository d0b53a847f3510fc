"""A variable-depth engine job for the packaged stream bench (``bench_streams``): the host of
hw/ENGINE.md "Variable-depth stream" as input words, and what the engine must answer.

:func:`var_stream_job` turns one matrix (a variable-depth ``TritTensor``) and blocks of T
activation vectors into back-to-back commands that share its codebook: the codebook's 27
``cb`` words, the commands offered from the cycle the models' host offers the first
(``sim.fastmodel.CommandFront``), the activation words, and the ``mem`` beats from the
cycle the issue side takes the first command, one a cycle: the stream's next beat of
``mem_bytes`` bytes (the last partial) in the cycles the models' memory delivers one at W
bytes a cycle (``floor((m+1) rho) - floor(m rho)``, ``sim.varmodel.beat_rate``), a beat of
``count = 0`` in the others. :meth:`VarJob.check` compares a bench report with the golden
accumulators and, for a run without stalls, every result beat's cycle with
``sim.varmodel.timeline`` (a tile's last column issued in c gives vector v's beat in
``c + v + pipeline_stages``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...codec import golden, layout
from ...codec.quantize import TritTensor
from ...hwconfig import HwConfig
from ...ports import by_name, var_engine_ports
from ...sim import varmodel


@dataclass
class VarJob:
    cfg: HwConfig
    job: dict            #: the bench's ``{"inputs", "outputs", "flags"}``
    pace: dict           #: the command and memory sources' start (``streams.Pace``)
    timeline: varmodel.VarTimeline
    want: list           #: per result beat (vector, accumulators of its R rows)
    cycles: list         #: per result beat, the cycle it is valid, from the bench's origin

    def results(self, report: dict) -> list:
        port = by_name(var_engine_ports(self.cfg))["res"]
        return [(b["vector"], list(b["acc"])) for b in map(port.unpack, report["outputs"]["res"])]

    def check(self, report: dict, cycles: bool = True) -> list[str]:
        """What differs between a bench report and the expected answer (empty: nothing)."""
        bad = []
        got = self.results(report)
        if got != self.want:
            i = next((i for i, (g, w) in enumerate(zip(got, self.want)) if g != w), min(len(got), len(self.want)))
            bad.append(f"result beat {i} of {len(self.want)}: got {got[i] if i < len(got) else None}, "
                       f"expected {self.want[i] if i < len(self.want) else None}")
        if report["flags"].get("err"):
            bad.append("err is high")
        if cycles:
            if report["cycles"]["cmd"][:1] != [self.timeline.accept[0]]:
                bad.append(f"first command accepted in cycle {report['cycles']['cmd'][:1]}, "
                           f"the models' host offers it in {self.timeline.accept[0]}")
            if report["cycles"]["res"] != self.cycles:
                i = next((i for i, (g, w) in enumerate(zip(report["cycles"]["res"], self.cycles)) if g != w), 0)
                bad.append(f"result beat {i} in cycle {report['cycles']['res'][i:i + 1]}, the models "
                           f"give {self.cycles[i]}")
        return bad


def mem_beats(cfg: HwConfig, streams, rate) -> list:
    """What the models' memory offers on ``mem``, one item a cycle, the next when one is
    taken: each of ``streams`` (byte arrays) cut into beats of ``mem_bytes`` (its last
    partial; the next stream starts a beat of its own), a beat when ``floor((m+1) rho)``
    are due after m items taken (``sim.varmodel.beat_rate``), else an empty one
    (``count = 0``)."""
    P, rho = cfg.mem_bytes, varmodel.beat_rate(cfg, rate)
    beats = [s[i:i + P] for s in streams for i in range(0, len(s), P)]
    out, sent = [], 0
    while sent < len(beats):
        if (len(out) + 1) * rho.numerator // rho.denominator > sent:
            out.append(beats[sent])
            sent += 1
        else:
            out.append(beats[0][:0])
    return out


def var_stream_job(cfg: HwConfig, t: TritTensor, blocks: list, rate, expected=None) -> VarJob:
    """The job of ``len(blocks)`` commands of matrix ``t`` (each block: T int8 activation
    vectors of ``t.in_padded``), the first writing the codebook into bank 0, at ``rate``
    bytes per cycle (``varmodel.stream_rate``). ``expected``: per block the (T, out)
    accumulators the engine must give (default: ``codec.golden``'s)."""
    if not cfg.variable:
        raise ValueError(f"var_stream_job: cfg.weight_stream is {cfg.weight_stream!r}, expected 'variable'")
    rate = varmodel.stream_rate(rate)
    if rate > cfg.mem_bytes:
        raise ValueError(f"stream rate {rate} bytes a cycle: the mem port carries {cfg.mem_bytes}")
    out = t.shape[0]
    ports = by_name(var_engine_ports(cfg))
    gd = t.group_depth if t.variable else np.full(t.k.shape, t.depth, np.uint8)
    data, starts = layout.var_stream_columns(t.q, t.k, gd, cfg.depth, cfg.rows)
    n = len(blocks)
    tl = varmodel.timeline(cfg, [varmodel.VarCommand(out, t.in_padded, np.diff(starts), codebook=j == 0)
                                 for j in range(n)], rate)
    ng = t.in_padded // layout.GROUP
    tiles = cfg.tiles(out)
    cmd = ports["cmd"].pack({"last_group": ng - 1, "last_tile": tiles - 1, "load_act": 1, "cb_bank": 0})
    cb = t.codebook
    cbw = [ports["cb"].pack({"index": e, "mantissa": int(m), "shift": int(s)})
           for e, (m, s) in enumerate(zip(cb.mantissa, cb.left_shift))]
    act = [layout.pack_activation_group(x[v, 16 * g:16 * g + 16])
           for x in blocks for v in range(cfg.vectors) for g in range(ng)]
    stream = np.tile(data, n)
    mem = [ports["mem"].pack({"data": int.from_bytes(b.tobytes(), "little"), "count": b.size})
           for b in mem_beats(cfg, [stream], rate)]
    job = {"inputs": {"cb": cbw, "cmd": [cmd] * n, "act": act, "mem": mem},
           "outputs": {"res": n * tiles * cfg.vectors}, "flags": ["err", "busy"]}
    # a paced source offers its first beat in cycle latency + 1 (streams.Pace)
    pace = {"cmd": {"rate": 1, "latency": tl.accept[0] - 1}, "mem": {"rate": 1, "latency": tl.taken[0] - 1}}
    want = []
    R = cfg.rows
    for j, x in enumerate(blocks):
        acc = golden.accumulators(t, x) if expected is None else np.asarray(expected[j])
        ref = np.pad(acc, ((0, 0), (0, tiles * R - out)))
        want += [(v, ref[v, r * R:(r + 1) * R].tolist()) for r in range(tiles) for v in range(cfg.vectors)]
    cycles = [int(c[ng * (tile + 1) - 1]) + v + cfg.pipeline_stages
              for c in tl.issue for tile in range(tiles) for v in range(cfg.vectors)]
    return VarJob(cfg, job, pace, tl, want, cycles)

