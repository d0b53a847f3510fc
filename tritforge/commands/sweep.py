"""``tritforge sweep``: the engine (or, with ``--units``, the accelerator's other units) over
a design space on Dask; table, Pareto plots, cache."""
from __future__ import annotations

import sys

from ..errors import TritforgeError

HELP = ("synthesize the engine over lists of d, R, T, seeds, decoder styles and primitive sets, or "
        "with --units the attention, vector and layer units over lanes and seeds, on Dask (a local "
        "cluster or --scheduler); cached per point, resumable; CSV/JSON table (the engine's with "
        "tokens/s and J/token), Pareto PNGs")

#: the model shape the estimator projects when none is given: the embedded default model's
DEFAULT_MODEL = "smollm2-135m"


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise TritforgeError(f"{what} {text!r}: expected comma-separated integers, e.g. 1,4,16") from None
    if not values:
        raise TritforgeError(f"{what} {text!r}: expected at least one value")
    return tuple(dict.fromkeys(values))


def _names(text: str, what: str, allowed) -> tuple[str, ...]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise TritforgeError(f"{what} {text!r}: expected at least one value")
    for v in values:
        if v not in allowed:
            raise TritforgeError(f"{what} {text!r}: {v!r} is not one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def add_arguments(p) -> None:
    from ..fpga.synth import ROUTER_CHOICES
    from ..fpga.unitsynth import UNITS
    from ._hwoptions import add_hw_arguments
    from .synth import TARGET_NAMES

    p.add_argument("--target", required=True, choices=TARGET_NAMES, help="as in `tritforge synth`")
    axes = p.add_argument_group("axes (comma-separated lists; every combination is one point)")
    axes.add_argument("--depths", metavar="D,D,..", help="depths to try, e.g. 1,2 (required without --units)")
    axes.add_argument("--rows", dest="sweep_rows", metavar="R,R,..",
                      help="rows in parallel to try, e.g. 1,4,16 (required without --units)")
    axes.add_argument("--vectors", dest="sweep_vectors", metavar="T,T,..",
                      help="activation vectors per weight fetch (default: --config's, else 1)")
    axes.add_argument("--seeds", "--seed", dest="seeds", default="1", metavar="N,N,..",
                      help="nextpnr placer seeds (default 1)")
    axes.add_argument("--decoders", metavar="STYLE,..",
                      help="decoder styles, of arith, nibble, rom (default: the engine's, nibble)")
    axes.add_argument("--primitives", metavar="SET,..",
                      help="primitive sets, of generic, ecp5 (default: the target's)")
    units = p.add_argument_group("units (instead of the engine: --depths, --rows, --vectors, --decoders, "
                                 "--primitives, --wrapper and the HwConfig and estimate options do not apply)")
    units.add_argument("--units", metavar="UNIT,..",
                       help=f"sweep these units in their pin shell (as `tritforge synth --unit`), of "
                            f"{', '.join(UNITS)}")
    units.add_argument("--lanes", dest="sweep_lanes", metavar="L,L,..",
                       help="with --units: lanes to try (default: each unit's own)")
    flow = p.add_argument_group("flow")
    flow.add_argument("--freq", type=float, default=None, metavar="MHZ",
                      help="clock constraint for nextpnr (default: --clock-mhz)")
    flow.add_argument("--wrapper", choices=("io", "link"), default=None,
                      help="as in `tritforge synth` (default io)")
    flow.add_argument("--router", choices=ROUTER_CHOICES, default="auto",
                      help="nextpnr's router; auto (default): per point, router2 for an engine of several "
                           "slices or engines (where router1 can run on without converging), router1 "
                           "otherwise")
    flow.add_argument("--yosys-only", "--no-place", dest="yosys_only", action="store_true",
                      help="stop after Yosys: area only, no Fmax (cheap points)")
    flow.add_argument("--timeout-per-point", type=float, default=None, metavar="SECONDS",
                      help="stop a point after this long and record it as timed out (default: no limit)")
    run = p.add_argument_group("where the points run")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of the local Dask cluster, one point each at a time "
                            "(default: half the cores, at most 4)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask cluster's scheduler, e.g. tcp://host:8786 (its workers "
                            "need tritforge and the same tool versions)")
    run.add_argument("--cache", metavar="DIR",
                     help="point cache, one folder per point keyed by its inputs' hash (default OUT/cache)")
    run.add_argument("--retry-failed", action="store_true",
                     help="run the points the cache holds as failed again")
    est = p.add_argument_group("estimate (tokens/s and J/token of every built point)")
    est.add_argument("--model-config", default=DEFAULT_MODEL, metavar="PATH|NAME",
                     help=f"an HF config.json or a bundled shape (default {DEFAULT_MODEL}; "
                          "`tritforge estimate --list`)")
    est.add_argument("--board", default="default", metavar="NAME|FILE",
                     help="the board whose memory, static power and energy table the engine runs with "
                          "(as in `tritforge estimate`; default kv260)")
    est.add_argument("--context", type=int, default=0, metavar="N",
                     help="tokens in the KV cache for the decode token (default 0)")
    add_hw_arguments(p, skip=("rows", "depth", "vectors"))
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder: sweep.csv, sweep.json, pareto.png, pareto_tokens.png, points/<point>/, "
                        "cache/ (kept when the sweep is run again)")


def run(args) -> int:
    if args.units is not None:
        return _run_units(args)
    if args.sweep_lanes is not None:
        raise TritforgeError("--lanes: expected only with --units (the engine's lanes are set by d and R)")
    for opt, value in (("--depths", args.depths), ("--rows", args.sweep_rows)):
        if value is None:
            raise TritforgeError(f"{opt}: required (the engine's axes), unless --units is given")
    import os

    from ..fpga.sweep import Axes, Estimator, Flow, run_sweep
    from ..hw.decoder import STYLES
    from ..hw.primitives import PRIMITIVES
    from ..sim import estimate
    from ..sim.boards import get_board
    from ..sim.energy import EnergyTable
    from ._hwoptions import hw_from_args
    from .estimate import board_table

    base = hw_from_args(args)
    axes = Axes(depths=_ints(args.depths, "--depths"), rows=_ints(args.sweep_rows, "--rows"),
                vectors=_ints(args.sweep_vectors, "--vectors") if args.sweep_vectors else (base.vectors,),
                seeds=_ints(args.seeds, "--seeds"),
                decoders=_names(args.decoders, "--decoders", STYLES) if args.decoders else (None,),
                primitives=_names(args.primitives, "--primitives", PRIMITIVES) if args.primitives else (None,))
    flow = Flow(args.target, args.freq, args.wrapper or "io", args.router, args.yosys_only,
                args.timeout_per_point)
    _check_workers(args)
    if args.context < 0:
        raise TritforgeError(f"--context {args.context}: expected 0 or more")
    board = get_board(args.board)
    table = EnergyTable.load(board_table(board))
    estimate.project(args.model_config, base.depth, board, table, context=args.context)  # checks model, context
    estimator = Estimator(args.model_config, board, table, args.context)

    n = 1
    for values in (axes.depths, axes.rows, axes.vectors, axes.seeds, axes.decoders, axes.primitives):
        n *= len(values)
    cache = args.cache or os.path.join(args.out, "cache")
    print(f"sweep    {args.target}: d in {list(axes.depths)}, R in {list(axes.rows)}, T in {list(axes.vectors)}, "
          f"seeds {list(axes.seeds)}, decoder {_shown(axes.decoders)}, primitives {_shown(axes.primitives)}; "
          f"{n} point{'s' * (n != 1)}{' (yosys only)' if args.yosys_only else ''}; cache {cache}", flush=True)
    points = _with_progress(n, lambda progress, started: run_sweep(
        axes, base, args.out, flow, estimator=estimator, cache_dir=args.cache, workers=args.workers,
        scheduler=args.scheduler, retry_failed=args.retry_failed, progress=progress, started=started))
    fronts = (("pareto", "pareto   LUT vs GMAC/s" if not args.yosys_only and args.target != "xilinx-estimate"
               else "pareto   LUT vs MAC/cycle"),
              ("pareto_tokens", f"pareto   LUT vs tok/s ({args.model_config} on {board.name})"))
    return _finish(args, points, fronts, ("sweep.csv", "sweep.json", "pareto.png", "pareto_tokens.png"))


def _run_units(args) -> int:
    import dataclasses
    import os

    from ..fpga.sweep import Flow
    from ..fpga.unitsweep import UnitAxes, plan_units, run_unit_sweep
    from ..fpga.unitsynth import UNITS
    from ..hwconfig import HwConfig

    for opt, value in (("--depths", args.depths), ("--rows", args.sweep_rows), ("--vectors", args.sweep_vectors),
                       ("--decoders", args.decoders), ("--primitives", args.primitives),
                       ("--wrapper", args.wrapper), ("--config", args.config),
                       *((f"--{f.name.replace('_', '-')}", getattr(args, f.name, None))
                         for f in dataclasses.fields(HwConfig))):
        if value is not None:
            raise TritforgeError(f"{opt}: expected only without --units (the engine's options; a unit is "
                                 f"built at its own shape in its pin shell, with the target's primitives)")
    axes = UnitAxes(units=_names(args.units, "--units", tuple(UNITS)),
                    lanes=_ints(args.sweep_lanes, "--lanes") if args.sweep_lanes else (None,),
                    seeds=_ints(args.seeds, "--seeds"))
    flow = Flow(args.target, args.freq, "io", args.router, args.yosys_only, args.timeout_per_point)
    _check_workers(args)
    planned = plan_units(axes, flow)         # every point checked before anything is printed or run
    n = len(planned)
    cache = args.cache or os.path.join(args.out, "cache")
    print(f"sweep    {args.target}: units {','.join(axes.units)}, lanes "
          f"{_shown(axes.lanes) if axes.lanes != (None,) else 'default'}, seeds {list(axes.seeds)}; "
          f"{n} point{'s' * (n != 1)}{' (yosys only)' if args.yosys_only else ''}; cache {cache}", flush=True)
    points = _with_progress(n, lambda progress, started: run_unit_sweep(
        planned, args.out, flow, cache_dir=args.cache, workers=args.workers, scheduler=args.scheduler,
        retry_failed=args.retry_failed, progress=progress, started=started))
    placed = not args.yosys_only and args.target != "xilinx-estimate"
    fronts = (("pareto", f"pareto   LUT vs {'M elements/s' if placed else 'lanes'} per unit"),)
    return _finish(args, points, fronts, ("sweep.csv", "sweep.json", "pareto.png"))


def _check_workers(args) -> None:
    if args.workers is not None and args.workers < 1:
        raise TritforgeError(f"--workers {args.workers}: expected a positive number of workers")


def _with_progress(n: int, sweep) -> list[dict]:
    """``sweep(progress, started)`` with a progress bar of ``n`` points on a terminal and a
    line per point."""
    from tqdm import tqdm

    bar = tqdm(total=n, unit="point", disable=None, leave=False, dynamic_ncols=True)

    def progress(line: str) -> None:
        bar.write(f"point    {line}", file=sys.stdout)
        bar.update()

    try:
        return sweep(progress, lambda what: bar.write(f"cluster  {what}", file=sys.stdout))
    finally:
        bar.close()


def _finish(args, points: list[dict], fronts, files) -> int:
    """The summary lines; exit status 1 when a point failed or was stopped."""
    import os

    cached = sum(1 for p in points if p["cached"])
    bad = [p for p in points if p["status"] != "ok"]
    print(f"points   {len(points) - len(bad)} built, {len(bad)} failed or stopped, "
          f"{cached} from the cache")
    for key, what in fronts:
        front = [p["point"] for p in points if p[key]]
        print(f"{what}: {', '.join(front) if front else '(none)'}")
    for name in files:
        print(f"wrote    {os.path.join(args.out, name)}")
    if bad:       # the table is complete; the exit status says not every point was built
        print(f"error: {len(bad)} of {len(points)} points failed or were stopped "
              f"(their errors are in {os.path.join(args.out, 'sweep.csv')})", file=sys.stderr)
        return 1
    return 0


def _shown(values) -> str:
    return "default" if values == (None,) else ",".join(map(str, values))
