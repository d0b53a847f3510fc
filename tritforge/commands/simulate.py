"""``tritforge simulate``: one matrix through the cycle models of the engine.

The matrix comes from a packed file (``--packed FILE --layer NAME``) or is a seeded random
Gaussian matrix quantized here (``--shape OUTxIN --depth D``). Its activations are seeded
random vectors (``--tokens N``). The vectorized model (``fast``) gives results, cycles and
action counts for always-valid inputs and an always-ready output; the per-cycle stepping
model (``step``) replays the same commands with random valid/ready (``--p-valid``,
``--p-ready``) and shows what back-pressure costs. Both are checked against the integer
golden reference; without stalls their cycle counts must agree.
"""
from __future__ import annotations

import re
import time

from ..errors import TritforgeError
from ..memory import check_matrix
from ._hwoptions import add_hw_arguments, hw_from_args

#: the stepping model runs about 20,000 cycles per second on this machine
MAX_STEP_CYCLES = 1_000_000

HELP = "run one matrix through the engine's cycle models (vectorized and per-cycle), check it, count cycles"


def add_arguments(p) -> None:
    src = p.add_argument_group("matrix")
    src.add_argument("--packed", metavar="FILE", help="a packed trit file (tritforge quantize)")
    src.add_argument("--layer", metavar="NAME",
                     help="matrix of --packed: exact name or a unique substring (default: the first)")
    src.add_argument("--shape", metavar="OUTxIN", help="a random matrix of this shape instead, e.g. 576x1536")
    src.add_argument("--mode", default="tritllm-v2", choices=("tritllm-v2", "tritforge"),
                     help="quantizer mode for --shape (default tritllm-v2)")
    add_hw_arguments(p)
    p.add_argument("--tokens", type=int, default=1, metavar="N",
                   help="activation vectors (default 1: one decode step)")
    p.add_argument("--models", default="fast,step", metavar="LIST",
                   help="cycle models to run: fast, step or fast,step (default fast,step)")
    p.add_argument("--p-valid", type=float, default=1.0, metavar="P",
                   help="stepping model: chance that a pending input stream is valid in a cycle (default 1)")
    p.add_argument("--p-ready", type=float, default=1.0, metavar="P",
                   help="stepping model: chance that the result stream is ready in a cycle (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random matrix, vectors and stalls")


def _matrix(args):
    import numpy as np

    from ..codec import packfile
    from ..codec.quantize import quantize_matrix

    if bool(args.packed) == bool(args.shape):
        raise TritforgeError("give either --packed FILE or --shape OUTxIN")
    if args.packed:
        tensors, _ = packfile.read_packed(args.packed)
        names = list(tensors)
        if args.layer is None:
            name = names[0]
        elif args.layer in tensors:
            name = args.layer
        else:
            hits = [n for n in names if args.layer in n]
            if len(hits) != 1:
                raise TritforgeError(f"--layer {args.layer!r}: {len(hits)} matrices of {args.packed} match; "
                                     f"expected exactly one (e.g. {names[0]})")
            name = hits[0]
        return name, tensors[name]
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.shape)
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise TritforgeError(f"--shape {args.shape!r}: expected OUTxIN with positive sizes, e.g. 576x1536")
    out, n_in = int(m.group(1)), int(m.group(2))
    check_matrix(out, n_in, args.tokens, f"--shape {args.shape} with --tokens {args.tokens}")
    depth = args.depth or 2
    w = np.random.default_rng(args.seed).standard_normal((out, n_in)).astype(np.float32)
    return f"random {out}x{n_in}", quantize_matrix(w, depth, args.mode, name="--shape")


def run(args) -> int:
    import numpy as np

    from ..codec import golden
    from ..sim import fastmodel, steprun

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - {"fast", "step"}:
        raise TritforgeError(f"--models {args.models!r}: expected fast, step or fast,step")
    if args.tokens < 1:
        raise TritforgeError(f"--tokens {args.tokens}: expected at least 1")
    name, t = _matrix(args)
    if args.depth is None:
        args.depth = t.depth
    cfg = hw_from_args(args)
    if cfg.depth != t.depth:
        raise TritforgeError(f"{name}: quantized at d={t.depth}, but --depth {cfg.depth}")
    out, n_in = t.shape
    cfg.check_shape(out, t.in_padded, name)
    check_matrix(out, n_in, args.tokens, f"{name} with --tokens {args.tokens}")
    if "step" in models:
        steps = fastmodel.ideal_cycles(cfg, out, n_in, args.tokens)
        if steps > MAX_STEP_CYCLES:
            raise TritforgeError(f"{name} with --tokens {args.tokens}: about {steps:,} cycles, more than the "
                                 f"stepping model runs ({MAX_STEP_CYCLES:,}, about a minute); use --models fast")
    x = np.random.default_rng(args.seed + 1).standard_normal((args.tokens, n_in))
    xq, _ = golden.quantize_activations(x, t.in_padded)
    expected = golden.accumulators(t, xq)

    print(f"matrix    {name}: {out}x{n_in} (in padded to {t.in_padded}), d={t.depth}, {t.mode}")
    print(f"engine    d={cfg.depth} R={cfg.rows} T={cfg.vectors}, {cfg.beat_bytes} B/beat, "
          f"{cfg.pipeline_stages} pipeline stages, {cfg.clock_mhz:g} MHz")
    print(f"vectors   {args.tokens} in {fastmodel.commands(cfg, args.tokens)} command(s) of T={cfg.vectors}")
    ideal = fastmodel.ideal_cycles(cfg, out, n_in, args.tokens)
    fast_cycles = None
    if "fast" in models:
        t0 = time.perf_counter()
        r = fastmodel.run_matrix(cfg, t, xq)
        dt = time.perf_counter() - t0
        ok = np.array_equal(r.acc, expected)
        fast_cycles = r.cycles
        print(f"fast      {r.cycles:,} cycles ({r.cycles / cfg.clock_mhz:,.2f} us), ideal {ideal:,}, "
              f"weight-stream utilisation {r.utilisation:.2%}; golden {'match' if ok else 'MISMATCH'}; "
              f"{dt * 1e3:.1f} ms")
        acts = r.actions.to_dict()
        print("actions   " + ", ".join(f"{k} {v:,}" for k, v in acts.items() if k != "cycles"))
        if not ok:
            return 1
    if "step" in models:
        r = steprun.run_matrix(cfg, t, xq, p_valid=args.p_valid, p_ready=args.p_ready, seed=args.seed)
        ok = np.array_equal(r.acc, expected)
        rate = r.total_cycles / r.seconds if r.seconds > 0 else float("inf")
        print(f"step      {r.cycles:,} cycles in commands (+{r.total_cycles - r.cycles:,} codebook/idle), "
              f"p_valid {args.p_valid:g}, p_ready {args.p_ready:g}; golden {'match' if ok else 'MISMATCH'}; "
              f"{r.seconds:.2f} s ({rate:,.0f} cycles/s)")
        if not ok:
            return 1
        if fast_cycles is not None:
            if args.p_valid == 1 and args.p_ready == 1:
                if r.cycles != fast_cycles:
                    print(f"error     stepping model {r.cycles:,} cycles != vectorized model {fast_cycles:,}")
                    return 1
                print("agree     stepping and vectorized models give the same cycle count")
            else:
                print(f"stalls    cost {r.cycles - fast_cycles:+,} cycles "
                      f"({r.cycles / fast_cycles - 1:+.1%}) over the stall-free run")
    return 0
