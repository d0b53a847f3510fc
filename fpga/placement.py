"""Block placement: each engine's hard blocks fixed to a region of its own, by ``BEL``.

nextpnr-ecp5 has no region constraints, but it places a cell whose ``BEL`` attribute names
a site on that site. ``BlockPlan`` uses this to keep each engine of an array
(``hw/engine_array.py``, kept modules ``keep_engine<e>``), each lockstep slice
(``keep_slice<c>``) or a single engine together: the chip is cut into a grid of one
region per group, and every ``DP16KD`` (activation buffer) and ``MULT18X18D`` (scale
multipliers) of a group is given the free sites of its kind nearest its region's centre.
The placer then gathers each group's logic around its blocks, the logic they feed and
are fed by, instead of spreading it over the chip.

The plan is derived from the design itself: the hard-block cells are read from the
RTLIL Amaranth writes (``cell \\DP16KD \\bram0`` in ``module \\top.engine.keep_engine0.actbuf``),
grouped by the kept engine or slice module they sit in, and given sites in group order.
The synthesis flow (``fpga.synth.run_flow``, ``place_blocks``) puts the attributes on with
Yosys ``setattr`` before synthesis (flattening keeps a cell's attributes) and records the
plan in its report. Without it the flow is unchanged and the placer is free.

Sites (``DEVICES``): the ECP5 device's grid size and its rows of block-RAM and multiplier
sites, as nextpnr-ecp5 names them (``X<x>/Y<y>/EBR<i>``, ``X<x>/Y<y>/MULT18_<i>``).
They were read from a design of every DP16KD and MULT18X18D of the device placed by
nextpnr (its cells' ``NEXTPNR_BEL``); ``tests/test_placement.py`` repeats that.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import TritforgeError
from ..hw.replica import KEEP_PREFIX

#: the hard blocks a plan places, by cell type
BLOCK_TYPES = ("DP16KD", "MULT18X18D")
#: cells of a type a plan puts in one block of sites: a DSP block's four multipliers share
#: four clock-enable inputs, and each of the engine's multipliers has an enable of its own
#: besides the constant ones (nextpnr: "DSP block ... has more than four distinct CE
#: signals" with four)
PER_BLOCK = {"DP16KD": 4, "MULT18X18D": 2}


@dataclass(frozen=True)
class Device:
    name: str
    width: int                              #: tile columns (X)
    height: int                             #: tile rows (Y)
    columns: tuple[int, ...]                #: X of every block column's first tile
    ebr_rows: tuple[int, ...]               #: Y of the block-RAM rows
    dsp_rows: tuple[int, ...]               #: Y of the multiplier rows
    #: (X offset from the column's first tile, BEL suffix) of each site of a column
    ebr_sites: tuple[tuple[int, str], ...] = ((0, "EBR0"), (2, "EBR1"), (4, "EBR2"), (6, "EBR3"))
    dsp_sites: tuple[tuple[int, str], ...] = ((0, "MULT18_0"), (1, "MULT18_1"),
                                              (4, "MULT18_4"), (5, "MULT18_5"))

    def sites(self, cell_type: str) -> list[tuple[int, int, str, tuple[int, int]]]:
        """Every site of ``cell_type`` as (x, y, BEL name, (x, y) of its column's block)."""
        rows, offsets = ((self.ebr_rows, self.ebr_sites) if cell_type == "DP16KD"
                         else (self.dsp_rows, self.dsp_sites))
        return [(c + dx, y, f"X{c + dx}/Y{y}/{suffix}", (c, y))
                for y in rows for c in self.columns for dx, suffix in offsets]


DEVICES = {
    "ecp5-85f": Device("LFE5U-85F", 126, 95,
                       columns=(4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114),
                       ebr_rows=(22, 46, 70, 82), dsp_rows=(10, 34, 58)),
}

_MODULE = re.compile(r"^module \\(\S+)$")
_CELL = re.compile(r"^\s*cell \\(\S+) \\(\S+)$")
#: the kept module of a group below the engine: an array's engine or a lockstep slice
_GROUP = re.compile(rf"^(top\.engine\.{re.escape(KEEP_PREFIX)}(?:engine|slice)\d+)(?:\.|$)")


def hard_blocks(rtlil_text: str) -> list[tuple[str, str, str]]:
    """(module, cell name, cell type) of every ``BLOCK_TYPES`` cell, in the text's order."""
    out, module = [], None
    for line in rtlil_text.splitlines():
        m = _MODULE.match(line)
        if m:
            module = m.group(1)
            continue
        c = _CELL.match(line)
        if c and c.group(1) in BLOCK_TYPES:
            out.append((module, c.group(2), c.group(1)))
    return out


def _group_key(module: str) -> tuple:
    """Groups in engine order (``keep_engine10`` after ``keep_engine9``)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", module))


def grid(n: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) of the region grid for ``n`` groups: the fewest regions that hold
    them, as near square (in tiles) as the chip's aspect allows."""
    best = None
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        aspect = abs(math.log((width / cols) / (height / rows)))
        key = (cols * rows - n, aspect)
        if best is None or key < best[0]:
            best = (key, (cols, rows))
    return best[1]


@dataclass(frozen=True)
class BlockPlan:
    device: str
    #: group module -> (centre x, centre y) of its region
    centres: dict
    #: (module, cell, cell type, BEL) per hard block
    bels: tuple[tuple[str, str, str, str], ...]

    def yosys_lines(self) -> list[str]:
        """Yosys commands that put each block's ``BEL`` attribute on (before synthesis)."""
        return [f'setattr -set BEL "{bel}" {module}/{cell}' for module, cell, _, bel in self.bels]

    def summary(self) -> dict:
        """The plan for the report: each group's region centre and its blocks' sites."""
        groups = {}
        for module, cell, kind, bel in self.bels:
            g = _group_of(module)
            groups.setdefault(g, {"centre": list(self.centres[g]), "DP16KD": [],
                                  "MULT18X18D": []})[kind].append(bel)
        return {"device": self.device, "groups": groups}


def _group_of(module: str) -> str:
    m = _GROUP.match(module)
    return m.group(1) if m else "top.engine"


def _take(sites: list, n: int, per_block: int) -> list:
    """The first ``n`` of ``sites`` (in their order) with at most ``per_block`` in a block
    (``PER_BLOCK``); fewer when they do not have that many."""
    out, used = [], {}
    for s in sites:
        if used.get(s[3], 0) < per_block:
            used[s[3]] = used.get(s[3], 0) + 1
            out.append(s)
            if len(out) == n:
                break
    return out


def _nearest(free: list, n: int, cx: float, cy: float, per_block: int) -> list:
    """``n`` sites of ``free`` for a region centred on (cx, cy), at most ``per_block`` in a
    block: in the row of sites nearest the centre that has room, the nearest the centre's
    x (one row keeps a group's blocks of a kind side by side); nearest overall when no row
    has room."""
    if n == 0:
        return []
    rows = sorted({s[1] for s in free}, key=lambda y: (abs(y - cy), y))
    for y in rows:
        row = _take(sorted((s for s in free if s[1] == y), key=lambda s: (abs(s[0] - cx), s[0])),
                    n, per_block)
        if len(row) == n:
            return row
    near = _take(sorted(free, key=lambda s: (abs(s[0] - cx) + abs(s[1] - cy), s[0], s[1])),
                 n, per_block)
    if len(near) < n:
        raise TritforgeError(f"block placement: {n} blocks but the free sites hold {len(near)} "
                             f"at {per_block} a block")
    return near


def plan(rtlil_text: str, target: str) -> BlockPlan:
    """The plan for the design ``rtlil_text`` on ``target`` (module docstring): groups in engine
    order, each region's blocks of a kind on the free sites ``_nearest`` its centre."""
    if target not in DEVICES:
        raise TritforgeError(f"block placement: no site table for target {target!r} "
                             f"(expected one of {sorted(DEVICES)})")
    dev = DEVICES[target]
    blocks = [b for b in hard_blocks(rtlil_text) if b[0].startswith("top.engine")]
    if not blocks:
        raise TritforgeError("block placement: the design has no DP16KD or MULT18X18D under "
                             "top.engine (an engine built with the ecp5 primitives)")
    groups = sorted({_group_of(mod) for mod, _, _ in blocks}, key=_group_key)
    cols, rows = grid(len(groups), dev.width, dev.height)
    centres = {g: ((i % cols + 0.5) * dev.width / cols, (i // cols + 0.5) * dev.height / rows)
               for i, g in enumerate(groups)}
    free = {kind: dev.sites(kind) for kind in BLOCK_TYPES}
    bels = []
    for g in groups:
        cx, cy = centres[g]
        for kind in BLOCK_TYPES:
            mine = [(mod, cell) for mod, cell, k in blocks if k == kind and _group_of(mod) == g]
            if len(mine) > len(free[kind]):
                raise TritforgeError(f"block placement: {len(mine)} {kind} in {g} but "
                                     f"{len(free[kind])} free sites left on {dev.name}")
            sites = _nearest(free[kind], len(mine), cx, cy, PER_BLOCK[kind])
            for (mod, cell), site in zip(mine, sites):
                bels.append((mod, cell, kind, site[2]))
                free[kind].remove(site)
    return BlockPlan(dev.name, {g: (round(x, 1), round(y, 1)) for g, (x, y) in centres.items()},
                     tuple(bels))
