"""``tritforge generate``: Verilog of the GEMV engine plus its JSON sidecar."""
from __future__ import annotations

import dataclasses

from ..codec.errors import TritforgeError

HELP = "write the GEMV engine as Verilog plus a JSON sidecar (parameters, derived values, port map)"

#: option help for every HwConfig field (a new field without help fails tests/test_hw_generate.py)
FIELD_HELP = {
    "depth": "D: trits per weight, 1..4",
    "rows": "R: output rows computed in parallel (1..256)",
    "vectors": "T: activation vectors per weight fetch (1 = decode, >1 = prefill), 1..64",
    "group": "weights per group sharing one scale (fixed by the format: 16)",
    "act_bits": "activation width in bits (fixed: 8)",
    "mant_bits": "F: codebook mantissa bits (fixed by the format: 12)",
    "shift_limit": "S: largest codebook shift, 0..15 (sizes the accumulator)",
    "max_in_features": "largest in_features (multiple of 16; sizes the activation buffer and accumulators)",
    "max_out_features": "largest out_features (sizes the row-tile counter)",
    "clock_mhz": "target clock in MHz (recorded in the sidecar for the synthesis flows)",
}


def _fields():
    from ..hwconfig import HwConfig
    return dataclasses.fields(HwConfig)


def add_arguments(p) -> None:
    from ..hwconfig import DEFAULT
    for f in _fields():
        opt = "--" + f.name.replace("_", "-")
        kind = float if isinstance(getattr(DEFAULT, f.name), float) else int
        metavar = {"depth": "D", "rows": "R", "vectors": "T"}.get(f.name, "N" if kind is int else "X")
        p.add_argument(opt, dest=f.name, type=kind, metavar=metavar, default=None,
                       help=f"{FIELD_HELP.get(f.name, f.name)} (default {getattr(DEFAULT, f.name)})")
    p.add_argument("--config", metavar="FILE",
                   help="HwConfig JSON (a sidecar works too); options given here override it")
    p.add_argument("--decoder", choices=("nibble", "arith", "rom"), default="nibble",
                   help="byte-to-trit decoder: two nibble tables + base-3 ripple add (nibble, default, "
                        "smallest), restoring compare/subtract (arith) or a 256-entry case table (rom)")
    p.add_argument("--top", default="tritforge_engine", metavar="NAME",
                   help="Verilog module name (default tritforge_engine)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")


def run(args) -> int:
    from ..hw import verilog
    from ..hwconfig import HwConfig

    base = HwConfig.from_json(args.config).to_dict() if args.config else {}
    for f in _fields():
        value = getattr(args, f.name)
        if value is not None:
            base[f.name] = value
    cfg = HwConfig.from_dict(base, "generate options")
    if not args.top.isidentifier():
        raise TritforgeError(f"--top {args.top!r}: expected a Verilog identifier")
    r = verilog.write(cfg, args.out, decoder_style=args.decoder, top=args.top)
    d = cfg.derived()
    print(f"engine   d={cfg.depth} R={cfg.rows} T={cfg.vectors} max_in={cfg.max_in_features} "
          f"max_out={cfg.max_out_features} decoder={args.decoder}")
    print(f"derived  beat {d['beat_bytes']} B, dot {d['dot_width']} b, product {d['product_width']} b, "
          f"acc {d['acc_width']} b, buffer {d['act_buffer_words']} x 128 b, "
          f"{cfg.pipeline_stages} pipeline stages")
    print(f"wrote    {r['verilog']} ({r['verilog_bytes']:,} bytes)")
    print(f"wrote    {r['sidecar']}")
    return 0
