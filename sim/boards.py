"""Boards: one TOML file per board (``sim/data/boards/*.toml``), read by one typed loader.

A board file fixes what the estimator needs to turn cycles and bytes into seconds and
joules: the array clock and size (R rows per engine, ``engines`` engines side by side, T
vectors), the memory (``[memory]``: type, data rate, bus width, channels, row size,
capacity, background power; ``sim.memory`` turns them into peak and sustained bandwidth),
the board's static power, whether the host shares the memory bus, the host processor that
runs a host-side lm_head (``[host]``, optional: cores, clock, MACs per cycle and, where a
figure is known, its own read rate from the shared memory) and the default energy table. Every figure has a source: a ``<field>_source`` key beside it (or, for a whole
table, a ``[source]`` table with the same keys). The board document (``tritforge.documents.board.BoardDoc``)
owns the file's rules; ``load_board`` refuses a file that breaks them with one line naming
the file and the field path.

Rows above the engine's 256 are an array of ``engines`` engines of R rows each: a matrix's
rows are split evenly between them, each streams its share of the weights, and all of them
take the same activation vector (``sim.estimate``).

The array sizes are our choice for each board, not measured builds.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources

from ..documents.board import BoardDoc
from ..documents.validation import validate
from ..errors import TritforgeError
from ..tomlfile import read_toml
from ..hwconfig import HwConfig
from .memory import MEMORY_TYPES, MemorySystem

DEFAULT_BOARD = "kv260"


@dataclass(frozen=True)
class HostCpu:
    """The board's host processor as the board file's ``[host]`` gives it: what a host-side
    lm_head ("host-fp16") costs when it reads from the board's shared memory."""

    cores: int
    clock_mhz: float
    macs_per_cycle: float            #: per core, for a weight-streaming GEMV
    read_gbs: float | None = None    #: the host's own sustained read rate; None: not known

    @property
    def macs_per_s(self) -> float:
        return self.cores * self.clock_mhz * 1e6 * self.macs_per_cycle


@dataclass(frozen=True)
class Board:
    name: str                  #: board key (file stem)
    title: str                 #: the board's full name
    clock_mhz: float           #: array clock
    bandwidth_gbs: float       #: peak memory bandwidth, GB/s (1e9 bytes/s), from ``mem``
    memory: str                #: memory type: key of the energy table's [memory]
    memory_bytes: int          #: capacity of that memory
    rows: int                  #: R: rows of one engine
    vectors: int               #: T: activation vectors per weight fetch
    max_in_features: int       #: activation buffer sized for this in_features
    notes: str
    source: str                #: where the figures come from (summary; per field in ``sources``)
    engines: int = 1           #: engines of R rows side by side
    static_w: float = 0.0      #: board static / idle power, W
    host_shares_memory: bool = False   #: the host's memory traffic uses the same bus
    energy_table: str = "horowitz-45nm.toml"   #: default energy table of this board
    mem: MemorySystem | None = None            #: the memory model (None: peak only, 100 %)
    host: HostCpu | None = None                #: the host processor ([host]; None: not described)
    path: str = ""
    sources: dict = field(default_factory=dict, repr=False)

    def hwconfig(self, depth: int, vectors: int | None = None,
                 max_in_features: int | None = None) -> HwConfig:
        """The HwConfig of one engine of this board at depth d (optionally another T or buffer)."""
        return HwConfig(depth=depth, rows=self.rows,
                        vectors=self.vectors if vectors is None else vectors,
                        max_in_features=self.max_in_features if max_in_features is None else max_in_features,
                        clock_mhz=self.clock_mhz)

    @property
    def total_rows(self) -> int:
        return self.rows * self.engines

    def weight_rate_gbs(self, depth: int) -> float:
        """Weight bytes per second the array consumes at full rate (one beat per T cycles)."""
        return self.hwconfig(depth).stream_bytes_per_cycle * self.engines * self.clock_mhz * 1e6 / 1e9

    def memory_system(self) -> MemorySystem:
        """The memory model; a board built without one, or whose ``bandwidth_gbs`` or
        ``memory`` were replaced in code (``dataclasses.replace``), streams at its peak
        ``bandwidth_gbs`` (an ideal memory: no refresh, no row switches counted)."""
        if (self.mem is not None and abs(self.mem.peak_gbs - self.bandwidth_gbs) < 1e-6
                and self.mem.type == self.memory):
            return self.mem
        return _IdealMemory(self.memory, self.bandwidth_gbs, self.memory_bytes)

    @property
    def sustained_gbs(self) -> float:
        return self.memory_system().peak_gbs * self.memory_system().efficiency()

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("mem", "host")}
        d["host"] = dataclasses.asdict(self.host) if self.host is not None else None
        d["memory_model"] = self.memory_system().to_dict()
        d["sustained_gbs"] = self.sustained_gbs
        d["total_rows"] = self.total_rows
        return d


class _IdealMemory(MemorySystem):
    """Peak bandwidth with no losses: what a Board made in code without a [memory] gets."""

    def __init__(self, type_: str, gbs: float, capacity: int):
        object.__setattr__(self, "type", type_ if type_ in MEMORY_TYPES else "ddr4")
        object.__setattr__(self, "data_rate_mts", gbs * 1e3 / 8)
        object.__setattr__(self, "bus_bits", 64)
        object.__setattr__(self, "channels", 1)
        object.__setattr__(self, "row_bytes", 1 << 40)
        object.__setattr__(self, "capacity_bytes", capacity)
        object.__setattr__(self, "background_w", 0.0)

    def refresh_fraction(self) -> float:
        return 0.0

    def row_overhead_ns(self) -> float:
        return 0.0

    def breakdown_s(self, read_bytes, write_bytes=0.0, write_batches=0.0):
        data = (read_bytes + write_bytes) / self.peak_bps
        return {"data": data, "row_switch": 0.0, "turnaround": 0.0, "burst_gap": 0.0, "refresh": 0.0, "total": data}


# --- loading -------------------------------------------------------------------------------

def boards_folder():
    return resources.files(__package__).joinpath("data", "boards")


def board_names() -> list[str]:
    return sorted(p.name[:-5] for p in boards_folder().iterdir() if p.name.endswith(".toml"))


def board_from_dict(data: dict, path: str = "<dict>") -> Board:
    """Build the Board of a parsed board file, checked by its document (``BoardDoc``)."""
    doc = validate(BoardDoc, data, f"board file {path}")
    mem = doc.memory
    msys = MemorySystem(type=mem.type, data_rate_mts=float(mem.data_rate_mts), bus_bits=mem.bus_bits,
                        channels=mem.channels, row_bytes=mem.row_bytes, capacity_bytes=mem.capacity_bytes,
                        background_w=float(mem.background_w))
    sources = doc.sources()
    host = None if doc.host is None else HostCpu(
        cores=doc.host.cores, clock_mhz=float(doc.host.clock_mhz), macs_per_cycle=float(doc.host.macs_per_cycle),
        read_gbs=None if doc.host.read_gbs is None else float(doc.host.read_gbs))
    summary = "; ".join(f"{k}: {v}" for k, v in sources.items()
                        if k in ("memory.type", "memory.data_rate_mts", "static_w", "rows"))
    return Board(name=doc.name.strip().lower(), title=doc.title, clock_mhz=float(doc.clock_mhz),
                 bandwidth_gbs=round(msys.peak_gbs, 6), memory=msys.type, memory_bytes=msys.capacity_bytes,
                 rows=doc.rows, vectors=doc.vectors, max_in_features=doc.max_in_features,
                 notes=doc.notes, source=summary, engines=doc.engines, static_w=float(doc.static_w),
                 host_shares_memory=doc.host_shares_memory, energy_table=doc.energy_table, mem=msys,
                 host=host, path=path, sources=sources)


def load_board(spec: str) -> Board:
    """A board: a bundled name (``board_names()``, case-insensitive, ``default`` = kv260) or
    the path of a board TOML file."""
    if not isinstance(spec, str):
        raise TritforgeError(f"board {spec!r}: expected a name, one of {board_names()}, or a .toml file")
    key = spec.strip().lower()
    key = DEFAULT_BOARD if key == "default" else key
    if key in board_names():
        path = str(boards_folder().joinpath(key + ".toml"))
    elif spec.endswith(".toml") or os.path.sep in spec:
        path = spec
    else:
        raise TritforgeError(f"board {spec!r}: unknown preset; expected one of {board_names()}, "
                             "'default' or a board .toml file")
    data, _ = read_toml(path, "board file")
    return board_from_dict(data, path)


BOARDS: dict[str, Board] = {n: load_board(n) for n in board_names()}


def get_board(name: str) -> Board:
    """A bundled board by name (case-insensitive; ``default`` is the KV260), or a board file."""
    if not isinstance(name, str):
        raise TritforgeError(f"board {name!r}: expected a name, one of {sorted(BOARDS)}")
    key = name.strip().lower()
    key = DEFAULT_BOARD if key == "default" else key
    if key in BOARDS:
        return BOARDS[key]
    if name.endswith(".toml") or os.path.sep in name:
        return load_board(name)
    raise TritforgeError(f"board {name!r}: unknown preset; expected one of {sorted(BOARDS)}, 'default' "
                         "or a board .toml file")


def with_hwconfig(board: Board, cfg: HwConfig, label: str) -> Board:
    """``board`` running the engine ``cfg`` (its R, T, buffer and clock) instead of its own:
    the memory, static power and host are still the board's, and the name says both."""
    return dataclasses.replace(board, name=f"{board.name}+{label}", clock_mhz=float(cfg.clock_mhz),
                               rows=cfg.rows, vectors=cfg.vectors, max_in_features=cfg.max_in_features,
                               engines=1)
