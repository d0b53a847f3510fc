"""``tritforge synth``: the GEMV engine through Yosys and nextpnr (yowasp), JSON report."""
from __future__ import annotations

from ..errors import TritforgeError
from ._hwoptions import add_hw_arguments, hw_from_args

HELP = ("synthesize (and place and route) the GEMV engine for an FPGA with the open yowasp "
        "tools; writes a JSON report of LUT/FF/BRAM/DSP and Fmax")

TARGET_NAMES = ("ecp5-85f", "ice40-up5k", "xilinx-estimate")


def add_arguments(p) -> None:
    p.add_argument("--target", required=True, choices=TARGET_NAMES,
                   help="ecp5-85f: LFE5U-85F speed 6 CABGA381 (nextpnr-ecp5); ice40-up5k: iCE40UP5K "
                        "SG48 (nextpnr-ice40); xilinx-estimate: Yosys synth_xilinx area only "
                        "(an estimate, no place-and-route)")
    add_hw_arguments(p)
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock constraint for nextpnr (default: --clock-mhz)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop nextpnr after this long with an error (its router does not converge "
                        "for some seeds and then runs on; default: no limit)")
    from ..fpga.synth import ROUTERS
    p.add_argument("--router", choices=ROUTERS, default=ROUTERS[0],
                   help="nextpnr's router (default router1; router2 converges on the largest "
                        "engines, where router1 can run on)")
    from ..hw.decoder import STYLES
    p.add_argument("--decoder", choices=STYLES, default=None,
                   help="the engine's byte-to-trit decoder (as in `tritforge generate`; default: the engine's)")
    p.add_argument("--wrapper", choices=("io", "link"), default="io",
                   help="what surrounds the engine: io = every port bit registered (the engine's "
                        "own Fmax, default); link = the boards' host-link core, whose paths count too")
    p.add_argument("--check-baseline", action="store_true",
                   help="compare with the committed baseline fpga/baselines/<target>_d<D>_r<R>.json; "
                        "exit 1 on a regression beyond its tolerance")
    p.add_argument("--save-baseline", action="store_true",
                   help="write this run as the baseline fpga/baselines/<target>_d<D>_r<R>.json")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: report.json, yosys/nextpnr logs and reports")


def run(args) -> int:
    from ..fpga import synth
    from ..fpga.synthtop import synthesize_engine

    from ..fpga import baseline

    hw = hw_from_args(args)
    base = baseline.find(args.target, hw, args.wrapper) if args.check_baseline else None
    if args.freq is not None and not args.freq > 0:
        raise TritforgeError(f"--freq {args.freq}: expected a positive clock in MHz")
    print(f"synth    {args.target}: engine d={hw.depth} R={hw.rows} T={hw.vectors} "
          f"max_in={hw.max_in_features} decoder={args.decoder or 'default'} wrapper={args.wrapper} (yosys{' + nextpnr' if synth.target(args.target).nextpnr else ''})")
    rep = synthesize_engine(hw, args.target, args.out, args.freq, args.seed, args.decoder,
                            args.wrapper, args.timeout, args.router)
    e = rep["engine"]
    print(f"design   {synth.summary_line(rep)}")
    print(f"engine   LUT {e['engine_lut']} + {e['engine_carry']} carry, FF {e['engine_ff']}, "
          f"BRAM {e['engine_bram']}, DSP {e['engine_dsp']}; {e['lanes']} lanes: "
          f"{e['lut_per_lane']} LUT/lane ({e['lut_equiv_per_lane']} counting carry cells)")
    if rep.get("pnr"):
        cp = rep["pnr"]["critical_paths"]
        reg = [c for c in cp if c["from"].startswith("posedge") and c["to"].startswith("posedge")]
        if reg:
            c = reg[0]
            print(f"critical {c['delay_ns']} ns, {c['logic_levels']} logic levels: {c['start']} -> {c['end']}")
        late = rep["pnr"].get("late_endpoints")
        if late and late["count"]:
            where = ", ".join(f"{k} {v}" for k, v in late["by_module"].items())
            print(f"late     {late['count']} register endpoints over {late['period_ns']} ns: {where}")
    else:
        print("note     estimate, no place-and-route")
    print(f"wrote    {args.out}/report.json")
    status = 0
    if base is not None:
        fails = baseline.compare(rep, base)
        b = base["engine"]
        print(f"baseline LUT {b['engine_lut']}, FF {b['engine_ff']}, Fmax {base['fmax_mhz']} MHz: "
              + ("REGRESSION: " + "; ".join(fails) if fails else "within tolerance"))
        status = 1 if fails else 0
    if args.save_baseline:
        print(f"wrote    {baseline.save(rep)}")
    return status
