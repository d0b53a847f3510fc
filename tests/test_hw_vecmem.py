"""hw/vecmem.py in Amaranth's simulator: reads give the written elements in address order
(strided and not), ``last`` on the n-th, under random ready; a read command is taken only
once the previous read's elements have all left (the skid buffer's too); the first
element comes READ_LATENCY cycles after the command. (The ``ecp5`` primitives' block RAMs
are instances Amaranth's simulator cannot run: tests/test_cocotb_actbuffer.py runs the
buffer they make, at the vector memory's port width, on Verilator.)"""
from __future__ import annotations

import random

from amaranth.sim import Simulator

from tritforge.hw.vecmem import VectorMemory
from tritforge.sim.layercycles import READ_LATENCY

DEPTH, CHUNK, STRIDE = 48, 4, 12


def expected(base, n, strided):
    """The addresses of a read: chunks of CHUNK at a stride of STRIDE, or one by one."""
    if not strided:
        return [base + i for i in range(n)]
    return [base + (i // CHUNK) * STRIDE + i % CHUNK for i in range(n)]


def test_reads_under_random_ready():
    dut = VectorMemory(16, DEPTH, readers=2, chunk=CHUNK, stride=STRIDE)
    words = [(i * 2654435761) % 65536 - 32768 for i in range(DEPTH)]
    rng = random.Random(7)
    # short reads back to back, so that a read's last element often waits in the skid
    # buffer while the next command is offered; strided ones within the memory
    reads = {r: [(0, 10, 0), (13, 7, 1), (2, 1, 0)] + [(rng.randrange(12), rng.randrange(1, 9), rng.randrange(2))
                                                      for _ in range(30)] for r in (0, 1)}
    got = {0: [], 1: []}
    starts = {0: [], 1: []}

    async def bench(ctx):
        for a, x in enumerate(words):
            ctx.set(dut.wr.valid, 1)
            ctx.set(dut.wr.payload, {"addr": a, "x": x})
            await ctx.tick()
        ctx.set(dut.wr.valid, 0)
        todo = {r: list(cmds) for r, cmds in reads.items()}
        cycle = 0
        while any(todo.values()) or sum(len(g) for g in got.values()) < sum(
                n for cmds in reads.values() for _, n, _ in cmds):
            for r in (0, 1):
                cmd, out = getattr(dut, f"rd{r}_cmd"), getattr(dut, f"rd{r}")
                ready = rng.random() < 0.6
                ctx.set(out.ready, ready)
                if ctx.get(out.valid) and ready:
                    got[r].append((ctx.get(out.payload.x), ctx.get(out.payload.last), cycle))
                ctx.set(cmd.valid, bool(todo[r]))
                if todo[r]:
                    base, n, strided = todo[r][0]
                    ctx.set(cmd.payload, {"base": base, "n": n, "strided": strided})
                    if ctx.get(cmd.ready):
                        # the reader is idle: every element of its reads so far has left
                        done = sum(k for _, k, _ in reads[r][:len(reads[r]) - len(todo[r])])
                        assert len(got[r]) == done, (r, cycle)
                        starts[r].append(cycle)
                        todo[r].pop(0)
            await ctx.tick()
            cycle += 1
            assert cycle < 2000

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for r, cmds in reads.items():
        want, k = [], 0
        for (base, n, strided), start in zip(cmds, starts[r]):
            addrs = expected(base, n, strided)
            want += [(words[a], i == n - 1) for i, a in enumerate(addrs)]
            assert got[r][k][2] >= start + READ_LATENCY
            k += n
        assert [(x, last) for x, last, _ in got[r]] == want


def test_first_element_after_read_latency():
    dut = VectorMemory(16, DEPTH)
    seen = []

    async def bench(ctx):
        ctx.set(dut.rd0.ready, 1)
        ctx.set(dut.rd0_cmd.valid, 1)
        ctx.set(dut.rd0_cmd.payload, {"base": 3, "n": 4, "strided": 0})
        for cycle in range(10):
            if ctx.get(dut.rd0.valid):
                seen.append(cycle)
            await ctx.tick()
            ctx.set(dut.rd0_cmd.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [READ_LATENCY + i for i in range(4)]
