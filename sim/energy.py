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
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from importlib import resources

from ..codec import layout
from ..errors import TritforgeError
from ..tomlfile import read_toml
from ..hwconfig import DEFAULT, HwConfig
from .actions import Actions

DEFAULT_TABLE = "horowitz-45nm.toml"
OPS = ("add", "mult", "sram", "memory", "clock")
#: actions of the attention unit, the vector unit, and of weight formats other than the codec's
#: (counted by ``sim.unitcycles`` and ``sim.estimate``), priced by a table's [units] rows
UNIT_ACTIONS = ("qk_mac", "pv_mac", "unit_acc_add", "exp_lut", "vec_mul", "vec_add", "vec_lut",
                "unit_sram_bits", "lm_head_mac", "mac_int4", "mac_int8", "mac_ternary",
                "kv_read_bytes", "kv_write_bytes", "lm_head_bytes", "other_read_bytes", "out_write_bytes")
WIDTH_NAMES = ("act", "tree", "dot", "mant", "product", "acc", "codebook_word")
SIZE_NAMES = ("act_buffer", "codebook")
_PRIMITIVE_KEYS = {"add": ("bits", "pj"), "mult": ("bits", "pj"), "sram": ("kbytes", "pj_per_64bit")}


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
        where = f"energy table {path}"
        unknown = sorted(set(data) - {"name", "version", "description", "primitives", "actions", "memory", "units"})
        if unknown:
            raise TritforgeError(f"{where}: unknown top-level keys {unknown}")
        for key in ("name", "version"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise TritforgeError(f"{where}: missing '{key}' (expected a non-empty string)")
        prims = {op: _primitive(op, spec, where) for op, spec in _table(data, "primitives", where).items()}
        memory = {}
        for mem, spec in _table(data, "memory", where, required=True).items():
            spec = _table({mem: spec}, mem, f"{where} [memory.{mem}]")
            memory[mem] = MemoryRow(mem, _energy(spec, "pj_per_bit", f"{where} [memory.{mem}]"),
                                    _source(spec, f"{where} [memory.{mem}]"))
        rows_in = _table(data, "actions", where, required=True)
        names = Actions.names()
        _check_rows(rows_in, names, where, "actions")
        actions = {n: _action(n, rows_in[n], prims, where) for n in names}
        for n, row in actions.items():
            if row.op == "clock" and n != "cycles":
                raise TritforgeError(f"{where} [actions.{n}]: op 'clock' prices only 'cycles'")
        units_in = _table(data, "units", where)
        units = {}
        if units_in:
            _check_rows(units_in, UNIT_ACTIONS, where, "unit actions")
            units = {n: _action(n, units_in[n], prims, where, "units") for n in UNIT_ACTIONS}
            if any(r.op == "clock" for r in units.values()):
                raise TritforgeError(f"{where}: op 'clock' is for actions.cycles only")
        return cls(data["name"], data["version"], path, sha256, str(data.get("description", "")),
                   prims, actions, memory, units)

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


# --- validation helpers --------------------------------------------------------------------

def _check_rows(rows: dict, names, where: str, what: str) -> None:
    """``rows`` has a row for every one of ``names`` and no other."""
    unknown = sorted(set(rows) - set(names))
    if unknown:
        raise TritforgeError(f"{where}: unknown {what} {unknown}; expected {list(names)}")
    missing = [n for n in names if n not in rows]
    if missing:
        raise TritforgeError(f"{where}: missing {what} {missing} (every one needs a row)")


def _table(data: dict, key: str, where: str, required: bool = False) -> dict:
    value = data.get(key)
    if value is None:
        if required:
            raise TritforgeError(f"{where}: missing [{key}] table")
        return {}
    if not isinstance(value, dict):
        raise TritforgeError(f"{where}: '{key}' must be a table")
    return value


def _source(spec: dict, where: str) -> str:
    src = spec.get("source")
    if not isinstance(src, str) or not src.strip():
        raise TritforgeError(f"{where}: missing 'source' (every number needs one)")
    return src


def _energy(spec: dict, key: str, where: str) -> float:
    v = spec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TritforgeError(f"{where}: '{key}' must be a number of pJ, got {v!r}")
    if v < 0:
        raise TritforgeError(f"{where}: negative energy {key}={v}")
    return float(v)


def _primitive(op: str, spec, where: str):
    where = f"{where} [primitives.{op}]"
    if op not in _PRIMITIVE_KEYS:
        raise TritforgeError(f"{where}: unknown primitive; expected some of {sorted(_PRIMITIVE_KEYS)}")
    if not isinstance(spec, dict):
        raise TritforgeError(f"{where}: must be a table")
    kx, ky = _PRIMITIVE_KEYS[op]
    xs, ys = spec.get(kx), spec.get(ky)
    if not (isinstance(xs, list) and isinstance(ys, list) and xs and len(xs) == len(ys)):
        raise TritforgeError(f"{where}: expected lists '{kx}' and '{ky}' of equal, non-zero length")
    for v in xs + ys:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TritforgeError(f"{where}: non-numeric entry {v!r}")
    if any(v < 0 for v in ys):
        raise TritforgeError(f"{where}: negative energy in '{ky}'")
    if any(v <= 0 for v in xs) or any(b <= a for a, b in zip(xs, xs[1:])):
        raise TritforgeError(f"{where}: '{kx}' must be positive and increasing")
    if op == "sram" and any(v <= 0 for v in ys):
        raise TritforgeError(f"{where}: SRAM energies must be positive (log-log interpolation)")
    if op == "mult":
        xs = [v * v for v in xs]      # square multipliers: interpolate in partial products
    return [float(v) for v in xs], [float(v) for v in ys], _source(spec, where)


def _width(v, where: str):
    if isinstance(v, str):
        if v not in WIDTH_NAMES:
            raise TritforgeError(f"{where}: unknown width {v!r}; expected a number or one of {list(WIDTH_NAMES)}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise TritforgeError(f"{where}: width {v!r} must be positive")
    return v


def _action(name: str, spec, prims: dict, where: str, section: str = "actions") -> ActionRow:
    where = f"{where} [{section}.{name}]"
    if not isinstance(spec, dict):
        raise TritforgeError(f"{where}: must be a table")
    source = _source(spec, where)
    op = spec.get("op")
    if op is None:
        if "pj" not in spec:
            raise TritforgeError(f"{where}: needs 'pj' or 'op' (one of {list(OPS)})")
        return ActionRow(name, source, pj=_energy(spec, "pj", where))
    if op not in OPS:
        raise TritforgeError(f"{where}: unknown op {op!r}; expected one of {list(OPS)}")
    if op == "clock":
        share = spec.get("share")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise TritforgeError(f"{where}: op 'clock' needs 'share', a fraction in (0, 1), got {share!r}")
        return ActionRow(name, source, op=op, pj=float(share))
    if "pj" in spec:
        raise TritforgeError(f"{where}: give either 'pj' or 'op', not both")
    if op in ("add", "mult", "sram") and op not in prims:
        raise TritforgeError(f"{where}: op {op!r} needs a [primitives.{op}] table")
    bits = spec.get("bits", ())
    bits = tuple(bits) if isinstance(bits, list) else ((bits,) if bits != () else ())
    if op == "add" and len(bits) != 1:
        raise TritforgeError(f"{where}: op 'add' needs one width in 'bits'")
    if op == "mult" and len(bits) != 2:
        raise TritforgeError(f"{where}: op 'mult' needs two widths in 'bits'")
    if op == "sram" and len(bits) > 1:
        raise TritforgeError(f"{where}: op 'sram' takes at most one width in 'bits'")
    bits = tuple(_width(b, where) for b in bits)
    size = spec.get("size")
    if op == "sram":
        if not (size in SIZE_NAMES or (isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0)):
            raise TritforgeError(f"{where}: 'size' must be bytes or one of {list(SIZE_NAMES)}")
    unit = spec.get("unit", "bit")
    if op == "memory" and unit not in ("bit", "byte"):
        raise TritforgeError(f"{where}: 'unit' must be 'bit' or 'byte'")
    return ActionRow(name, source, op=op, bits=bits, size=size, unit=unit)


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
