"""Synthesis of the units beside the engine (fpga/unitsynth.py, fpga/unitshell.py).

Default suite: the registered pin shell in Amaranth's simulator (each input port's payload
is what was shifted in on ``din``, each output port's valid and payload come out on its
``dout`` pins, the input readies and flags on ``status``), the shell around every unit of
``UNITS`` elaborates with the unit as module ``top.unit`` on a few pins, the committed unit
baselines load, and bad names are refused.

Marked ``synth`` (``make test-synth``; yowasp yosys + nextpnr, minutes to most of an hour
per file): every committed ``fpga/baselines/units/*.json`` re-measured with its unit,
lanes, seed, clock and router and compared with its tolerances (area +10 %, Fmax -10 %).
"""
from __future__ import annotations

import os

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Value
from amaranth.sim import Simulator

from tritforge.accelconfig import VectorConfig
from tritforge.errors import TritforgeError
from tritforge.fpga import unitsynth
from tritforge.fpga.unitshell import OUT_PIN_STAGES, PIN_STAGES, UnitShell
from tritforge.hw.rope import Rope

FILES = unitsynth.all_baselines()


def test_shell_moves_every_bit_through_registered_pins():
    unit = Rope(VectorConfig(), 8, x_bits=5, cs_bits=4)        # x: 6 bits, cs: 8, o: 7 (+ valid)
    top = UnitShell(unit, data_bits=4)
    assert top.ports == {"in": ["x", "cs"], "out": ["o"], "in_plain": [], "out_plain": []}
    assert top.pin_count() == 4 + 2 * 2 + (2 + 4) + (1 + 4)      # din, x and cs, o, status
    seen = {}

    async def bench(ctx):
        # cs: two 4-bit words, the first shifted in ends up in the high half
        for word in (0xA, 0x5):
            ctx.set(top.din, word)
            ctx.set(top.cs_shift, 1)
            await ctx.tick()
        ctx.set(top.cs_shift, 0)
        ctx.set(top.cs_valid, 1)
        await ctx.tick().repeat(PIN_STAGES + 2)                            # + the payload's register
        seen["cs"] = ctx.get(Value.cast(unit.cs.payload))
        seen["cs_valid"] = ctx.get(unit.cs.valid)
        # status: x.ready and cs.ready (Rope takes x first: x ready, cs not)
        ctx.set(top.status_load, 1)
        await ctx.tick().repeat(PIN_STAGES + 2 + OUT_PIN_STAGES)           # + the status bits' register
        seen["status"] = ctx.get(top.status_dout)
        # o: valid (0) and payload loaded, then shifted out 4 bits a cycle
        ctx.set(top.o_load, 1)
        await ctx.tick().repeat(PIN_STAGES + 1)
        ctx.set(top.o_load, 0)
        await ctx.tick().repeat(PIN_STAGES + OUT_PIN_STAGES)
        seen["o"] = [ctx.get(top.o_dout)]
        await ctx.tick()
        seen["o"].append(ctx.get(top.o_dout))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["cs"] == 0xA5 and seen["cs_valid"] == 1
    assert seen["status"] & 0b11 == 0b01
    assert seen["o"] == [0, 0]                                     # nothing in the unit yet


@pytest.mark.parametrize("name", ["rmsnorm", "int8quant", "rope", "silumul", "requant", "attention"])
def test_every_unit_elaborates_in_the_shell(name):
    top, params = unitsynth.build(name)
    text = rtlil.convert(top, name="top", emit_src=False)
    assert "module \\top.unit\n" in text
    assert top.pin_count() <= 64
    assert params["lanes"] == unitsynth.UNITS[name].lanes


def test_bad_names_and_lanes_are_refused():
    with pytest.raises(TritforgeError):
        unitsynth.build("gemv")
    with pytest.raises(TritforgeError):
        unitsynth.build("rope", lanes=3)                            # does not divide head_dim / 2
    with pytest.raises(TritforgeError):
        UnitShell(object())


def test_committed_unit_baselines_load():
    assert FILES, "no unit baselines committed"
    for path in FILES:
        base = unitsynth.load(path)
        assert os.path.basename(path) == unitsynth.file_name(base["unit"], base["lanes"], base["target"],
                                                             base["seed"])
        assert base["fmax_mhz"] is None or base["fmax_mhz"] > 0


def test_compare_flags_growth_and_slowdown():
    base = {"figures": {"lut": 1000, "ff": 1000, "bram": 2, "dsp": 4}, "fmax_mhz": 100.0}
    ok = {"unit": {"lut": 1099, "ff": 900, "bram": 4, "dsp": 6, "fmax_mhz": 91.0}}
    assert unitsynth.compare(ok, base) == []
    bad = {"unit": {"lut": 1101, "ff": 900, "bram": 5, "dsp": 4, "fmax_mhz": 89.0}}
    assert len(unitsynth.compare(bad, base)) == 3


@pytest.mark.synth
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p) for p in FILES])
def test_unit_baseline(path, tmp_path):
    base = unitsynth.load(path)
    report = unitsynth.rerun(base, str(tmp_path / "run"), pnr_timeout_s=2700)
    fails = unitsynth.compare(report, base)
    assert not fails, f"{os.path.basename(path)}: " + "; ".join(fails)
