"""``tritforge generate``: Verilog of the GEMV engine plus its JSON sidecar."""
from __future__ import annotations

from ..errors import TritforgeError
from ..hw.decoder import DEFAULT_STYLE, STYLES
from ..hw.primitives import PRIMITIVES
from ._hwoptions import add_hw_arguments, hw_from_args
from ._paths import shown


HELP = "write the GEMV engine as Verilog plus a JSON sidecar (parameters, derived values, port map)"

def add_arguments(p) -> None:
    add_hw_arguments(p)
    p.add_argument("--decoder", choices=STYLES, default=DEFAULT_STYLE,
                   help="byte-to-trit decoder: two nibble tables + base-3 add with generate/propagate "
                        f"look-ahead carries (nibble), restoring compare/subtract (arith) or a "
                        f"256-entry case table (rom); default {DEFAULT_STYLE}")
    p.add_argument("--primitives", choices=PRIMITIVES, default="generic",
                   help="generic: plain Verilog any tool infers (default); ecp5: Lattice MULT18X18D "
                        "and DP16KD instances with their internal registers and CCU2C carry chains "
                        "for the accumulators (for ECP5 flows)")
    p.add_argument("--top", default="tritforge_engine", metavar="NAME",
                   help="Verilog module name (default tritforge_engine)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")


def run(args) -> int:
    from ..hw import verilog

    cfg = hw_from_args(args)
    if not args.top.isidentifier():
        raise TritforgeError(f"--top {args.top!r}: expected a Verilog identifier")
    r = verilog.write(cfg, args.out, decoder_style=args.decoder, top=args.top,
                      primitives=args.primitives)
    d = cfg.derived()
    print(f"engine   d={cfg.depth} R={cfg.rows} T={cfg.vectors} max_in={cfg.max_in_features} "
          f"max_out={cfg.max_out_features} decoder={args.decoder} primitives={args.primitives}")
    print(f"derived  beat {d['beat_bytes']} B, dot {d['dot_width']} b, product {d['product_width']} b, "
          f"acc {d['acc_width']} b, buffer {d['act_buffer_words']} x 128 b, "
          f"{cfg.pipeline_stages} pipeline stages")
    print(f"wrote    {shown(r['verilog'])} ({r['verilog_bytes']:,} bytes)")
    print(f"wrote    {shown(r['sidecar'])}")
    return 0

