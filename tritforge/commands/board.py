"""``tritforge board``: talk to a board built by ``build-board`` over its UART host link.

``board info`` prints the board's engine parameters; ``board run`` sends a quantized
matrix (from a packed file, or a seeded random one) and activation vectors, and checks
the integer accumulators that come back against ``codec.golden``, bit for bit.
``--sim`` runs the same host code against the board's gateware in the Amaranth simulator
(bit-level UART model) instead of a serial port.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..errors import TritforgeError
from ..memory import check_matrix

HELP = "run GEMVs on a board over its UART link (or on the simulated board) and check them against the golden reference"


def add_arguments(p) -> None:
    from ..fpga.boards import DEFAULT_BAUD

    sub = p.add_subparsers(dest="board_command", metavar="<action>", required=True)
    for name, text in (("info", "print the board's engine parameters"),
                       ("run", "send a matrix and vectors, check the results against codec.golden")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("--port", metavar="DEV", help="serial port (e.g. /dev/ttyUSB0) or pyserial URL")
        s.add_argument("--baud", type=int, default=DEFAULT_BAUD, help=f"baud rate (default {DEFAULT_BAUD})")
        s.add_argument("--timeout", type=float, default=2.0, help="read timeout in seconds (default 2)")
        s.add_argument("--sim", action="store_true",
                       help="no board: simulate the board's gateware (Amaranth) behind a bit-level UART model")
        s.add_argument("--sim-rows", type=int, default=2, metavar="R",
                       help="--sim: rows in parallel of the simulated engine (default 2)")
        s.add_argument("--sim-divisor", type=int, default=4, metavar="N",
                       help="--sim: clock cycles per UART bit (default 4)")
        if name == "run":
            s.add_argument("--packed", metavar="FILE", help="packed trit file (tritforge quantize)")
            s.add_argument("--tensor", metavar="NAME", help="matrix name in --packed (default: the first)")
            s.add_argument("--random", metavar="OUTxIN", help="a seeded random matrix instead, e.g. 8x64")
            s.add_argument("--depth", type=int, default=2, help="--random: trits per weight (default 2)")
            s.add_argument("--max-rows", type=int, default=None, metavar="N",
                           help="use only the first N rows of the matrix")
            s.add_argument("--vectors", type=int, default=1, metavar="N",
                           help="activation vectors (at most the board's T; default 1)")
            s.add_argument("--seed", type=int, default=0, help="seed of the random matrix and vectors")


def _matrix(args):
    from ..codec import layout
    from ..codec.packfile import read_packed
    from ..codec.quantize import quantize_matrix

    if bool(args.packed) == bool(args.random):
        raise TritforgeError("board run: give exactly one of --packed FILE or --random OUTxIN")
    if args.packed:
        tensors, _ = read_packed(args.packed)
        name = args.tensor or next(iter(tensors))
        if name not in tensors:
            raise TritforgeError(f"{args.packed}: no matrix {name!r}; it has {sorted(tensors)[:5]}...")
        t = tensors[name]
    else:
        try:
            out, inp = (int(v) for v in args.random.lower().split("x"))
            assert out > 0 and inp > 0
        except (ValueError, AssertionError):
            raise TritforgeError(f"--random {args.random!r}: expected OUTxIN, e.g. 8x64") from None
        layout.check_depth(args.depth)
        check_matrix(out, inp, max(1, args.vectors), f"--random {args.random}")
        name = f"random {out}x{inp} d={args.depth} seed={args.seed}"
        rng = np.random.default_rng(args.seed)
        t = quantize_matrix(rng.standard_normal((out, inp)).astype(np.float32), args.depth)
    if args.max_rows is not None:
        if args.max_rows < 1:
            raise TritforgeError(f"--max-rows {args.max_rows}: expected at least 1")
        n = min(args.max_rows, t.q.shape[0])
        t = dataclasses.replace(t, q=t.q[:n], k=t.k[:n], shape=(n, t.shape[1]))
    return name, t


def _port(args, depth: int, in_padded: int, out: int):
    from ..fpga.hostlink import open_port

    if args.sim:
        from ..fpga.simboard import SimSerial
        from ..hwconfig import HwConfig

        vectors = getattr(args, "vectors", 1)
        hw = HwConfig(depth=depth, rows=args.sim_rows, vectors=vectors,
                      max_in_features=max(in_padded, 16), max_out_features=max(out, 1))
        return SimSerial(hw, divisor=args.sim_divisor), f"simulated board (d={depth}, R={args.sim_rows}, T={vectors})"
    if not args.port:
        raise TritforgeError("board: give --port DEV (or --sim for the simulated board)")
    return open_port(args.port, args.baud, args.timeout), f"{args.port} at {args.baud} Bd"


def run(args) -> int:
    from ..codec import golden, layout, packfile
    from ..fpga.hostlink import HostLink

    if args.board_command == "info":
        port, where = _port(args, 2, 16, 1)
        try:
            info = HostLink(port).reset()
        finally:
            port.close()
        print(f"board    {where}")
        for f in dataclasses.fields(info):
            print(f"{f.name:<11}{getattr(info, f.name)}")
        return 0

    name, t = _matrix(args)
    out = t.q.shape[0]
    port, where = _port(args, t.depth, t.in_padded, out)
    t0 = time.monotonic()
    try:
        link = HostLink(port, resync_pause=0.0 if args.sim else 0.2)
        info = link.reset()
        if info.depth != t.depth:
            raise TritforgeError(f"{name}: depth {t.depth}, but the board's engine has d={info.depth}")
        if not 1 <= args.vectors <= info.vectors:
            raise TritforgeError(f"--vectors {args.vectors}: the board takes 1..{info.vectors}")
        rng = np.random.default_rng(args.seed + 1)
        xq, _ = golden.quantize_activations(rng.standard_normal((args.vectors, t.shape[1])), t.in_padded)
        beats = layout.stream_beats(t.q, t.k, t.depth, info.rows)
        link.load_codebook(packfile.codebook_words(t.codebook))
        A = link.gemv(beats, xq)[:, :out]
    finally:
        port.close()
    seconds = time.monotonic() - t0
    expect = golden.accumulators(t, xq)
    bad = int((np.asarray(A, dtype=object) != np.asarray(expect, dtype=object)).sum())
    print(f"board    {where}: engine d={info.depth} R={info.rows} T={info.vectors} acc {info.acc_width} b")
    print(f"matrix   {name}: {out}x{t.shape[1]} ({beats.shape[0]} tiles x {beats.shape[1]} groups, "
          f"{beats.size:,} weight bytes), {args.vectors} vector(s)")
    print(f"time     {seconds:.2f} s")
    if bad:
        print(f"result   MISMATCH: {bad} of {A.size} accumulators differ from codec.golden")
        return 1
    print(f"result   all {A.size} accumulators equal codec.golden (bit-exact)")
    return 0
