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
    p.add_argument("--top", default=None, metavar="NAME",
                   help="Verilog module name (default tritforge_engine, tritforge_layer with --layer)")
    p.add_argument("--layer", action="store_true",
                   help="write the decoder-layer top (engine, attention and vector units; hw/LAYER.md) "
                        "for the model shape of --model-config instead of the engine alone; --vectors T "
                        "is its tokens per command (1: decode; T > 1: T prompt tokens, one pass over "
                        "the weights)")
    p.add_argument("--model-config", metavar="PATH|NAME", default="smollm2-135m",
                   help="with --layer: the layer's shape, a config.json path or a bundled shape "
                        "(default smollm2-135m)")
    p.add_argument("--accel", metavar="FILE",
                   help="with --layer: AccelConfig JSON (attention and vector units); the engine "
                        "comes from the options above")
    p.add_argument("--lanes", type=int, default=16, metavar="L",
                   help="with --layer: int8 elements per attention-unit beat (default 16; a divisor "
                        "of head_dim is used)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")


def run(args) -> int:
    from ..hw import verilog

    cfg = hw_from_args(args)
    if args.layer:
        return run_layer(args, cfg)
    args.top = args.top or "tritforge_engine"
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
    if cfg.variable:
        print(f"stream   variable-depth columns of up to {cfg.column_bytes_max} B on mem "
              f"({cfg.mem_bytes} B a beat), word FIFO {cfg.window_words} beats, gearbox {cfg.gearbox_cycles} cycles")
    print(f"wrote    {shown(r['verilog'])} ({r['verilog_bytes']:,} bytes)")
    print(f"wrote    {shown(r['sidecar'])}")
    return 0



def run_layer(args, cfg) -> int:
    import dataclasses

    from ..accelconfig import AccelConfig
    from ..hw import layerverilog
    from ..layerconfig import LayerConfig
    from ..sim.estimate import load_shape

    top = args.top or layerverilog.TOP
    if not top.isidentifier():
        raise TritforgeError(f"--top {top!r}: expected a Verilog identifier")
    if args.primitives != "generic" or args.decoder != DEFAULT_STYLE:
        raise TritforgeError("--layer: the layer top is built with the default decoder and generic "
                             "primitives; expected no --decoder / --primitives")
    if args.lanes < 1:
        raise TritforgeError(f"--lanes {args.lanes}: expected at least 1")
    shape = load_shape(args.model_config)
    accel = AccelConfig.from_json(args.accel) if args.accel else AccelConfig()
    lcfg = LayerConfig.for_model(shape, dataclasses.replace(accel, engine=cfg), args.lanes, tokens=cfg.vectors)
    r = layerverilog.write(lcfg, args.out, top)
    side = r["side"]["derived"]
    e = lcfg.accel.engine
    print(f"layer    hidden {lcfg.hidden}, intermediate {lcfg.intermediate}, {lcfg.heads} heads over "
          f"{lcfg.kv_heads} KV heads of {lcfg.head_dim}; attention lanes {lcfg.lanes}; engine d={e.depth} "
          f"R={e.rows}")
    print(f"derived  vector memory {lcfg.memory_depth:,} x {lcfg.accel.vector.resid_bits} b; "
          f"{sum(m['beats'] for m in side['matrices']):,} weight beats and "
          f"{side['cycles_context_1']:,} cycles per " +
          ("decode token at context 1" if lcfg.tokens == 1 else f"command of {lcfg.tokens} prompt tokens at positions "
           f"0..{lcfg.tokens - 1}"))
    print(f"wrote    {shown(r['verilog'])} ({r['verilog_bytes']:,} bytes)")
    print(f"wrote    {shown(r['sidecar'])}")
    return 0
