"""``tritforge sweep``: the engine over R and d for one target; table + Pareto plot."""
from __future__ import annotations

from ..errors import TritforgeError

HELP = "synthesize the engine over lists of R and d for one target; CSV/JSON table and a Pareto PNG (LUT vs MAC/cycle x Fmax)"


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise TritforgeError(f"{what} {text!r}: expected comma-separated integers, e.g. 1,4,16") from None
    if not values:
        raise TritforgeError(f"{what} {text!r}: expected at least one value")
    return values


def add_arguments(p) -> None:
    from ._hwoptions import add_hw_arguments
    from .synth import TARGET_NAMES

    p.add_argument("--target", required=True, choices=TARGET_NAMES, help="as in `tritforge synth`")
    p.add_argument("--rows", dest="sweep_rows", required=True, metavar="R,R,..",
                   help="rows in parallel to try, e.g. 1,4,16")
    p.add_argument("--depths", required=True, metavar="D,D,..", help="depths to try, e.g. 1,2")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock constraint for nextpnr (default: --clock-mhz)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    add_hw_arguments(p, skip=("rows", "depth"))
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder: sweep.csv, sweep.json, pareto.png, points/d<D>_r<R>/")


def run(args) -> int:
    import os

    from ..fpga.sweep import run_sweep
    from ._hwoptions import hw_from_args

    rows = _ints(args.sweep_rows, "--rows")
    depths = _ints(args.depths, "--depths")
    base = hw_from_args(args)
    print(f"sweep    {args.target}: R in {rows}, d in {depths} ({len(rows) * len(depths)} runs)")
    points = run_sweep(args.target, rows, depths, base, args.out, args.freq, args.seed,
                       progress=lambda s: print(f"point    {s}", flush=True))
    front = [f"d={p['depth']} R={p['rows']}" for p in points if p["pareto"]]
    print(f"pareto   {', '.join(front) if front else '(none)'}")
    for name in ("sweep.csv", "sweep.json", "pareto.png"):
        print(f"wrote    {os.path.join(args.out, name)}")
    return 0
