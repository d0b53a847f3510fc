"""HwConfig: the one frozen parameter object of the accelerator.

It feeds the RTL generator (``hw``), the cycle model and the estimator (``sim``), the
synthesis flows (``fpga``) and the tests. Everything derived from the parameters (beat
sizes, datapath widths, buffer depths, ideal cycle counts) is a property here, so no
consumer computes it twice.
"""
from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass

import numpy as np

from .codec import layout
from .codec.codebook import MANT_BITS, SHIFT_BITS, SHIFT_LIMIT
from .documents.hwconfig import HwConfigDoc
from .documents.validation import validate
from .errors import TritforgeError
from .jsonfile import read_json
from .codec.golden import ACT_BITS, widths

#: Register stages of the engine's RUN pipeline, from weight-beat acceptance to the result
#: FIFO (hw/ENGINE.md "Timing"): the issue register, the trit decoder, the group
#: dot (its terms, then its adder tree: one adder level per stage), the scale MAC. Owned by
#: hw/engine.py, which asserts its structure equals ``HwConfig.pipeline_stages``; the cycle
#: model and the estimator read it from here.
ISSUE_STAGES = 1
DECODER_STAGES = 4
MAC_STAGES = 8
#: Command timing (hw/ENGINE.md "Sequence"), cycle-visible and owned here: hw/control.py
#: builds it (the engine asserts the structure it built against these), the stepping model
#: and the closed forms (sim.fastmodel) read it.
#: cycles before LOAD or RUN: the accept cycle (the command is latched as it arrives), then
#: the start cycle (the counters load from the latched command)
CMD_ACCEPT_CYCLES = 2
#: after LOAD's last word the command is READY for the issue stage this many cycles later
#: (registered, so the act port's valid stays out of w.ready's logic)
LOAD_OPEN_CYCLES = 1
#: a command's last result pop is registered (the scale MAC's ``done``), then counted out
#: of the commands in flight: ``busy`` falls END_CYCLES + 1 cycles after the pop of the
#: last command in flight
END_CYCLES = 1
#: Overlapped commands (hw/ENGINE.md "Back to back"): the codebook has this many banks, a
#: command names the one its groups look up (``cb_bank``) and a codebook write's index is
#: ``bank * CODEBOOK_BANK_WORDS + entry``, so the next matrix's codebook is written while
#: the current one runs
CODEBOOK_BANKS = 2
CODEBOOK_BANK_WORDS = 32
#: the activation buffer's banks: each command that loads writes the bank the latest LOAD
#: did not, so a command's LOAD runs while the one before it reads the other bank
ACT_BANKS = 2


class State(enum.Enum):
    """The states of the engine's command front end (hw/control.py's one-hot registers
    ``free``, ``start``, ``load``, ``ready``; the stepping model's ``front``): a command is
    accepted while FREE, its counters load in START, its words in LOAD, and it waits in
    READY until the issue stage takes it (at once when RUN has no command, else with the
    running command's last beat); then FREE again, while that command runs."""

    FREE = "free"
    START = "start"
    LOAD = "load"
    READY = "ready"


#: The variable-depth engine's gearbox (hw/ENGINE.md "Variable-depth stream", hw/gearbox.py,
#: hw/columnfinder.py): a column whose last memory beat is accepted on ``mem`` in cycle x
#: can be taken from cycle x + ``HwConfig.gearbox_take_cycles`` = x + GEARBOX_FIXED_CYCLES +
#: ``chain_stages``: the beat's digits, depth sums, table of entries (x + 4), its nodes, its
#: chains (``chain_stages`` registers), its row (the chains entered from the previous beat's
#: tail offsets), the beat loop and its record (a register, then the record queue), the
#: popper, the entry lookup and its register, the descriptor at the take; it is offered to
#: the issue stage as a depth-D beat GEARBOX_OFFER_CYCLES later (``HwConfig.gearbox_cycles``:
#: its beats read, its bytes rotated to byte 0, its rows' offsets, its planes assembled and
#: re-packed, the beat queue). The cycle models (sim.varmodel, sim.varstep) read
#: ``gearbox_cycles``.
GEARBOX_FIXED_CYCLES = 12
GEARBOX_OFFER_CYCLES = 6
#: beats the gearbox may hold between taking a column and the issue stage accepting it:
#: one per cycle of the loop "take, offer, accept, free again", so that one column a cycle
#: goes at T = 1 and the gearbox never delays a beat the models would issue.
GEARBOX_QUEUE = GEARBOX_OFFER_CYCLES + 1
#: result FIFO entries; the advance is decided three cycles ahead, "a push fits in three
#: cycles even if nothing is popped until then", so its copies form a tree of flip-flops,
#: and res.ready reaches only the FIFO's read side (hw/ENGINE.md)
FIFO_DEPTH = 5
#: rows of one engine slice: an engine of more rows is built from slices of at most this
#: many rows that run in lockstep, each with its own control, activation buffer and
#: multiples, so nothing but the ports' own nets spans the whole engine (hw/engine.py)
SLICE_ROWS = 4
#: how an engine of more than SLICE_ROWS rows is organised (hw/ENGINE.md "Organisation"):
#: "lockstep" slices behind one port set (hw/engine.py), or an "array" of independent
#: engines of SLICE_ROWS rows, each with its own weight and result streams, the command,
#: codebook and activation streams broadcast to them through registered trees with
#: credit-based flow control (hw/engine_array.py)
#: (the document owns the names)
ORGANISATIONS = typing.get_args(HwConfigDoc.model_fields["organisation"].annotation)


def tree_levels(depth: int) -> int:
    """Adder levels (= register stages) of the group dot's tree over 16*depth terms."""
    return (layout.GROUP * depth - 1).bit_length()


def groupdot_stages(depth: int) -> int:
    """The group dot's register stages: its terms, then one per adder level."""
    return 1 + tree_levels(depth)


def pipeline_stages(depth: int) -> int:
    return ISSUE_STAGES + DECODER_STAGES + groupdot_stages(depth) + MAC_STAGES


#: bytes per first OR of the invalid-byte check; later ORs take ERR_FOLD inputs
ERR_PAIR = 2
ERR_FOLD = 4


def fold_levels(bits: int, fold: int, until: int = 1) -> int:
    """Register levels that fold ``bits`` bits, ``fold`` at a time, to at most ``until``
    (``hw.foldtree``)."""
    levels = 0
    while bits > until:
        bits, levels = -(-bits // fold), levels + 1
    return levels


def err_latency(beat_bytes: int) -> int:
    """Cycles from accepting a beat that holds a byte >= 243 until ``err`` is high
    (hw/ENGINE.md): the beat register, the per-byte nibble flags, the OR of ERR_PAIR bytes'
    flags, ERR_FOLD-input OR levels until at most 3 bits are left, then ``err``."""
    return 4 + fold_levels(-(-beat_bytes // ERR_PAIR), ERR_FOLD, until=3)


@dataclass(frozen=True)
class HwConfig:
    depth: int = 2               #: d: trits per weight (1..4)
    rows: int = 4                #: R: output rows computed in parallel
    vectors: int = 1             #: T: activation vectors per weight fetch (1 = decode)
    group: int = layout.GROUP    #: weights per group (fixed by the format)
    act_bits: int = ACT_BITS     #: activation width (fixed: int8)
    mant_bits: int = MANT_BITS   #: F: codebook mantissa bits (fixed by the format)
    shift_limit: int = SHIFT_LIMIT  #: S: largest codebook shift
    max_in_features: int = 8192  #: largest in_features (sizes the activation buffer)
    max_out_features: int = 65536  #: largest out_features (sizes the row counter)
    clock_mhz: float = 200.0     #: target clock
    organisation: str = ORGANISATIONS[0]  #: lockstep slices or an array of engines (ORGANISATIONS)
    weight_stream: str = "uniform"  #: "uniform" beats or the "variable"-depth column stream
    mem_bytes: int = 16          #: bytes per memory beat of the variable-depth stream

    def __post_init__(self):
        # every rule on the parameters is the document's (tritforge.documents.hwconfig)
        validate(HwConfigDoc, self.to_dict(), "HwConfig")

    # --- derived ---------------------------------------------------------------------------
    @property
    def level(self) -> int:
        """L: the largest |q|."""
        return layout.max_level(self.depth)

    @property
    def group_trits(self) -> int:
        return layout.group_trits(self.depth)

    @property
    def beat_trits(self) -> int:
        return layout.beat_trits(self.depth, self.rows)

    @property
    def beat_bytes(self) -> int:
        """Bytes of one weight beat: R groups of one group column."""
        return layout.beat_bytes(self.depth, self.rows)

    @property
    def stream_bytes_per_cycle(self) -> float:
        """Weight-stream bytes consumed per cycle at full rate (one beat every T cycles)."""
        return self.beat_bytes / self.vectors

    @property
    def max_groups(self) -> int:
        return self.max_in_features // layout.GROUP

    @property
    def widths(self):
        """Datapath widths (``codec.golden.Widths``) for the largest admitted input."""
        return widths(self.depth, self.max_in_features, self.mant_bits, self.shift_limit)

    @property
    def shift_bits(self) -> int:
        return SHIFT_BITS

    @property
    def codebook_word_bits(self) -> int:
        return self.mant_bits + SHIFT_BITS

    @property
    def act_stride(self) -> int:
        """Activation buffer words per vector: max_groups rounded up to a power of two (at
        least 2), so a word's address is its vector and group side by side, no adder."""
        return 1 << max(1, (self.max_groups - 1).bit_length())

    @property
    def act_buffer_words(self) -> int:
        """Activation buffer depth in 128-bit group words: ``ACT_BANKS`` banks of T vectors
        of ``act_stride``; word (v, bank, g) at ``(v * ACT_BANKS + bank) * act_stride + g``
        (``Cat(g, bank, v)``: no adder)."""
        return ACT_BANKS * self.vectors * self.act_stride

    @property
    def slices(self) -> tuple[tuple[int, int], ...]:
        """The engine's lockstep slices as (first row, rows): SLICE_ROWS rows each, the
        last one the rest (one slice up to SLICE_ROWS rows)."""
        return tuple((r, min(SLICE_ROWS, self.rows - r)) for r in range(0, self.rows, SLICE_ROWS))

    def slice_config(self, rows: int) -> "HwConfig":
        """The configuration of a slice of ``rows`` rows (or of one engine of an array): the
        same tiles (``tiles_max``), vectors and widths, organised as one engine."""
        return dataclasses.replace(self, rows=rows, max_out_features=self.tiles_max * rows,
                                   organisation=ORGANISATIONS[0])

    @property
    def engines(self) -> int:
        """Engines with ports of their own: ``len(slices)`` for an array, else 1."""
        return len(self.slices) if self.organisation == "array" else 1

    @property
    def macs_per_cycle(self) -> int:
        """Weight x activation products per cycle: R rows x 16 lanes."""
        return self.rows * layout.GROUP

    @property
    def pipeline_stages(self) -> int:
        return pipeline_stages(self.depth)

    @property
    def err_latency(self) -> int:
        """``err_latency`` of the widest slice's bytes (every slice's err check is delayed
        to it; one slice: the beat's bytes)."""
        return max(err_latency(layout.beat_window(self.depth, r, n)[1]) for r, n in self.slices)

    @property
    def variable(self) -> bool:
        """The engine takes the variable-depth column stream (hw/varengine.py)."""
        return self.weight_stream == "variable"

    @property
    def column_bytes_max(self) -> int:
        """Bytes of the longest variable-depth column: R groups at depth D."""
        return int(layout.var_column_bytes(np.full(self.rows, self.depth)))

    @property
    def column_bytes_min(self) -> int:
        """Bytes of the shortest variable-depth column: its header (every group at depth 0)."""
        return int(layout.var_column_bytes(np.zeros(self.rows, dtype=np.int64)))

    @property
    def chain_moves(self) -> int:
        """Columns that can start in one memory beat after the first: a column moves on by
        at least ``column_bytes_min`` bytes."""
        return (self.mem_bytes - 1) // self.column_bytes_min

    @property
    def chain_stages(self) -> int:
        """Registers of the column finder's chains, one block of ``column_bytes_min``
        offsets a stage from the beat's end (hw/columnfinder.py): ``chain_moves``."""
        return self.chain_moves

    @property
    def gearbox_take_cycles(self) -> int:
        """From a beat accepted on ``mem`` to the first cycle a column ending in it can be
        taken (GEARBOX_FIXED_CYCLES + ``chain_stages``)."""
        return GEARBOX_FIXED_CYCLES + self.chain_stages

    @property
    def gearbox_cycles(self) -> int:
        """From a beat accepted on ``mem`` to the first cycle a column ending in it is offered
        to the issue stage."""
        return self.gearbox_take_cycles + GEARBOX_OFFER_CYCLES

    @property
    def column_span(self) -> int:
        """Memory beats a variable-depth column can touch: the longest column starting at
        the last byte of a beat."""
        return (self.mem_bytes + self.column_bytes_max - 2) // self.mem_bytes + 1

    @property
    def window_words(self) -> int:
        """The gearbox's word FIFO (hw/columnfinder.py): memory beats it holds, from the one
        the next column starts in to the newest accepted. The beats of a column and those
        accepted in the ``gearbox_take_cycles`` until it can be taken, and one more, rounded
        up to a power of two (its pointers wrap by their width), so the memory is never
        refused while the engine keeps up with it."""
        return 1 << (self.column_span + self.gearbox_take_cycles).bit_length()

    @property
    def tiles_max(self) -> int:
        return -(-self.max_out_features // self.rows)

    def tiles(self, out_features: int) -> int:
        return -(-out_features // self.rows)

    def check_shape(self, out_features: int, in_features: int, what: str = "matrix") -> None:
        if not 1 <= in_features <= self.max_in_features:
            raise TritforgeError(f"{what}: in_features={in_features} exceeds the config's "
                                 f"max_in_features={self.max_in_features}")
        if not 1 <= out_features <= self.max_out_features:
            raise TritforgeError(f"{what}: out_features={out_features} exceeds the config's "
                                 f"max_out_features={self.max_out_features}")

    # --- (de)serialization -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def derived(self) -> dict:
        w = self.widths
        return {"level": self.level, "group_trits": self.group_trits,
                "beat_trits": self.beat_trits, "beat_bytes": self.beat_bytes,
                "max_groups": self.max_groups, "act_buffer_words": self.act_buffer_words,
                "slices": len(self.slices), "engines": self.engines,
                "codebook_word_bits": self.codebook_word_bits,
                "dot_width": w.dot, "product_width": w.product, "acc_width": w.acc}

    @classmethod
    def from_dict(cls, data: dict, what: str = "HwConfig") -> "HwConfig":
        """The HwConfig of a (possibly partial) parameter object; errors name ``what`` and the field."""
        if not isinstance(data, dict):
            raise TritforgeError(f"{what}: expected an object of HwConfig parameters, got {type(data).__name__}")
        doc = validate(HwConfigDoc, {**defaults(cls), **data}, what)
        return cls(**doc.model_dump())

    @classmethod
    def from_json(cls, path: str) -> "HwConfig":
        data = read_json(path, "hardware config (HwConfig parameters)")
        if "hwconfig" in data:           # a generate sidecar
            return cls.from_dict(data["hwconfig"], f"{path}: hwconfig")
        return cls.from_dict(data, path)


def defaults(cls) -> dict:
    """The default value of every field of a parameter dataclass."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


DEFAULT = HwConfig()
