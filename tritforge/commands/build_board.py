"""``tritforge build-board``: a bitstream of the engine + UART host link for a board."""
from __future__ import annotations

HELP = ("build a bitstream (yowasp yosys/nextpnr/packer) of the GEMV engine with its UART "
        "host link for a board: ulx3s (ECP5-85F) or icebreaker (iCE40UP5K)")


def add_arguments(p) -> None:
    from ..fpga.boards import BOARDS, DEFAULT_BAUD
    from ._hwoptions import add_hw_arguments

    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="; ".join(f"{n}: default R={b.hw.rows}, d={b.hw.depth}, "
                                  f"max_in={b.hw.max_in_features}" for n, b in sorted(BOARDS.items())))
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART baud rate (default {DEFAULT_BAUD}); within 2 %% of clock/integer")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    add_hw_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="build folder: bitstream, logs, timing report (top.tim), board.json")


def run(args) -> int:
    import os

    from ..fpga.boards import board, build_board
    from ._hwoptions import hw_from_args

    b = board(args.board)
    hw = hw_from_args(args, base=b.hw)
    print(f"board    {args.board} ({b.platform}): engine d={hw.depth} R={hw.rows} T={hw.vectors} "
          f"max_in={hw.max_in_features}, UART {args.baud} Bd")
    rep = build_board(args.board, hw, args.baud, args.out, seed=args.seed)
    fm = ", ".join(f"{k} {v:.1f} MHz" for k, v in rep["fmax_mhz"].items()) or "not reported"
    print(f"timing   clock {rep['clock_mhz']:g} MHz, Fmax {fm}; UART divisor {rep['divisor']}")
    print(f"wrote    {os.path.join(args.out, rep['bitstream'])} ({rep['bitstream_bytes']:,} bytes)")
    print(f"wrote    {os.path.join(args.out, 'board.json')}")
    return 0
