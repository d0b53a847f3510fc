"""Off-chip memory: peak and sustained bandwidth from each memory type's timing parameters.

A board's memory (``MemorySystem``) is a memory type (``MEMORY_TYPES``: DDR4, LPDDR4, HBM2,
SDR SDRAM, quad-SPI flash) on ``channels`` independent channels of ``bus_bits`` data pins at
``data_rate_mts`` transfers per second, with ``row_bytes`` bytes per open row (page) of one
channel. Peak bandwidth is ``data_rate_mts * 1e6 * bus_bits / 8 * channels``.

Sustained time of a transfer (``MemorySystem.transfer_s``)
    The accelerator streams long sequential reads (weights, K/V rows) spread evenly over the
    channels, with a few short write batches (new K/V rows, logits). Per channel:

    t_data      = bytes / channel peak                           the data beats themselves
    t_rows      = rows x max(0, t_act - t_row)                   row switches: bank-interleaved
                  t_act = max(tRRD, tFAW / 4)                    streaming opens the next row in
                  t_row = row_bytes / channel peak               another bank while the current
                                                                 one streams (the address map puts
                                                                 consecutive rows in different
                                                                 banks), so only the activate-rate
                                                                 limit can show; a type without
                                                                 bank interleaving
                                                                 (``interleaved = False``) pays
                                                                 tRP + tRCD at every row
    t_turn      = 2 x write batches x turnaround                 read -> write -> read bus
                                                                 turnarounds (tWTR, read-to-write)
    t_burst     = bursts x burst_gap                             idle bus cycles between bursts
                                                                 a type cannot chain (0 for
                                                                 DRAMs that issue back-to-back)
    time        = (t_data + t_rows + t_turn + t_burst) / (1 - tRFC / tREFI)
                                                                 all-bank refresh blocks the
                                                                 channel tRFC every tREFI

    ``efficiency`` = t_data / time for a long read stream (no writes): the sustained fraction
    of peak. Every timing parameter carries its source (JEDEC standard or data sheet); the
    figures are for the speed bin and density of the board's parts, named in the board file.

What this leaves out (stated, not hidden): controller queueing and arbitration with other
masters, ECC, power-down exits, temperature-doubled refresh (> 85 C), and command-bus
limits of very short bursts. The validation (``bench/bench_validate.py``) compares whole
decode rates with published measurements: the KV260's DDR4 (Li et al., arXiv 2502.10659:
85 % of the bandwidth bound, end to end) and the U280's HBM2 (Shuhai, arXiv 2005.04324:
up to 425 of 460 GB/s = 92 % in a pure streaming benchmark).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import TritforgeError


@dataclass(frozen=True)
class MemoryType:
    """Timing of one memory type (all times in ns)."""

    name: str
    description: str
    burst_length: int          #: beats per burst (BL)
    trfc_ns: float             #: refresh cycle time: the channel is blocked this long per refresh
    trefi_ns: float            #: average refresh interval (0: no refresh)
    trp_ns: float              #: precharge
    trcd_ns: float             #: activate to read
    trrd_ns: float             #: activate to activate, different banks
    tfaw_ns: float             #: four-activate window (0: no limit)
    turnaround_ns: float       #: read -> write plus write -> read bus turnaround
    burst_gap_ns: float        #: idle time between bursts that cannot be chained
    interleaved: bool          #: streaming opens the next row in another bank (activations hidden)
    sources: dict              #: parameter -> its source

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_JESD79_4 = "JEDEC JESD79-4 (DDR4 SDRAM standard)"
_MICRON_DDR4 = "Micron MT40A512M16 8Gb x16 DDR4 data sheet (DDR4-2400, speed bin -075E 17-17-17)"
_JESD209_4 = "JEDEC JESD209-4 (LPDDR4 standard)"
_JESD235 = "JEDEC JESD235A (HBM2 standard)"
_ISSI = "ISSI IS42S16160J 256Mb SDR SDRAM data sheet (-6/-7 speed grades)"
_W25Q = "Winbond W25Q128JV quad-SPI NOR flash data sheet"

MEMORY_TYPES: dict[str, MemoryType] = {t.name: t for t in (
    MemoryType(
        name="ddr4", description="DDR4 SDRAM, 8 Gb dies, DDR4-2400", burst_length=8,
        trfc_ns=350.0, trefi_ns=7800.0, trp_ns=14.16, trcd_ns=14.16, trrd_ns=6.4, tfaw_ns=30.0,
        turnaround_ns=15.8, burst_gap_ns=0.0, interleaved=True,
        sources={"burst_length": _JESD79_4 + ": BL8",
                 "trfc_ns": _JESD79_4 + ": tRFC1 = 350 ns for 8 Gb",
                 "trefi_ns": _JESD79_4 + ": tREFI = 7.8 us (0-85 C)",
                 "trp_ns": _MICRON_DDR4 + ": tRP = 14.16 ns",
                 "trcd_ns": _MICRON_DDR4 + ": tRCD = 14.16 ns",
                 "trrd_ns": _MICRON_DDR4 + ": tRRD_L = max(4 nCK, 6.4 ns) for 2 KB pages",
                 "tfaw_ns": _MICRON_DDR4 + ": tFAW = 30 ns for 2 KB pages at 2400",
                 "turnaround_ns": _JESD79_4 + ": tWTR_L = 7.5 ns plus read-to-write "
                                  "CL - CWL + BL/2 + 2 nCK = 17 - 12 + 4 + 2 = 11 nCK = 9.2 ns at 1200 MHz; "
                                  "rounded to 15.8 ns with one nCK of bus idle each way",
                 "burst_gap_ns": _JESD79_4 + ": reads to open rows issue back to back (tCCD_S = 4 nCK = BL8/2; "
                                 "consecutive bursts in other bank groups)",
                 "interleaved": "assumption: the controller's address map puts consecutive rows in different "
                                "banks (row-bank-column), so the next activate overlaps the current row's data"}),
    MemoryType(
        name="lpddr4", description="LPDDR4 SDRAM, 8 Gb per channel, LPDDR4-3200", burst_length=16,
        trfc_ns=280.0, trefi_ns=3904.0, trp_ns=18.0, trcd_ns=18.0, trrd_ns=10.0, tfaw_ns=40.0,
        turnaround_ns=20.0, burst_gap_ns=0.0, interleaved=True,
        sources={"burst_length": _JESD209_4 + ": BL16",
                 "trfc_ns": _JESD209_4 + ": tRFCab = 280 ns for 8 Gb per channel",
                 "trefi_ns": _JESD209_4 + ": tREFI = 3.904 us",
                 "trp_ns": _JESD209_4 + ": tRPpb = max(18 ns, 4 nCK)",
                 "trcd_ns": _JESD209_4 + ": tRCD = max(18 ns, 4 nCK)",
                 "trrd_ns": _JESD209_4 + ": tRRD = max(10 ns, 4 nCK)",
                 "tfaw_ns": _JESD209_4 + ": tFAW = 40 ns",
                 "turnaround_ns": _JESD209_4 + ": tWTR = max(10 ns, 8 nCK) plus read-to-write RL + BL/2 - WL "
                                  "+ tWPRE (about 10 ns at 1600 MHz)",
                 "burst_gap_ns": _JESD209_4 + ": consecutive reads seamless (tCCD = BL/2)",
                 "interleaved": "assumption: bank-interleaving address map, as for DDR4"}),
    MemoryType(
        name="hbm2", description="HBM2, 4 Gb per channel, pseudo-channel mode", burst_length=4,
        trfc_ns=260.0, trefi_ns=3900.0, trp_ns=14.0, trcd_ns=14.0, trrd_ns=4.0, tfaw_ns=16.0,
        turnaround_ns=12.0, burst_gap_ns=0.0, interleaved=True,
        sources={"burst_length": _JESD235 + ": BL4 in pseudo-channel mode",
                 "trfc_ns": _JESD235 + ": tRFC = 260 ns for 4 Gb per channel (all-bank refresh)",
                 "trefi_ns": _JESD235 + ": tREFI = 3.9 us",
                 "trp_ns": _JESD235 + ": tRP = 14 ns (typical speed bin)",
                 "trcd_ns": _JESD235 + ": tRCD = 14 ns (typical speed bin)",
                 "trrd_ns": _JESD235 + ": tRRDS = 4 ns",
                 "tfaw_ns": _JESD235 + ": tFAW = 16 ns (approximate; speed-bin dependent)",
                 "turnaround_ns": _JESD235 + ": tWTRL = 8 ns plus read-to-write RL + BL/2 - WL (about 4 ns); "
                                  "approximate",
                 "burst_gap_ns": _JESD235 + ": consecutive reads seamless (tCCDS = 2 nCK = BL4/2)",
                 "interleaved": "assumption: bank-interleaving address map (Xilinx HBM controller default "
                                "row-bank-column)"}),
    MemoryType(
        name="sdram", description="SDR SDRAM, 256 Mb x16, one bank open at a time", burst_length=8,
        trfc_ns=60.0, trefi_ns=7812.5, trp_ns=15.0, trcd_ns=15.0, trrd_ns=12.0, tfaw_ns=0.0,
        turnaround_ns=10.0, burst_gap_ns=0.0, interleaved=False,
        sources={"burst_length": _ISSI + ": programmable burst 1/2/4/8/full page; 8 assumed",
                 "trfc_ns": _ISSI + ": auto-refresh period tRC = 60 ns",
                 "trefi_ns": _ISSI + ": 8192 refreshes per 64 ms = 7.8125 us",
                 "trp_ns": _ISSI + ": tRP = 15 ns",
                 "trcd_ns": _ISSI + ": tRCD = 15 ns",
                 "trrd_ns": _ISSI + ": tRRD = 12 ns",
                 "tfaw_ns": _ISSI + ": no four-activate window in SDR SDRAM",
                 "turnaround_ns": _ISSI + ": CAS latency 2 cycles at 100-143 MHz before a read's data (about 10 ns)",
                 "burst_gap_ns": _ISSI + ": reads within an open row pipeline back to back",
                 "interleaved": "assumption: a simple single-bank controller (as the ULX3S cores use) "
                                "precharges and activates at every row"}),
    MemoryType(
        name="spi-flash", description="quad-SPI NOR flash, continuous read", burst_length=1,
        trfc_ns=0.0, trefi_ns=0.0, trp_ns=0.0, trcd_ns=0.0, trrd_ns=0.0, tfaw_ns=0.0,
        turnaround_ns=0.0, burst_gap_ns=0.0, interleaved=True,
        sources={"burst_length": _W25Q + ": Fast Read Quad I/O streams the whole array from one command",
                 "trfc_ns": _W25Q + ": NOR flash needs no refresh",
                 "trefi_ns": _W25Q + ": NOR flash needs no refresh",
                 "trp_ns": _W25Q + ": no rows", "trcd_ns": _W25Q + ": no rows",
                 "trrd_ns": _W25Q + ": no rows", "tfaw_ns": _W25Q + ": no rows",
                 "turnaround_ns": _W25Q + ": read-only in operation (writes are offline programming)",
                 "burst_gap_ns": _W25Q + ": continuous read (the command, address and dummy cycles are paid once)",
                 "interleaved": _W25Q + ": no banks"}),
)}


def memory_type(name: str, where: str = "memory type") -> MemoryType:
    if name not in MEMORY_TYPES:
        raise TritforgeError(f"{where}: unknown memory type {name!r}; expected one of {sorted(MEMORY_TYPES)}")
    return MEMORY_TYPES[name]


@dataclass(frozen=True)
class MemorySystem:
    """A board's memory: a type, its organization, capacity and background power."""

    type: str                  #: key of MEMORY_TYPES (and of the energy table's [memory])
    data_rate_mts: float       #: transfers per second per pin, millions
    bus_bits: int              #: data pins per channel
    channels: int              #: independent channels
    row_bytes: int             #: bytes of one open row (page) of one channel
    capacity_bytes: int        #: total capacity
    background_w: float        #: DRAM background (standby + refresh) power, W

    def __post_init__(self):
        memory_type(self.type)

    @property
    def timing(self) -> MemoryType:
        return MEMORY_TYPES[self.type]

    @property
    def channel_peak_bps(self) -> float:
        return self.data_rate_mts * 1e6 * self.bus_bits / 8

    @property
    def peak_bps(self) -> float:
        return self.channel_peak_bps * self.channels

    @property
    def peak_gbs(self) -> float:
        return self.peak_bps / 1e9

    def refresh_fraction(self) -> float:
        t = self.timing
        return t.trfc_ns / t.trefi_ns if t.trefi_ns > 0 else 0.0

    def row_overhead_ns(self) -> float:
        """Exposed time per row switch of a streaming read (see the module docstring)."""
        t = self.timing
        if t.trefi_ns == 0 and t.trp_ns == 0 and t.trcd_ns == 0:
            return 0.0
        t_row = self.row_bytes / self.channel_peak_bps * 1e9
        if t.interleaved:
            return max(0.0, max(t.trrd_ns, t.tfaw_ns / 4) - t_row)
        return t.trp_ns + t.trcd_ns

    def breakdown_s(self, read_bytes: float, write_bytes: float = 0.0, write_batches: float = 0.0) -> dict:
        """Seconds of each term for ``read_bytes`` streamed and ``write_bytes`` written in
        ``write_batches`` batches, spread over the channels (see the module docstring)."""
        if read_bytes < 0 or write_bytes < 0 or write_batches < 0:
            raise TritforgeError(f"memory transfer: negative bytes ({read_bytes}, {write_bytes}, {write_batches})")
        t = self.timing
        total = read_bytes + write_bytes
        per_ch = total / self.channels
        data = per_ch / self.channel_peak_bps
        rows = per_ch / self.row_bytes * self.row_overhead_ns() * 1e-9
        turn = 2 * write_batches * t.turnaround_ns * 1e-9 / self.channels if write_batches else 0.0
        burst_bytes = t.burst_length * self.bus_bits / 8
        burst = per_ch / burst_bytes * t.burst_gap_ns * 1e-9
        busy = data + rows + turn + burst
        refresh = busy * self.refresh_fraction() / (1 - self.refresh_fraction())
        return {"data": data, "row_switch": rows, "turnaround": turn, "burst_gap": burst,
                "refresh": refresh, "total": busy + refresh}

    def transfer_s(self, read_bytes: float, write_bytes: float = 0.0, write_batches: float = 0.0) -> float:
        return self.breakdown_s(read_bytes, write_bytes, write_batches)["total"]

    def efficiency(self) -> float:
        """Sustained fraction of peak of a long read stream (1 GB, no writes)."""
        b = self.breakdown_s(1e9)
        return b["data"] / b["total"]

    @property
    def sustained_gbs(self) -> float:
        return self.peak_gbs * self.efficiency()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(peak_gbs=self.peak_gbs, efficiency=self.efficiency(), sustained_gbs=self.sustained_gbs,
                 refresh_fraction=self.refresh_fraction(), row_overhead_ns=self.row_overhead_ns(),
                 timing=self.timing.to_dict())
        return d


def check_finite(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TritforgeError(f"{where}: expected a number, got {value!r}")
    return float(value)
