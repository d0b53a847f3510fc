"""``tritforge estimate``: project tokens/s and J/token of a model shape on a board preset."""
from __future__ import annotations

from ..errors import TritforgeError
from ._paths import shown

HELP = "project tokens/s (compute and memory bounds) and J/token of a model shape on a board"


def add_arguments(p) -> None:
    p.add_argument("--model-config", metavar="PATH|NAME",
                   help="an HF config.json (or its folder), or a bundled shape: qwen2.5-7b, qwen2.5-32b, "
                        "smollm2-135m, llama-3.1-8b, llama-3.2-1b")
    p.add_argument("--depth", type=int, default=2, metavar="D", help="trits per weight, 1..4 (default 2)")
    p.add_argument("--board", default="default", metavar="NAME",
                   help="board preset: kv260 (default), u280, ulx3s, icebreaker")
    p.add_argument("--energy-table", metavar="FILE", help="action-energy table (TOML); default Horowitz 45 nm")
    p.add_argument("--zero-trit-fraction", type=float, metavar="F",
                   help="fraction of zero weight trits (default: measured on SmolLM2-135M for this depth)")
    p.add_argument("--prompt-tokens", type=int, default=0, metavar="N",
                   help="also estimate the prefill of an N-token prompt (time to first token)")
    p.add_argument("--vectors", type=int, metavar="T",
                   help="activation vectors per weight fetch (default: the board's T)")
    p.add_argument("--json", metavar="FILE", help="also write the full projection (every layer) as JSON")
    p.add_argument("--report", metavar="DIR", help="also write the HTML/Markdown report with plots")
    p.add_argument("--list", action="store_true", help="list the boards and bundled model shapes, then exit")


def _list() -> int:
    from ..sim.boards import BOARDS, DEFAULT_BOARD
    from ..sim.estimate import shape_names

    print("boards:")
    for b in BOARDS.values():
        mark = " (default)" if b.name == DEFAULT_BOARD else ""
        print(f"  {b.name:<11} {b.clock_mhz:>5g} MHz  {b.bandwidth_gbs:>7g} GB/s {b.memory:<9} "
              f"R={b.rows:<3} T={b.vectors}  {b.title}{mark}")
    print("model shapes: " + ", ".join(shape_names()))
    return 0


def format_projection(r: dict) -> str:
    """The printed table of a ``sim.estimate.project`` result."""
    m, b, pt, t, hw = r["model"], r["board"], r["per_token"], r["energy_table"], r["hwconfig"]
    lines = [
        f"model    {m['name']} ({m['arch']}, {m['layers']} layers, hidden {m['hidden']}, "
        f"intermediate {m['intermediate']}, {m['heads']}/{m['kv_heads']} heads): "
        f"{m['linear_weights'] / 1e9:.3f} G quantized weights",
        f"config   {r['config']} on {b['name']} ({b['title']})",
        f"array    R={hw['rows']} rows x 16 lanes, T={hw['vectors']}, {b['clock_mhz']:g} MHz, "
        f"{hw['derived']['beat_bytes']} B/beat; memory {b['memory']} {b['bandwidth_gbs']:g} GB/s",
        f"energy   table {t['name']} {t['version']} ({shown(t['path'])})",
        "",
        f"{'matrix':<17} {'out x in':>15} {'count':>5} {'cycles':>9} {'compute us':>11} "
        f"{'memory us':>10} {'bound':>8} {'energy uJ':>10}",
    ]
    for k in r["kinds"]:
        lines.append(f"{k['name']:<17} {k['out']:>6} x {k['in']:<6} {k['count']:>5} {k['cycles']:>9,} "
                     f"{k['compute_s'] * 1e6:>11.3f} {k['memory_s'] * 1e6:>10.3f} {k['bound']:>8} "
                     f"{sum(k['energy_pj'].values()) * 1e-6:>10.3f}")
    binds = {"compute": "", "memory": ""}
    binds[pt["bound"]] = "   <- binds"
    share = sorted(pt["energy_breakdown_j"].items(), key=lambda kv: -kv[1])
    total = pt["energy_j"]
    top = ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in share[:3] if v > 0) if total else "-"
    fit = r["memory_fit"]
    lm = r["lm_head"]
    lines += [
        "",
        f"per token  {pt['weight_bytes'] / 1e9:.4f} GB of weights, {pt['cycles']:,} cycles "
        f"({pt['layers_memory_bound']} layers memory-bound, {pt['layers_compute_bound']} compute-bound)",
        f"  compute bound   {pt['tokens_per_s_compute']:12.2f} tok/s{binds['compute']}",
        f"  memory bound    {pt['tokens_per_s_memory']:12.2f} tok/s{binds['memory']}",
        f"  estimate        {pt['tokens_per_s']:12.2f} tok/s",
        f"  energy          {total:12.5f} J/token ({top})",
        f"  memory fit      {fit['weight_bytes'] / 2**30:.3f} GiB of {fit['capacity_bytes'] / 2**30:.3f} GiB: "
        + ("fits" if fit["fits"] else "DOES NOT FIT"),
        f"  lm_head         fp16 on the host, not in these figures ({lm['weight_bytes_fp16'] / 1e9:.3f} GB; "
        f"streamed from the board memory too, the memory bound would be "
        f"{lm['tokens_per_s_memory_with_lm_head']:.2f} tok/s)",
    ]
    pf = r.get("prefill")
    if pf:
        lines.append(f"  prefill         {pf['prompt_tokens']} prompt tokens in {pf['commands_per_matrix']} "
                     f"command(s) of T={hw['vectors']} per matrix: {pf['cycles']:,} cycles, time to first "
                     f"token {pf['time_s'] * 1e3:.3f} ms ({pf['tokens_per_s']:.2f} tok/s, {pf['bound']}-bound), "
                     f"{pf['energy_j']:.5f} J")
    lines += [
        f"  assumptions     zero-trit fraction {r['assumptions']['zero_trit_fraction']}, "
        f"{r['assumptions']['load_act']}; not counted: {r['assumptions']['not_counted']}",
    ]
    return "\n".join(lines)


def run(args) -> int:
    if args.list:
        return _list()
    from ..sim import estimate
    from ..sim.boards import get_board
    from ..sim.energy import EnergyTable
    from ..atomic import write_json
    from ..sim.report import render

    if not args.model_config:
        raise TritforgeError("--model-config: required (a config.json path or a bundled shape; see --list)")
    if args.depth not in (1, 2, 3, 4):
        raise TritforgeError(f"--depth {args.depth}: expected 1, 2, 3 or 4")
    board = get_board(args.board)
    table = EnergyTable.load(args.energy_table)
    if args.prompt_tokens < 0:
        raise TritforgeError(f"--prompt-tokens {args.prompt_tokens}: expected 0 or more")
    result = estimate.project(args.model_config, args.depth, board, table,
                              zero_trit_fraction=args.zero_trit_fraction,
                              prompt_tokens=args.prompt_tokens, vectors=args.vectors)
    print(format_projection(result))
    if args.json:
        write_json(args.json, result)
        print(f"json     {args.json}")
    if args.report:
        render(result, args.report)
        print(f"report   {args.report}/report.html")
    return 0
