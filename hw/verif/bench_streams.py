"""cocotb test module: a component driven by whole streams, for the units without a
bus-functional model of their own (the attention unit, the decoder-layer top).

Run it with ``sim.cosim.run(build, "tritforge.hw.verif.bench_streams", ...)``. Parameters
arrive as JSON in ``TRITFORGE_COSIM_PARAMS``:

``job``       path of a JSON ``{"inputs": {port: [payload words]}, "outputs": {port: n},
              "flags": [flag port names]}`` — each input stream's words in order, the
              number of beats each output stream must give;
``stalls``    ``{"idle": p, "bp": p, "burst": n}`` (``tritforge.stalls``), ``seed``;
``reset_at``  optional list of cycles (counted from the first cycle after the power-on
              reset) at which a two-cycle synchronous reset is driven; every input stream
              then starts again from its first word and the outputs seen so far are
              forgotten, so the run must still end with exactly the job's outputs;
``pace``      optional ``{port: {"rate": beats per cycle, "latency": cycles, "burst": beats}}``:
              an input served by a memory at that pace (``streams.Pace``: the bandwidth
              as beats per cycle, the first beat's latency);
``limit``     the most cycles the run may take;
``report``    path of the JSON written at the end: ``outputs`` (port -> words),
              ``cycles`` (port -> the cycle of each transfer, inputs and outputs, counted
              from the last reset), ``flags`` (values after the run), ``total_cycles``,
              ``wall_s``.

Test ``streams``: runs the job; fails when an output gives more beats than expected or the
run does not end within ``limit``; the caller compares the report with the golden values.
"""
from __future__ import annotations

import json
import os
import time

import cocotb

from ...atomic import write_json
from ...stalls import stalls_for
from .streams import Bench, Pace

PARAMS_ENV = "TRITFORGE_COSIM_PARAMS"


@cocotb.test()
async def streams(dut):
    p = json.loads(os.environ[PARAMS_ENV])
    with open(p["job"]) as f:
        job = json.load(f)
    seed = int(p.get("seed", 0))
    st = stalls_for(p.get("stalls"), seed, sources=list(job["inputs"]), sinks=list(job["outputs"]))
    bench = Bench(dut)
    paces = {n: Pace(**v) for n, v in (p.get("pace") or {}).items()}
    srcs = {n: bench.source(n, st[n], paces.get(n)) for n in job["inputs"]}
    sinks = {n: bench.sink(n, st[n]) for n in job["outputs"]}
    await bench.reset()
    t0 = time.perf_counter()

    def restart():
        for n, s in srcs.items():
            s.flush()
            s.accepted.clear()
            s.send(job["inputs"][n])
        for s in sinks.values():
            s.items.clear()
        for pace in paces.values():
            pace.restart()

    restart()
    resets = sorted(int(c) for c in p.get("reset_at", []))
    origin = bench.cycle
    limit = int(p.get("limit", 10_000_000))
    while not all(len(sinks[n].items) >= k for n, k in job["outputs"].items()):
        if bench.cycle - origin >= limit:
            raise AssertionError(f"not finished after {limit} cycles: "
                                 + ", ".join(f"{n} {len(s.items)} of {job['outputs'][n]}" for n, s in sinks.items()))
        if resets and bench.cycle - origin == resets[0]:
            resets.pop(0)
            bench.rst_pending = 2
            await bench.step()
            await bench.step()
            restart()
            origin = bench.cycle
            continue
        await bench.step()
    end = bench.cycle
    for _ in range(16):                              # nothing more may come out
        await bench.step()
    for n, s in sinks.items():
        if len(s.items) != job["outputs"][n]:
            raise AssertionError(f"{n}: {len(s.items)} beats, expected {job['outputs'][n]}")
    flags = {n: int(getattr(dut, n).value) for n in job.get("flags", [])}
    report = {"outputs": {n: [w for _, w in s.items] for n, s in sinks.items()},
              "cycles": {**{n: [c - origin for c in s.accepted] for n, s in srcs.items()},
                         **{n: [c - origin for c, _ in s.items] for n, s in sinks.items()}},
              "flags": flags, "total_cycles": end - origin, "wall_s": time.perf_counter() - t0}
    if p.get("report"):
        write_json(p["report"], report)
