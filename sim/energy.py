"""Action-energy tables: pJ per counted action, read from a TOML file with a source per number.

A table (``sim/data/energy/*.toml``; the default is Horowitz, ISSCC 2014, 45 nm) has

    name, version, description
    [primitives.add]   bits = [...], pj = [...], source      width -> pJ of one add
    [primitives.mult]  bits = [...], pj = [...], source      (square) width -> pJ of one multiply
    [primitives.sram]  kbytes = [...], pj_per_64bit = [...], source   array size -> pJ per 64-bit access
    [actions.<counter>]   one row for every counter of ``sim.actions.Actions``, either
                          pj = <number>                      a fixed energy per count, or
                          op = "add",  bits = W              an add of width W
                          op = "mult", bits = [Wa, Wb]       a Wa x Wb multiply
                          op = "sram", size = S [, bits = W] a W-bit access (W = 1 if absent)
                                                             to an array of size S
                          op = "memory", unit = "bit"|"byte" off-chip traffic at the memory's pJ/bit
                          and always source = "..."
    [memory.<type>]    pj_per_bit, source                   off-chip memory per bit, by type
    [units.<action>]   optional: one row for every action of the attention and vector units and
                       of the other weight formats (``UNIT_ACTIONS``), same forms as [actions]

``op = "clock"`` (only for ``actions.cycles``): the clock tree's energy per engine cycle,
``share / (1 - share)`` times the datapath energy of one full-rate engine cycle (every lane
busy: R x 16 x d trit terms, the adder trees, the group multiplies and accumulates, the
codebook reads, each slice's activation multiples and buffer read), where ``share`` is the
clock network's published share of an FPGA's dynamic power.

Widths W are integers or names of the hardware's widths (``WIDTH_NAMES``), sizes S are
bytes or ``act_buffer`` / ``codebook``; they are resolved against an ``HwConfig``, so one
table serves every depth d and array size. Interpolation (documented in the default table):
adds piecewise linear in the width, multiplies linear in the product of the operand widths,
SRAM log-log in the array size; outside the points the nearest segment's slope continues.

The table document (``tritforge.documents.energytable.EnergyTableDoc``) owns the file's
rules and the names above (``UNIT_ACTIONS``, ``WIDTH_NAMES``, ``SIZE_NAMES``); a table that
breaks them is refused with one line naming the file and the field path.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from importlib import resources

from ..codec import layout
from ..documents.energytable import UNIT_ACTIONS, EnergyTableDoc
from ..documents.validation import validate
from ..errors import TritforgeError
from ..tomlfile import read_toml
from ..hwconfig import DEFAULT, HwConfig
from .actions import Actions

DEFAULT_TABLE = "horowitz-45nm.toml"


def default_table_path() -> str:
    return str(resources.files(__package__).joinpath("data", "energy", DEFAULT_TABLE))


# --- interpolation -------------------------------------------------------------------------

def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise-linear through (xs, ys), continuing the end segments' slopes outside."""
    if len(xs) == 1:
        return ys[0] * x / xs[0]
    i = 1
    while i < len(xs) - 1 and x > xs[i]:
        i += 1
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def tree_mean_width(act_bits: int, lanes: int = layout.GROUP) -> float:
    """Mean width of the adders of a binary tree over ``lanes`` inputs of ``act_bits``."""
    widths, n, level = [], lanes, 1
    while n > 1:
        n //= 2
        widths += [act_bits + level] * n
        level += 1
    return sum(widths) / len(widths)


def hw_widths(hw: HwConfig) -> dict[str, float]:
    w = hw.widths
    return {"act": w.act, "tree": tree_mean_width(w.act), "dot": w.dot, "mant": hw.mant_bits,
            "product": w.product, "acc": w.acc, "codebook_word": hw.codebook_word_bits}


def hw_sizes(hw: HwConfig) -> dict[str, float]:
    """Array sizes in bytes: the activation buffer and the 27-entry codebook."""
    return {"act_buffer": hw.act_buffer_words * layout.GROUP * hw.act_bits / 8,
            "codebook": layout.CODEBOOK_SIZE * hw.codebook_word_bits / 8}


# --- rows ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionRow:
    name: str
    source: str
    op: str | None = None           #: None: a fixed ``pj``
    pj: float | None = None
    bits: tuple = ()                #: widths (ints or WIDTH_NAMES)
    size: object = None             #: bytes or SIZE_NAMES (sram)
    unit: str = "bit"               #: memory: "bit" or "byte"


@dataclass(frozen=True)
class MemoryRow:
    name: str
    pj_per_bit: float
    source: str


@dataclass(frozen=True)
class EnergyTable:
    name: str
    version: str
    path: str
    sha256: str
    description: str
    primitives: dict = field(repr=False)   #: op -> (xs, ys, source)
    actions: dict = field(repr=False)      #: counter -> ActionRow
    memory: dict = field(repr=False)       #: type -> MemoryRow
    units: dict = field(default_factory=dict, repr=False)   #: unit action -> ActionRow (may be empty)

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | None = None) -> "EnergyTable":
        """Read and validate a table; ``None`` is the default (Horowitz 45 nm)."""
        path = default_table_path() if path is None else str(path)
        data, raw = read_toml(path, "energy table")
        return cls.from_dict(data, path, hashlib.sha256(raw).hexdigest())

    @classmethod
    def from_dict(cls, data: dict, path: str = "<dict>", sha256: str = "") -> "EnergyTable":
        """Build the table of a parsed file, checked by its document (``EnergyTableDoc``)."""
        doc = validate(EnergyTableDoc, data, f"energy table {path}")
        prims = {}
        for op in ("add", "mult", "sram"):
            curve = getattr(doc.primitives, op)
            if curve is not None:
                xs, ys = (list(map(float, getattr(curve, k))) for k in (curve.X, curve.Y))
                if op == "mult":
                    xs = [v * v for v in xs]      # square multipliers: interpolate in partial products
                prims[op] = (xs, ys, curve.source)
        memory = {m: MemoryRow(m, float(r.pj_per_bit), r.source) for m, r in doc.memory.items()}
        actions = {n: _row(n, doc.actions[n]) for n in Actions.names()}
        units = {n: _row(n, doc.units[n]) for n in UNIT_ACTIONS} if doc.units else {}
        return cls(doc.name, doc.version, path, sha256, doc.description, prims, actions, memory, units)

    # --- figures ---------------------------------------------------------------------------
    def info(self) -> dict:
        """What every report names: the table and its version (and which file, which bytes)."""
        return {"name": self.name, "version": self.version, "path": self.path, "sha256": self.sha256}

    def memory_pj_per_bit(self, memory: str) -> float:
        if memory not in self.memory:
            raise TritforgeError(f"memory type {memory!r}: not in energy table {self.name} "
                                 f"{self.version}; expected one of {sorted(self.memory)}")
        return self.memory[memory].pj_per_bit

    def action_pj(self, memory: str, hw: HwConfig | None = None) -> dict[str, float]:
        """pJ of one count of every action for this hardware and memory type."""
        hw = DEFAULT if hw is None else hw
        out = {name: self._row_pj(row, memory, hw) for name, row in self.actions.items() if row.op != "clock"}
        for name, row in self.actions.items():
            if row.op == "clock":
                out[name] = row.pj * engine_cycle_datapath_pj(out, hw) / (1 - row.pj)
        return {name: out[name] for name in self.actions}

    def unit_pj(self, memory: str, hw: HwConfig | None = None) -> dict[str, float]:
        """pJ of one count of every unit action (``UNIT_ACTIONS``)."""
        if not self.units:
            raise TritforgeError(f"energy table {self.path}: no [units] rows (the attention and vector "
                                 f"units' actions {list(UNIT_ACTIONS)} need a price each)")
        hw = DEFAULT if hw is None else hw
        return {name: self._row_pj(row, memory, hw) for name, row in self.units.items()}

    def unit_energy_pj(self, counts: dict, memory: str, hw: HwConfig | None = None) -> dict[str, float]:
        per = self.unit_pj(memory, hw)
        unknown = sorted(set(counts) - set(per))
        if unknown:
            raise TritforgeError(f"unit action counts: unknown {unknown}; expected some of {list(UNIT_ACTIONS)}")
        return {k: float(v) * per[k] for k, v in counts.items()}

    def _row_pj(self, row: "ActionRow", memory: str, hw: HwConfig) -> float:
        widths, sizes = hw_widths(hw), hw_sizes(hw)
        if row.op is None:
            return row.pj
        if row.op == "add":
            return self._prim("add", _resolve(row.bits[0], widths))
        if row.op == "mult":
            a, b = (_resolve(x, widths) for x in row.bits)
            return self._prim("mult", a * b)
        if row.op == "sram":
            size = _resolve(row.size, sizes)
            bits = _resolve(row.bits[0], widths) if row.bits else 1
            return self._prim("sram", size / 1024) * bits / 64
        return self.memory_pj_per_bit(memory) * (8 if row.unit == "byte" else 1)

    def energy_pj(self, actions, memory: str, hw: HwConfig | None = None) -> dict[str, float]:
        """Energy of a set of action counts, pJ per counter: count x pJ per count.

        ``actions``: an ``Actions`` or its ``to_dict()``; ``memory``: a memory type of the
        table (``Board.memory``); ``hw``: the config whose widths and buffer sizes price the
        datapath (default: ``HwConfig()``, d = 2).
        """
        counts = actions.to_dict() if isinstance(actions, Actions) else Actions.from_dict(dict(actions)).to_dict()
        per = self.action_pj(memory, hw)
        return {name: counts[name] * per[name] for name in self.actions}

    def rows(self, memory: str, hw: HwConfig | None = None) -> list[dict]:
        """The table resolved for one config: action, pJ per count, how, source."""
        per = self.action_pj(memory, hw)
        out = []
        for name, row in self.actions.items():
            how = row.op or "fixed"
            if row.op in ("add", "mult"):
                how += " " + " x ".join(str(b) for b in row.bits)
            elif row.op == "sram":
                how += f" {row.size}"
            elif row.op == "memory":
                how += f" {memory} per {row.unit}"
            elif row.op == "clock":
                how += f" share {row.pj:g} of dynamic power"
            out.append({"action": name, "pj": per[name], "how": how, "source": row.source})
        return out

    def _prim(self, op: str, x: float) -> float:
        if op not in self.primitives:
            raise TritforgeError(f"energy table {self.path}: [primitives.{op}] is needed")
        xs, ys, _ = self.primitives[op]
        if op == "sram":   # log-log in the array size
            return math.exp(_interp(math.log(x), [math.log(v) for v in xs], [math.log(v) for v in ys]))
        return _interp(x, xs, ys)


def _row(name: str, doc) -> ActionRow:
    """The ActionRow of a validated row (``clock``'s share is kept in ``pj``)."""
    pj = doc.share if doc.op == "clock" else doc.pj
    return ActionRow(name, doc.source, op=doc.op, pj=None if pj is None else float(pj),
                     bits=tuple(doc.bits or ()), size=doc.size, unit=doc.unit or "bit")


def engine_cycle_datapath_pj(per: dict, hw: HwConfig) -> float:
    """Datapath pJ of one full-rate engine cycle (one beat, every lane busy), from the per-count
    energies ``per`` of the engine's actions: the base of the clock tree's share."""
    from .fastmodel import MULTIPLE_ADDS

    r, d, g = hw.rows, hw.depth, layout.GROUP
    slices = len(hw.slices)
    return (r * g * d * per["trit_addsub"] + r * (g * d - 1) * per["tree_add"] + r * per["group_mul"]
            + r * per["acc_add"] + r * per["codebook_read"] + slices * g * MULTIPLE_ADDS[d] * per["plane_add"]
            + slices * g * hw.act_bits * per["act_read_bits"])


def _resolve(v, names: dict) -> float:
    return float(names[v]) if isinstance(v, str) else float(v)
