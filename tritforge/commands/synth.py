"""``tritforge synth``: the GEMV engine, or with ``--unit`` one of the accelerator's other
units (``fpga.unitsynth.UNITS``), through Yosys and nextpnr (yowasp), JSON report."""
from __future__ import annotations

from ..errors import TritforgeError
from ._hwoptions import add_hw_arguments, hw_from_args

HELP = ("synthesize (and place and route) the GEMV engine, or with --unit another unit of the "
        "accelerator, for an FPGA with the open yowasp tools; writes a JSON report of "
        "LUT/FF/BRAM/DSP and Fmax")

TARGET_NAMES = ("ecp5-85f", "ice40-up5k", "xilinx-estimate")


def add_arguments(p) -> None:
    p.add_argument("--target", required=True, choices=TARGET_NAMES,
                   help="ecp5-85f: LFE5U-85F speed 6 CABGA381 (nextpnr-ecp5); ice40-up5k: iCE40UP5K "
                        "SG48 (nextpnr-ice40); xilinx-estimate: Yosys synth_xilinx area only "
                        "(an estimate, no place-and-route)")
    from ..fpga.unitsynth import UNITS
    p.add_argument("--unit", choices=tuple(UNITS), default=None,
                   help="synthesize this unit (at SmolLM2's shape, inside the registered pin shell "
                        "fpga.unitshell; its own cells counted apart) instead of the engine; the "
                        "engine's options (HwConfig, --config, --decoder, --wrapper) do not apply")
    p.add_argument("--lanes", type=int, default=None, metavar="N",
                   help="with --unit: the unit's lanes (elements per beat; the attention unit's and "
                        "the layer's int8 lanes); default: the unit's own")
    p.add_argument("--no-place", action="store_true",
                   help="with --unit: Yosys only, no place-and-route (the area of a unit the device "
                        "cannot hold; no Fmax)")
    add_hw_arguments(p)
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock constraint for nextpnr (default: --clock-mhz)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop nextpnr after this long with an error (its router does not converge "
                        "for some seeds and then runs on; default: no limit)")
    from ..fpga.synth import ROUTER_CHOICES
    p.add_argument("--router", choices=ROUTER_CHOICES, default="auto",
                   help="nextpnr's router; auto (default): router2 for an engine of several slices "
                        "or engines and for the attention and layer units, where router1 can run on "
                        "without converging; router1 (timing-driven) otherwise")
    p.add_argument("--place-blocks", action="store_true",
                   help="fix each engine's (each slice's) DP16KD and MULT18X18D to a region of "
                        "the chip of its own with BEL attributes, so that its logic gathers "
                        "around them (fpga/placement.py; ecp5-85f only; default: the placer "
                        "is free)")
    from ..hw.decoder import STYLES
    p.add_argument("--decoder", choices=STYLES, default=None,
                   help="the engine's byte-to-trit decoder (as in `tritforge generate`; default: the engine's)")
    p.add_argument("--wrapper", choices=("io", "link"), default=None,
                   help="what surrounds the engine: io = every port bit registered (the engine's "
                        "own Fmax, default); link = the boards' host-link core, whose paths count too")
    p.add_argument("--check-baseline", action="store_true",
                   help="compare with the committed baseline fpga/baselines/<target>_d<D>_r<R>.json "
                        "(with --unit: fpga/baselines/units/<unit>_l<lanes>_<target>_s<seed>.json); "
                        "exit 1 on a regression beyond its tolerance")
    p.add_argument("--save-baseline", action="store_true",
                   help="write this run as the baseline fpga/baselines/<target>_d<D>_r<R>.json "
                        "(with --unit: fpga/baselines/units/<unit>_l<lanes>_<target>_s<seed>.json)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: report.json, yosys/nextpnr logs and reports")


def _check_common(args) -> None:
    if args.freq is not None and not args.freq > 0:
        raise TritforgeError(f"--freq {args.freq}: expected a positive clock in MHz")
    if args.timeout is not None and not args.timeout > 0:
        raise TritforgeError(f"--timeout {args.timeout}: expected a positive number of seconds")


def _print_pnr(rep: dict) -> None:
    """The critical register-to-register path and the late endpoints of a placed design."""
    cp = rep["pnr"]["critical_paths"]
    reg = [c for c in cp if c["from"].startswith("posedge") and c["to"].startswith("posedge")]
    if reg:
        c = reg[0]
        print(f"critical {c['delay_ns']} ns, {c['logic_levels']} logic levels: {c['start']} -> {c['end']}")
    late = rep["pnr"].get("late_endpoints")
    if late and late["count"]:
        where = ", ".join(f"{k} {v}" for k, v in late["by_module"].items())
        print(f"late     {late['count']} register endpoints over {late['period_ns']} ns: {where}")


def run(args) -> int:
    _check_common(args)
    if args.unit is not None:
        return _run_unit(args)
    for opt, value in (("--lanes", args.lanes), ("--no-place", args.no_place or None)):
        if value is not None:
            raise TritforgeError(f"{opt}: expected only with --unit")
    return _run_engine(args)


def _run_engine(args) -> int:
    from ..atomic import atomic_folder
    from ..fpga import synth
    from ..fpga.synthtop import synthesize_engine

    from ..fpga import baseline

    args.wrapper = args.wrapper or "io"
    hw = hw_from_args(args)
    base = baseline.find(args.target, hw, args.wrapper) if args.check_baseline else None
    org = "" if hw.organisation == "lockstep" else f" organisation={hw.organisation} ({hw.engines} engines)"
    blocks = " blocks placed" if args.place_blocks else ""
    print(f"synth    {args.target}: engine d={hw.depth} R={hw.rows}{org} T={hw.vectors} "
          f"max_in={hw.max_in_features} decoder={args.decoder or 'default'} wrapper={args.wrapper}"
          f"{blocks} (yosys{' + nextpnr' if synth.target(args.target).nextpnr else ''})")
    # the flow's folder and the report written after it are one staged output (the
    # command's transaction moves it into place when everything succeeded)
    with atomic_folder(args.out) as work:
        rep = synthesize_engine(hw, args.target, work, args.freq, args.seed, args.decoder,
                                args.wrapper, args.timeout, synth.pick_router(args.router, hw),
                                place_blocks=args.place_blocks)
    e = rep["engine"]
    print(f"design   {synth.summary_line(rep)}")
    print(f"engine   LUT {e['engine_lut']} + {e['engine_carry']} carry, FF {e['engine_ff']}, "
          f"BRAM {e['engine_bram']}, DSP {e['engine_dsp']}; {e['lanes']} lanes: "
          f"{e['lut_per_lane']} LUT/lane ({e['lut_equiv_per_lane']} counting carry cells)")
    b = base and base["engine"]
    return _report_tail(args, rep, base, "estimate, no place-and-route", baseline.compare, baseline.save,
                        b and (b["engine_lut"], b["engine_ff"]))


def _report_tail(args, rep, base, no_pnr_note, compare, save, base_lut_ff) -> int:
    """The place-and-route lines (or ``no_pnr_note``), the report written, the comparison
    with a baseline (``compare``; exit status 1 on a regression) and ``--save-baseline``."""
    if rep.get("pnr"):
        _print_pnr(rep)
    else:
        print(f"note     {no_pnr_note}")
    print(f"wrote    {args.out}/report.json")
    status = 0
    if base is not None:
        fails = compare(rep, base)
        print(f"baseline LUT {base_lut_ff[0]}, FF {base_lut_ff[1]}, Fmax {base['fmax_mhz']} MHz: "
              + ("REGRESSION: " + "; ".join(fails) if fails else "within tolerance"))
        status = 1 if fails else 0
    if args.save_baseline:
        print(f"wrote    {save(rep)}")
    return status


def _run_unit(args) -> int:
    """``--unit``: ``fpga.unitsynth.synthesize_unit`` with the same report lines as the engine."""
    import dataclasses
    import os

    from ..atomic import atomic_folder
    from ..fpga import synth, unitsynth
    from ..hwconfig import HwConfig

    for f in dataclasses.fields(HwConfig):
        if getattr(args, f.name) is not None:
            raise TritforgeError(f"--{f.name.replace('_', '-')}: expected only without --unit "
                                 f"(a unit is built at its own fixed shape)")
    for opt, value in (("--config", args.config), ("--decoder", args.decoder), ("--wrapper", args.wrapper),
                       ("--place-blocks", args.place_blocks or None)):
        if value is not None:
            raise TritforgeError(f"{opt}: expected only without --unit (the engine's options)")
    if args.lanes is not None and args.lanes < 1:
        raise TritforgeError(f"--lanes {args.lanes}: expected a whole number of lanes >= 1")
    target = synth.target(args.target)
    place = not args.no_place
    u = unitsynth.unit(args.unit)
    lanes = u.lanes if args.lanes is None else args.lanes
    seed = args.seed if place and target.nextpnr else None
    bpath = os.path.join(unitsynth.FOLDER, unitsynth.file_name(args.unit, lanes, args.target, seed))
    base = None
    if args.check_baseline:
        if not os.path.exists(bpath):
            raise TritforgeError(f"--check-baseline: no unit baseline {os.path.basename(bpath)} in "
                                 f"{unitsynth.FOLDER}")
        base = unitsynth.load(bpath)
    built = unitsynth.build(args.unit, lanes, target.primitives)  # bad lanes: one line, before the tools
    print(f"synth    {args.target}: unit {args.unit} ({u.text}) lanes={lanes} "
          f"(yosys{' + nextpnr' if place and target.nextpnr else ' only'})")
    # the flow's folder and the report written after it are one staged output (the
    # command's transaction moves it into place when everything succeeded)
    with atomic_folder(args.out) as work:
        rep = unitsynth.synthesize_unit(args.unit, args.target, work, lanes=lanes, seed=args.seed,
                                        freq=args.freq or 200.0, pnr_timeout_s=args.timeout,
                                        router=synth.pick_router(args.router, unit=args.unit), place=place,
                                        built=built)
    f = rep["unit"]
    print(f"design   {synth.summary_line(rep)}")
    print(f"unit     LUT {f['lut']} + {f['carry']} carry, FF {f['ff']}, BRAM {f['bram']}, DSP {f['dsp']}"
          + (f", LUT RAM {f['lutram']}" if f.get("lutram") else "")
          + (f"; Fmax {f['fmax_mhz']:.1f} MHz" if f.get("fmax_mhz") is not None else ""))
    b = base and base["figures"]
    return _report_tail(args, rep, base, "synthesis only, no place-and-route", unitsynth.compare,
                        unitsynth.save, b and (b["lut"], b["ff"]))
