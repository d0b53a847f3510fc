"""Variable-depth engine (issue 21) on the embedded SmolLM2-135M: bytes per token and KV260
tokens/s of uniform-d2, uniform-d3 and mixed configurations side by side (prints a table;
not a test).

Each configuration is quantized here (``tritforge`` mode; the mixed ones by the plain
weight error, ``codec.mixeddepth`` with ``sensitivity weight``: the bytes of a
``mixed-d<D>-bpw<B>`` target do not depend on the error weights; ``bench/bench_mixed.py``
has their perplexities with the Fisher weights). Bytes per token: the hardware stream of
all quantized matrices at the KV260's R = 16 (``layout.stream_beats`` beats for the
uniform configs, ``layout.var_stream_columns`` columns for the mixed ones, whose
per-column padding the file stream does not have), each read once per decoded token.
Tokens/s and J/token: the whole token on the KV260 board description
(``sim.estimate.project`` at context 0: the uniform engine, or the variable-depth engine
at the measured column-stream bits per weight, fed at the board's sustained bytes per
cycle, ``sim.varmodel``).

Run: ``nice .venv/bin/python bench/bench_varengine.py [--configs uniform-d2,...]``
"""
from __future__ import annotations

import argparse
import time

CONFIGS = "uniform-d2,uniform-d3,mixed-d3-bpw4.6,mixed-d3-bpw4.08,mixed-d3-bpw3.3,mixed-d2-bpw2.975"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=CONFIGS)
    ap.add_argument("--board", default="kv260")
    args = ap.parse_args()
    from tritforge.codec.checkpoint import load_checkpoint
    from tritforge.codec.modelquant import parse_configs, quantize_mixed, quantize_model
    from tritforge.sim import boards, estimate, varmodel
    from tritforge.sim.energy import EnergyTable
    from tritforge.commands.estimate import board_table

    board = boards.get_board(args.board)
    table = EnergyTable.load(board_table(board))
    ck = load_checkpoint("default")
    names = ck.linear_names
    configs = parse_configs(args.configs)
    rows = []
    for c in configs:
        t0 = time.perf_counter()
        if c.mixed is None:
            tensors = quantize_model(ck.tensors, names, [c.depth], "tritforge", progress=False)[c.depth].tensors
        else:
            tensors = quantize_mixed(ck.tensors, names, [c.mixed], "tritforge", None, progress=False,
                                     sensitivity="weight")[c.name].tensors
        cfg = board.hwconfig(c.depth)
        if c.mixed is None:
            nbytes = sum(cfg.tiles(t.shape[0]) * t.groups * cfg.beat_bytes for t in tensors.values())
            bpw = None
        else:
            nbytes = sum(int(varmodel.column_bytes(cfg, t.group_depth).sum()) for t in tensors.values())
            bpw = nbytes * 8 / sum(cfg.tiles(t.shape[0]) * cfg.rows * t.in_padded for t in tensors.values())
        r = estimate.project("smollm2-135m", c.depth, board, table, stream_bpw=bpw)
        pt = r["per_token"]
        rows.append((c.name, nbytes, bpw, pt["weight_bytes"], pt["tokens_per_s"], pt["energy_j"],
                     time.perf_counter() - t0))
    print(f"SmolLM2-135M on {board.name} (R={board.rows}, T={board.vectors}, {board.clock_mhz:g} MHz, "
          f"W = {float(varmodel.board_rate(board)):.2f} B/cycle sustained)")
    print(f"{'config':<20} {'stream MB/token':>16} {'stream bpw':>11} {'projected MB':>13} "
          f"{'tokens/s':>9} {'mJ/token':>9} {'quantize s':>11}")
    for name, nb, bpw, pb, tps, ej, s in rows:
        print(f"{name:<20} {nb / 1e6:>16.3f} {'-' if bpw is None else format(bpw, '.3f'):>11} {pb / 1e6:>13.3f} "
              f"{tps:>9.1f} {ej * 1e3:>9.2f} {s:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
