"""Board presets: clock, off-chip bandwidth and memory, array size, each with its source.

A preset fixes what the estimator needs to turn cycles and bytes into seconds and joules:
the array clock, the peak bandwidth of the memory the weights stream from (and its type,
a key of the energy table's ``[memory]``), the memory's capacity, and the array size
(rows R, vectors T) chosen so that the array keeps up with that bandwidth at d = 2
(``R x beat bytes / T x clock >= bandwidth``) where the FPGA has room for it.

The array sizes are our choice for each board, not measured builds; the memory figures are
the vendors' peak numbers (sustained bandwidth is lower, typically 70-90 %).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import TritforgeError
from ..hwconfig import HwConfig

DEFAULT_BOARD = "kv260"


@dataclass(frozen=True)
class Board:
    name: str                  #: preset key (``get_board``)
    title: str                 #: the board's full name
    clock_mhz: float           #: array clock
    bandwidth_gbs: float       #: peak weight-stream bandwidth, GB/s (1e9 bytes/s)
    memory: str                #: memory type: key of the energy table's [memory]
    memory_bytes: int          #: capacity of that memory
    rows: int                  #: R: rows in parallel
    vectors: int               #: T: activation vectors per weight fetch
    max_in_features: int       #: activation buffer sized for this in_features
    notes: str
    source: str

    def hwconfig(self, depth: int, vectors: int | None = None,
                 max_in_features: int | None = None) -> HwConfig:
        """The HwConfig of this board at depth d (optionally another T or buffer size)."""
        return HwConfig(depth=depth, rows=self.rows,
                        vectors=self.vectors if vectors is None else vectors,
                        max_in_features=self.max_in_features if max_in_features is None else max_in_features,
                        clock_mhz=self.clock_mhz)

    def weight_rate_gbs(self, depth: int) -> float:
        """Weight bytes per second the array consumes at full rate (one beat per T cycles)."""
        return self.hwconfig(depth).stream_bytes_per_cycle * self.clock_mhz * 1e6 / 1e9

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(
        name="kv260", title="AMD Kria KV260 Vision AI Starter Kit (K26 SOM, Zynq UltraScale+ XCK26)",
        clock_mhz=200.0, bandwidth_gbs=19.2, memory="ddr4", memory_bytes=4 * 2**30,
        rows=16, vectors=1, max_in_features=8192,
        notes="4 GB DDR4 on a 64-bit bus at 2400 MT/s shared with the Arm cores; R = 16 at 200 MHz "
              "streams 22.4 GB/s at d = 2 (16 x 7 bytes per cycle), just above the memory's 19.2",
        source="AMD Kria K26 SOM data sheet DS987 (4 GB 64-bit DDR4-2400 = 19.2 GB/s); array size: tritforge choice"),
    Board(
        name="u280", title="AMD Alveo U280 data-center accelerator (XCU280, 8 GB HBM2)",
        clock_mhz=300.0, bandwidth_gbs=460.0, memory="hbm2", memory_bytes=8 * 2**30,
        rows=256, vectors=1, max_in_features=32768,
        notes="8 GB HBM2 in 32 pseudo-channels, 460 GB/s peak; R = 256 at 300 MHz consumes "
              "537.6 GB/s at d = 2 (256 x 7 bytes per cycle), so the HBM binds; the 32 GB DDR4 (38 GB/s) is not used",
        source="AMD Alveo U280 data sheet DS963 (HBM2 8 GB, 460 GB/s); array size: tritforge choice"),
    Board(
        name="ulx3s", title="Radiona ULX3S (Lattice ECP5 LFE5U-85F, 32 MB SDRAM)",
        clock_mhz=100.0, bandwidth_gbs=0.2, memory="sdram", memory_bytes=32 * 2**20,
        rows=8, vectors=4, max_in_features=8192,
        notes="32 MB single-data-rate SDRAM on a 16-bit bus, run at 100 MHz: 0.2 GB/s; the array "
              "(R = 8, T = 4, 100 MHz) is far faster, so T = 4 reuses each weight beat for prefill at no decode cost",
        source="ULX3S manual / schematic (IS42S16160 32 MB x16 SDRAM); array size: tritforge choice"),
    Board(
        name="icebreaker", title="1BitSquared iCEBreaker (Lattice iCE40UP5K, 16 MB QSPI flash, 128 KB SPRAM)",
        clock_mhz=24.0, bandwidth_gbs=0.012, memory="spi-flash", memory_bytes=16 * 2**20,
        rows=1, vectors=4, max_in_features=8192,
        notes="weights stream from the 16 MB W25Q128JV quad-SPI flash (4 bits x 24 MHz = 12 MB/s); "
              "activations in the 128 KB SPRAM; one row (R = 1) fits the UP5K's 5280 LUTs",
        source="iCEBreaker v1.0 documentation (iCE40UP5K, W25Q128JV 128 Mbit QSPI flash, 12 MHz oscillator "
               "with PLL); array size: tritforge choice"),
)}


def get_board(name: str) -> Board:
    """A preset by name (case-insensitive; ``default`` is the KV260)."""
    if not isinstance(name, str):
        raise TritforgeError(f"board {name!r}: expected a name, one of {sorted(BOARDS)}")
    key = name.strip().lower()
    key = DEFAULT_BOARD if key == "default" else key
    if key not in BOARDS:
        raise TritforgeError(f"board {name!r}: unknown preset; expected one of {sorted(BOARDS)} or 'default'")
    return BOARDS[key]
