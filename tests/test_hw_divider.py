"""Divider (hw/divider.py, non-restoring) in Amaranth's simulator: quotient and remainder of
random and extreme operands under stalls, its cycles against sim.vectorcycles, parameter
checks, Verilog."""
from __future__ import annotations

import random

import pytest

from tritforge.hw.divider import Divider
from tritforge.sim.vectorcycles import divider_cycles
from tritforge.vectorports import divider_ports

from vectorbench import convert, run_ports


def operands(num_bits, den_bits, quo_bits, count, seed):
    rng = random.Random(seed)
    top = (1 << den_bits) - 1
    cases = [(0, 1), (0, top), (min(1 << num_bits, top << quo_bits) - 1, top),
             ((1 << quo_bits) - 1, 1), (top, top), (top - 1, top)]
    while len(cases) < count:
        den = rng.randrange(1, top + 1)
        cases.append((rng.randrange(0, min(1 << num_bits, den << quo_bits)), den))
    return [{"num": a, "den": b} for a, b in cases]


@pytest.mark.parametrize("num_bits,den_bits,quo_bits", [(20, 8, 12), (16, 16, None), (62, 39, 24), (5, 3, 1)])
def test_random_divisions_match(num_bits, den_bits, quo_bits):
    d = Divider(num_bits, den_bits, quo_bits)
    ports = divider_ports(num_bits, den_bits, d.quo_bits)
    items = operands(num_bits, den_bits, d.quo_bits, 24, num_bits)
    r = run_ports(d, ports, {"i": items}, {"o": len(items)}, seed=num_bits, p_valid=0.6, p_ready=0.6)
    assert [(o["quo"], o["rem"]) for o in r.out["o"]] == [divmod(x["num"], x["den"]) for x in items]


@pytest.mark.parametrize("quo_bits", [1, 12, 24])
def test_cycles_match_closed_form(quo_bits):
    d = Divider(40, 16, quo_bits)
    r = run_ports(d, divider_ports(40, 16, quo_bits), {"i": [{"num": 5, "den": 3}]}, {"o": 1})
    assert r.cycles == divider_cycles(quo_bits) == d.latency + 1
    # back to back: a new division starts in the cycle the result is taken
    items = [{"num": 100 + k, "den": 7} for k in range(4)]
    r = run_ports(Divider(40, 16, quo_bits), divider_ports(40, 16, quo_bits), {"i": items}, {"o": 4})
    assert r.cycles == 4 * d.latency + 1


@pytest.mark.parametrize("args,exc", [(("8", 4), TypeError), ((0, 4), ValueError), ((8, True), TypeError),
                                      ((8, 4, 9), ValueError), ((8, 4, 0), ValueError)])
def test_bad_parameters_are_refused(args, exc):
    with pytest.raises(exc):
        Divider(*args)


def test_converts_to_verilog():
    convert(Divider(62, 39, 24), divider_ports(62, 39, 24))
