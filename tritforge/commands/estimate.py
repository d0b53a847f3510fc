"""``tritforge estimate``: whole-token tokens/s and J/token of a model shape on a board."""
from __future__ import annotations

import os

from ..errors import TritforgeError
from ._paths import shown

HELP = "project whole-token tokens/s and J/token (engine, attention, vector unit, lm_head, memory, static power)"


def add_arguments(p) -> None:
    p.add_argument("--model-config", metavar="PATH|NAME",
                   help="an HF config.json (or its folder), or a bundled shape (see --list)")
    p.add_argument("--depth", type=int, default=2, metavar="D", help="trits per weight, 1..4 (default 2)")
    p.add_argument("--config", metavar="NAME",
                   help="uniform-dN (as --depth N) or mixed-d<D>-bpw<B>: variable-depth matrices of base "
                        "depth D at B bits per weight on the variable-depth engine")
    p.add_argument("--board", default="default", metavar="NAME|FILE",
                   help="a bundled board (kv260 default, u280, ulx3s, icebreaker) or a board TOML file")
    p.add_argument("--hw", metavar="FILE",
                   help="a HwConfig JSON (or generate sidecar): its engine (R, T, buffer, clock) on --board's memory")
    p.add_argument("--accel", metavar="FILE", help="an AccelConfig JSON (attention, vector unit, lm_head)")
    p.add_argument("--lm-head", choices=("int8", "ternary", "host-fp16"),
                   help="where the lm_head runs (default: the AccelConfig's, int8)")
    p.add_argument("--context", type=int, default=0, metavar="N",
                   help="tokens in the KV cache for the decode token (default 0: shape only)")
    p.add_argument("--energy-table", metavar="FILE", help="action-energy table (TOML); default: the board's")
    p.add_argument("--zero-trit-fraction", type=float, metavar="F",
                   help="fraction of zero weight trits (default: measured on SmolLM2-135M for this depth)")
    p.add_argument("--prompt-tokens", type=int, default=0, metavar="N",
                   help="also estimate the prefill of an N-token prompt (time to first token)")
    p.add_argument("--vectors", type=int, metavar="T", help="activation vectors per weight fetch in decode "
                                                            "(default: the board's T)")
    p.add_argument("--prefill-vectors", type=int, metavar="T",
                   help="activation vectors per weight fetch in prefill (default: the board's T)")
    p.add_argument("--json", metavar="FILE", help="also write the full projection (every layer) as JSON")
    p.add_argument("--report", metavar="DIR", help="also write the HTML/Markdown report with plots and a context sweep")
    p.add_argument("--list", action="store_true", help="list the boards and bundled model shapes, then exit")


def _list() -> int:
    from ..sim.boards import BOARDS, DEFAULT_BOARD
    from ..sim.estimate import shape_names

    print("boards (sim/data/boards/*.toml):")
    for b in BOARDS.values():
        mark = " (default)" if b.name == DEFAULT_BOARD else ""
        arr = f"R={b.rows}" + (f"x{b.engines}" if b.engines > 1 else "")
        print(f"  {b.name:<11} {b.clock_mhz:>5g} MHz  {b.bandwidth_gbs:>7g} GB/s {b.memory:<9} "
              f"({100 * b.memory_system().efficiency():.1f} % sustained) {arr:<6} T={b.vectors}  "
              f"static {b.static_w:g} W  {b.title}{mark}")
    print("model shapes: " + ", ".join(shape_names()))
    return 0


def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f} MB"


def format_projection(r: dict) -> str:
    """The printed table of a ``sim.estimate.project`` result."""
    m, b, pt, t, hw = r["model"], r["board"], r["per_token"], r["energy_table"], r["hwconfig"]
    mm = b["memory_model"]
    lines = [
        f"model    {m['name']} ({m['arch']}, {m['layers']} layers, hidden {m['hidden']}, "
        f"intermediate {m['intermediate']}, {m['heads']}/{m['kv_heads']} heads, vocab {m['vocab']}, "
        f"max context {m['max_context']:,}): {m['linear_weights'] / 1e9:.3f} G quantized weights",
        f"config   {r['config']} on {b['name']} ({b['title']}), context {r['context']:,}",
        f"array    R={hw['rows']} rows x 16 lanes" + (f" x {hw['engines']} engines" if hw.get("engines", 1) > 1 else "")
        + f", T={hw['vectors']}, {b['clock_mhz']:g} MHz, {hw['derived']['beat_bytes']} B/beat; "
        f"lm_head {r['accelconfig']['lm_head']}",
        f"memory   {b['memory']} {mm['peak_gbs']:g} GB/s peak, {mm['efficiency'] * 100:.1f} % sustained "
        f"= {mm['sustained_gbs']:.2f} GB/s (refresh {mm['refresh_fraction'] * 100:.2f} %, "
        f"row switch {mm['row_overhead_ns']:.1f} ns/row)",
        f"power    board static {pt['static_w']:g} W + DRAM background {pt['dram_background_w']:g} W",
        f"energy   table {t['name']} {t['version']} ({shown(t['path'])})",
    ]
    if b.get("hw_note"):
        lines.append(f"hw       {b['hw_note']}")
    lines += ["", f"{'matrix':<17} {'out x in':>15} {'count':>5} {'cycles':>9} {'compute us':>11} "
                  f"{'memory us':>10} {'bound':>8} {'energy uJ':>10}"]
    for k in r["kinds"]:
        lines.append(f"{k['name']:<17} {k['out']:>6} x {k['in']:<6} {k['count']:>5} {k['cycles']:>9,} "
                     f"{k['compute_s'] * 1e6:>11.3f} {k['memory_s'] * 1e6:>10.3f} {k['bound']:>8} "
                     f"{sum(k['energy_pj'].values()) * 1e-6:>10.3f}")
    lines += ["", f"{'unit (per token)':<17} {'cycles':>12} {'compute us':>11} {'memory us':>10} "
                  f"{'time us':>10} {'bytes':>12} {'energy mJ':>10}"]
    for u in ("engine", "attention", "vector", "lm_head"):
        d = pt["units"][u]
        lines.append(f"{u:<17} {d['cycles']:>12,} {d['compute_s'] * 1e6:>11.1f} {d['memory_s'] * 1e6:>10.1f} "
                     f"{d['time_s'] * 1e6:>10.1f} {_mb(d['read_bytes'] + d['write_bytes']):>12} "
                     f"{d['energy_j'] * 1e3:>10.4f}")
    st = pt["units"]["static"]
    lines.append(f"{'static + DRAM bg':<17} {'':>12} {'':>11} {'':>10} {st['time_s'] * 1e6:>10.1f} {'':>12} "
                 f"{st['energy_j'] * 1e3:>10.4f}")
    binds = {"compute": "", "memory": ""}
    binds[pt["bound"]] = "   <- binds"
    by = pt["bytes"]
    lm = r["lm_head"]
    total = pt["energy_j"]
    share = sorted(pt["energy_breakdown_j"].items(), key=lambda kv: -kv[1])
    top = ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in share[:4] if v > 0) if total else "-"
    fit = r["memory_fit"]
    lines += [
        "",
        f"bytes    weights {_mb(by['weights'])}, K/V read {_mb(by['kv_read'])}, K/V write {_mb(by['kv_write'])}, "
        f"lm_head {_mb(by['lm_head'])} ({lm['where']}" + ("" if lm["on_bus"] else ", on the host") + "), "
        f"embedding {by['embedding']:,} B, logits out {by['logits_out']:,} B; on the bus {_mb(pt['bytes_on_bus'])}",
        f"per token  {pt['cycles']:,} cycles ({pt['layers_memory_bound']} matrices memory-bound, "
        f"{pt['layers_compute_bound']} compute-bound)",
        f"  compute only    {pt['tokens_per_s_compute']:12.2f} tok/s{binds['compute']}",
        f"  memory only     {pt['tokens_per_s_memory']:12.2f} tok/s{binds['memory']}",
        f"  peak bandwidth  {pt['peak_bound_tokens_per_s']:12.2f} tok/s (every byte at 100 % of peak)",
        f"  estimate        {pt['tokens_per_s']:12.2f} tok/s (schedule: stages in order, each max(compute, memory))",
        f"  energy          {total:12.5f} J/token = {pt['power_w']:.2f} W ({top})",
        f"  memory fit      {fit['total_bytes'] / 2**30:.3f} GiB of {fit['capacity_bytes'] / 2**30:.3f} GiB: "
        + ("fits" if fit["fits"] else "DOES NOT FIT")
        + f" (weights {fit['weight_bytes'] / 2**30:.3f}, embeddings {fit['embedding_bytes'] / 2**30:.3f}, "
          f"lm_head {fit['lm_head_bytes'] / 2**30:.3f}, KV cache at {fit['kv_context']:,} tokens "
          f"{fit['kv_cache_bytes'] / 2**30:.3f}, buffers {fit['buffer_bytes'] / 2**30:.4f})",
    ]
    pf = r.get("prefill")
    if pf:
        lines.append(f"  prefill         {pf['prompt_tokens']} prompt tokens in {pf['commands_per_matrix']} "
                     f"command(s) of T={pf['vectors']} per matrix: {pf['cycles']:,} cycles, time to first "
                     f"token {pf['time_s'] * 1e3:.3f} ms ({pf['tokens_per_s']:.2f} tok/s, {pf['bound']}-bound), "
                     f"{pf['energy_j']:.5f} J")
    a = r["assumptions"]
    lines.append(f"  assumptions     zero-trit fraction {a['zero_trit_fraction']}, {a['load_act']}; {a['schedule']}; "
                 f"not counted: {a['not_counted']}")
    return "\n".join(lines)


def run(args) -> int:
    if args.list:
        return _list()
    from ..accelconfig import AccelConfig
    from ..atomic import write_json
    from ..hwconfig import HwConfig
    from ..sim import estimate
    from ..sim.boards import get_board, with_hwconfig
    from ..sim.energy import EnergyTable
    from ..sim.report import render

    if not args.model_config:
        raise TritforgeError("--model-config: required (a config.json path or a bundled shape; see --list)")
    if args.depth not in (1, 2, 3, 4):
        raise TritforgeError(f"--depth {args.depth}: expected 1, 2, 3 or 4")
    if args.prompt_tokens < 0:
        raise TritforgeError(f"--prompt-tokens {args.prompt_tokens}: expected 0 or more")
    if args.context < 0:
        raise TritforgeError(f"--context {args.context}: expected 0 or more")
    stream_bpw = None
    if args.config:
        args.depth, stream_bpw = estimate.config_stream(args.config)
    board = get_board(args.board)
    note = ""
    if args.hw:
        cfg = HwConfig.from_json(args.hw)
        if cfg.depth != args.depth:
            raise TritforgeError(f"--hw {args.hw}: hardware depth d={cfg.depth}, but --depth is {args.depth}")
        note = (f"engine from {shown(args.hw)} (R={cfg.rows}, T={cfg.vectors}, {cfg.clock_mhz:g} MHz) on board "
                f"{board.name}'s memory ({board.memory}, {board.bandwidth_gbs:g} GB/s) and static power "
                f"(--board {args.board})")
        board = with_hwconfig(board, cfg, os.path.basename(args.hw))
    table = EnergyTable.load(args.energy_table if args.energy_table else board_table(board))
    accel = AccelConfig.from_json(args.accel) if args.accel else None
    common = dict(zero_trit_fraction=args.zero_trit_fraction, vectors=args.vectors,
                  prefill_vectors=args.prefill_vectors, accel=accel, lm_head=args.lm_head,
                  stream_bpw=stream_bpw)
    result = estimate.project(args.model_config, args.depth, board, table, prompt_tokens=args.prompt_tokens,
                              context=args.context, **common)
    if note:
        result["board"]["hw_note"] = note
    sweep = None
    if args.report:
        sweep = estimate.context_sweep(args.model_config, args.depth, board, table, **common)
        result["context_sweep"] = sweep
    text = format_projection(result)
    if args.report:
        render(result, args.report)
    if args.json:
        write_json(args.json, result)
    print(text)
    if args.json:
        print(f"json     {args.json}")
    if args.report:
        print(f"report   {args.report}/report.html")
    return 0


def board_table(board) -> str:
    """The path of ``board``'s own energy table (``sim/data/energy/``); `sweep` uses it too."""
    from importlib import resources

    return str(resources.files("tritforge.sim").joinpath("data", "energy", board.energy_table))
