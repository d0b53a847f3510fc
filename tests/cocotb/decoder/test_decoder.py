"""cocotb bench of the trit decoder (hw/decoder.py) against codec.layout.

Parameters arrive as JSON in ``TRITFORGE_COSIM_PARAMS``: ``hwconfig`` (HwConfig fields),
``style`` (one of ``hw.decoder.STYLES``), ``seed``, ``beats`` (random beats per stall
pattern). Streams, stalls and the cycle loop are ``tritforge.hw.verif``'s; the payloads
are packed with the decoder's own Amaranth layouts (it has no sidecar).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np

from amaranth.lib import data

from tritforge.codec import layout
from tritforge.hw.decoder import TritDecoder
from tritforge.hw.verif import Bench, Stall
from tritforge.hwconfig import HwConfig

PARAMS = json.loads(os.environ["TRITFORGE_COSIM_PARAMS"])
CFG = HwConfig(**PARAMS["hwconfig"])
DEC = TritDecoder(CFG, style=PARAMS.get("style", "nibble"))
SEED = int(PARAMS.get("seed", 0))
#: (idle, back-pressure, burst) of the random_stalls streams
STALLS = [(0.0, 0.0, 1), (0.3, 0.0, 1), (0.0, 0.4, 3), (0.5, 0.5, 4)]


def pack(layout_, fields: dict) -> int:
    return layout_.const(fields).as_value().value


def unpack(layout_, bits: int):
    return data.Const(layout_, bits)


def expected(beat: bytes) -> int:
    """The decoder's output payload for one beat, from codec.layout (invalid bytes -> 0 trits)."""
    raw = np.frombuffer(beat, dtype=np.uint8)
    bad = raw >= layout.BYTE_LIMIT
    q, k = layout.decode_beat(np.where(bad, layout.ZERO_BYTE, raw), CFG.depth, CFG.rows)
    t = layout.to_trits(q, CFG.depth)                     # (R, 16, d)
    planes = [[[int(t[r, j, i]) for j in range(layout.GROUP)] for i in range(CFG.depth)]
              for r in range(CFG.rows)]
    return pack(DEC.out_layout, {"planes": planes, "k": [int(x) for x in k], "err": int(bad.any())})


def describe(bits: int) -> str:
    c = unpack(DEC.out_layout, bits)
    return f"k={[int(c['k'][r]) for r in range(CFG.rows)]} err={int(c['err'])}"


def beat_word(beat: bytes) -> int:
    return pack(DEC.in_layout, {"beat": int.from_bytes(beat, "little")})


def random_beats(rng: random.Random, n: int, p_bad: float) -> list[bytes]:
    out = []
    for _ in range(n):
        b = bytearray(rng.randrange(layout.BYTE_LIMIT) for _ in range(CFG.beat_bytes))
        if rng.random() < p_bad:
            b[rng.randrange(CFG.beat_bytes)] = rng.randrange(layout.BYTE_LIMIT, 256)
        out.append(bytes(b))
    return out


async def bench(dut):
    tb = Bench(dut)
    src = tb.source("i")
    snk = tb.sink("o")
    await tb.reset()
    return tb, src, snk


async def run_stream(tb, src, snk, beats: list[bytes], idle: Stall | None, bp: Stall | None,
                     check_latency: bool) -> None:
    src.idle, snk.backpressure = idle, bp
    src.accepted.clear()
    snk.items.clear()
    src.send(beat_word(b) for b in beats)
    await tb.run_until(lambda: len(snk.items) == len(beats), 20 * len(beats) + 50, "decoder stream")
    for n, (beat, (cyc, got)) in enumerate(zip(beats, snk.items)):
        want = expected(beat)
        assert got == want, (f"beat {n} ({beat.hex()}): got {describe(got)}, "
                             f"expected {describe(want)} (payload differs)")
        if check_latency:
            assert cyc == src.accepted[n] + DEC.latency, (
                f"beat {n}: accepted in cycle {src.accepted[n]}, out in cycle {cyc}; "
                f"latency {DEC.latency} expected")


@cocotb.test()
async def exhaustive_bytes(dut):
    """Every byte value 0..255 in every byte position of a beat; no stalls; exact latency."""
    beats = [bytes((i + 37 * b) % 256 for b in range(CFG.beat_bytes)) for i in range(256)]
    await run_stream(*await bench(dut), beats, None, None, check_latency=True)


@cocotb.test()
async def random_stalls(dut):
    """Seeded random beats (some with invalid bytes) under random idle and back-pressure."""
    rng = random.Random(SEED)
    tb, src, snk = await bench(dut)
    for n, (pi, pb, burst) in enumerate(STALLS):
        beats = random_beats(rng, int(PARAMS.get("beats", 64)), 0.2)
        await run_stream(tb, src, snk, beats, Stall(SEED + 10 * n, pi, burst),
                         Stall(SEED + 10 * n + 1, pb, burst), check_latency=(pi == 0 and pb == 0))


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset in the middle of a transfer empties the pipeline; the next stream is clean."""
    rng = random.Random(SEED + 99)
    tb = Bench(dut)
    src = tb.source("i", Stall(SEED, 0.2))
    snk = tb.sink("o", Stall(SEED + 1, 0.5, 2))
    await tb.reset()
    src.send(beat_word(b) for b in random_beats(rng, 16, 0.5))
    for _ in range(7):
        await tb.step()
    src.flush()
    await tb.reset(1)
    await tb.step()
    assert int(dut.o__valid.value) == 0, "o.valid still high after reset"
    snk.items.clear()
    src.accepted.clear()
    beats = random_beats(rng, 24, 0.3)
    src.send(beat_word(b) for b in beats)
    await tb.run_until(lambda: len(snk.items) == len(beats), 2000, "after reset")
    for n, (beat, (_, got)) in enumerate(zip(beats, snk.items)):
        assert got == expected(beat), f"after reset, beat {n}: got {describe(got)}"
