"""Benchmark: projected Qwen2.5-7B at d = 2 on the U280 board file (HBM2), whole token.

Prints, from ``sim.estimate.project`` (the cycle model's closed forms, the default energy
table, the memory model):
  * tokens/s against the memory-only bound (target >= 0.9 x bound; the issue quotes ~152 tok/s
    for the weights alone at peak bandwidth),
  * the DRAM-floor energy of the weights (weight bytes x 8 x 3.9 pJ/bit HBM2; the issue quotes
    ~0.095 J/token) and the whole-token energy with static power,
  * the same projection for every bundled shape, depth and board (a sweep), and how long a
    projection takes.
Exit status 1 when the 0.9 x bound target is missed.

    .venv/bin/python bench/bench_estimate.py
"""
from __future__ import annotations

import sys
import time

from tritforge.sim.boards import BOARDS, get_board
from tritforge.sim.energy import EnergyTable
from tritforge.sim.estimate import project, shape_names

ISSUE_TOKENS_PER_S = 152.0
ISSUE_J_PER_TOKEN = 0.095


def main() -> int:
    table = EnergyTable.load(None)
    board = get_board("u280")
    t0 = time.perf_counter()
    r = project("qwen2.5-7b", 2, board, table)
    took = time.perf_counter() - t0
    pt = r["per_token"]
    hbm = table.memory_pj_per_bit(board.memory)
    floor = pt["weight_bytes"] * 8 * hbm * 1e-12
    ratio = pt["tokens_per_s"] / pt["tokens_per_s_memory"]
    print(f"Qwen2.5-7B d=2 on {board.name} ({board.bandwidth_gbs:g} GB/s {board.memory}, R={board.rows}, "
          f"{board.clock_mhz:g} MHz), energy table {table.name} {table.version}")
    print(f"  weight bytes per token     {pt['weight_bytes'] / 1e9:10.4f} GB "
          f"({r['model']['linear_weights'] / 1e9:.3f} G weights, 7 bytes per 16 at d=2)")
    print(f"  bandwidth (memory) bound   {pt['tokens_per_s_memory']:10.2f} tok/s   (issue: ~{ISSUE_TOKENS_PER_S:g})")
    print(f"  compute bound              {pt['tokens_per_s_compute']:10.2f} tok/s")
    print(f"  projected                  {pt['tokens_per_s']:10.2f} tok/s = {ratio:.3f} x bound "
          f"(target >= 0.9: {'met' if ratio >= 0.9 else 'MISSED'})")
    print(f"  DRAM floor energy          {floor:10.5f} J/token  ({hbm:g} pJ/bit; issue: ~{ISSUE_J_PER_TOKEN:g})")
    static = pt["energy_breakdown_j"]["static_board"] + pt["energy_breakdown_j"]["dram_background"]
    print(f"  energy, whole token        {pt['energy_j']:10.5f} J/token  "
          f"(static {static:.5f}, dynamic beyond the weights' DRAM floor {pt['energy_j'] - floor - static:.5f})")
    print(f"  lm_head ({r['lm_head']['where']})           {r['lm_head']['bytes'] / 1e9:10.4f} GB/token, in the figures")
    print(f"  memory efficiency          {pt['memory_efficiency'] * 100:10.1f} % of {board.bandwidth_gbs:g} GB/s peak")
    print(f"  projection took            {took * 1e3:10.1f} ms")

    print("\nsweep: tok/s (bound) and J/token for every bundled shape x board x depth")
    print(f"{'model':<14} {'board':<11} " + " ".join(f"{'d=' + str(d):>26}" for d in (1, 2, 3, 4)))
    t0, n = time.perf_counter(), 0
    for shape in shape_names():
        for name in BOARDS:
            cells = []
            for d in (1, 2, 3, 4):
                p = project(shape, d, BOARDS[name], table)["per_token"]
                n += 1
                cells.append(f"{p['tokens_per_s']:9.3g} ({p['bound'][:3]}) {p['energy_j']:9.3g} J")
            print(f"{shape:<14} {name:<11} " + " ".join(f"{c:>26}" for c in cells))
    print(f"{n} projections in {time.perf_counter() - t0:.2f} s")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
