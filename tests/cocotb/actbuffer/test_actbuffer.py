"""cocotb bench of the activation buffer (hw/actbuffer.py) against its contract.

Parameters arrive as JSON in ``TRITFORGE_COSIM_PARAMS``: ``words``, ``width``, ``fabric``
(the fabric registers in front: latency 3, else 2), ``seed``. Every word is written once
(random data, random cycles without a write), then read back in a random order under a
random read enable, and ``r_data`` is compared in every cycle with a model of the
registers: per enabled edge the output register takes the block's read, the block reads
the word at its address register (at the fabric address register, or at ``r_addr``),
``r_data`` holding while ``r_en`` is low. Then words are rewritten while others are read,
and read back once the writes have landed.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

PARAMS = json.loads(os.environ["TRITFORGE_COSIM_PARAMS"])
WORDS, WIDTH, FABRIC = int(PARAMS["words"]), int(PARAMS["width"]), bool(PARAMS["fabric"])
RNG = random.Random(int(PARAMS.get("seed", 0)))


async def edge(dut):
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)


async def write_all(dut, mem):
    for a in range(WORDS):
        while RNG.random() < 0.2:
            dut.w_en.value = 0
            await edge(dut)
        mem[a] = RNG.randrange(1 << WIDTH)
        dut.w_en.value, dut.w_addr.value, dut.w_data.value = 1, a, mem[a]
        await edge(dut)
    dut.w_en.value = 0
    await edge(dut)
    await edge(dut)


async def read_check(dut, mem, addrs, rewrite=()):
    """Reads ``addrs`` (each offered until an enabled edge takes it) and checks ``r_data``
    every cycle; ``rewrite``: (address, word) writes, one per cycle, of other addresses."""
    addr_q = latch = out = None
    pending, writes, taken = list(addrs), list(rewrite), 0
    while taken < len(addrs) + 3 or writes:
        en = RNG.random() < 0.7
        addr = pending[0] if pending else 0
        dut.r_en.value, dut.r_addr.value = int(en), addr
        w = writes.pop(0) if writes else None
        dut.w_en.value = int(w is not None)
        if w is not None:
            dut.w_addr.value, dut.w_data.value = w
        await edge(dut)
        if en:
            taken += 1
            cur = pending.pop(0) if pending else None
            src = addr_q if FABRIC else cur
            out, latch, addr_q = latch, (None if src is None else mem[src]), cur
        if out is not None:
            got = int(dut.r_data.value)
            assert got == out, f"read {got:#x}, expected {out:#x}"
    for a, word in rewrite:
        mem[a] = word
    dut.w_en.value = 0
    await edge(dut)
    await edge(dut)


@cocotb.test()
async def test_writes_then_reads(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    dut.w_en.value = dut.r_en.value = 0
    await edge(dut)
    mem = {}
    await write_all(dut, mem)
    order = list(range(WORDS))
    RNG.shuffle(order)
    await read_check(dut, mem, order)
    half = WORDS // 2
    rewrite = [(a, RNG.randrange(1 << WIDTH)) for a in order[:half]]
    await read_check(dut, mem, order[half:], rewrite)
    await read_check(dut, mem, order[:half])
