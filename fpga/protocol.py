"""The host-link protocol: byte frames between a host and the engine on a board (UART).

Pure software (no Amaranth): the board's link core (``fpga.linkcore``) takes its opcodes
and frame sizes from here, and the host (``fpga.hostlink``) encodes and decodes with it.
All multi-byte fields are little-endian. Sizes depend only on the ``HwConfig``.

Host -> board (one opcode byte, then a fixed number of payload bytes)

=======  ======  ===============================================================
opcode   bytes   payload
=======  ======  ===============================================================
``I``    0       info request; the board answers with an ``I`` frame
``Z``    0       reset: engine to idle, link flags cleared; the board answers ``Z``
``C``    3       codebook entry: index (1), word (2) = ``layout.codebook_word``
``X``    6       command: last_group (2), last_tile (3), flags (1; bit 0 load_act)
``A``    16      activation group: ``layout.pack_activation_group``, 16 bytes
``W``    B       weight beat: the ``beat_bytes`` bytes of ``layout.stream_beats``
=======  ======  ===============================================================

Board -> host

* ``Z`` (1 byte): reset done.
* ``I`` + 16 bytes: version (1), depth (1), rows (2), vectors (1), acc_width (1),
  max_groups (3), tiles_max (3), beat_bytes (2), divisor (2).
* ``R`` + 2 + R*acc_bytes bytes: flags (1; bit 0 engine ``err``, bit 1 link error,
  bit 2 ``last``), vector (1), then the R accumulators, each sign-extended to
  ``acc_bytes = ceil(acc_width / 8)`` bytes.

A link error (sticky until ``Z``) means the board lost data: an unknown opcode, a UART
framing error, or a frame that arrived while the previous one of that stream had not
been taken by the engine. The protocol has no flow control of its own, so the host keeps
at most one tile of weights in flight: it sends a tile's ``ng`` beats, then reads that
tile's T result frames (the engine takes a beat in far less than one byte time). A frame
cut short (no byte for ``timeout`` bit times) is dropped and the link waits for an opcode,
so a host can always resynchronise by pausing, then sending ``Z``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec import layout
from ..errors import TritforgeError

VERSION = 1

OP_INFO = ord("I")
OP_RESET = ord("Z")
OP_CODEBOOK = ord("C")
OP_COMMAND = ord("X")
OP_ACT = ord("A")
OP_WEIGHT = ord("W")
OP_RESULT = ord("R")

CODEBOOK_BYTES = 3
COMMAND_BYTES = 6
ACT_BYTES = layout.GROUP
INFO_BYTES = 16
LAST_GROUP_BYTES = 2
LAST_TILE_BYTES = 3

FLAG_ERR = 1
FLAG_LINK_ERROR = 2
FLAG_LAST = 4


def payload_bytes(op: int, beat_bytes: int) -> int:
    """Payload length of a host -> board frame."""
    sizes = {OP_INFO: 0, OP_RESET: 0, OP_CODEBOOK: CODEBOOK_BYTES, OP_COMMAND: COMMAND_BYTES,
             OP_ACT: ACT_BYTES, OP_WEIGHT: beat_bytes}
    if op not in sizes:
        raise TritforgeError(f"host-link opcode {op!r}: expected one of {sorted(map(chr, sizes))}")
    return sizes[op]


def acc_bytes(acc_width: int) -> int:
    return -(-acc_width // 8)


def result_bytes(rows: int, acc_width: int) -> int:
    """Length of a result frame, opcode included."""
    return 3 + rows * acc_bytes(acc_width)


# --- host -> board ----------------------------------------------------------------------

def info_request() -> bytes:
    return bytes([OP_INFO])


def reset_request() -> bytes:
    return bytes([OP_RESET])


def codebook_frames(words: np.ndarray) -> bytes:
    """``C`` frames for codebook words (``codec.packfile.codebook_words`` order: index k)."""
    out = bytearray()
    for k, word in enumerate(np.asarray(words).reshape(-1)):
        out += bytes([OP_CODEBOOK, k]) + int(word).to_bytes(2, "little")
    return bytes(out)


def command_frame(last_group: int, last_tile: int, load_act: bool) -> bytes:
    if not 0 <= last_group < 1 << (8 * LAST_GROUP_BYTES):
        raise TritforgeError(f"command last_group={last_group}: expected 0..{(1 << 16) - 1}")
    if not 0 <= last_tile < 1 << (8 * LAST_TILE_BYTES):
        raise TritforgeError(f"command last_tile={last_tile}: expected 0..{(1 << 24) - 1}")
    return (bytes([OP_COMMAND]) + last_group.to_bytes(LAST_GROUP_BYTES, "little")
            + last_tile.to_bytes(LAST_TILE_BYTES, "little") + bytes([int(bool(load_act))]))


def act_frames(xq: np.ndarray) -> bytes:
    """``A`` frames for int8 activations (..., in_pad), one per group, in stream order."""
    groups = np.asarray(xq, dtype=np.int8).reshape(-1, layout.GROUP)
    return b"".join(bytes([OP_ACT]) + layout.pack_activation_group(g).to_bytes(ACT_BYTES, "little")
                    for g in groups)


def weight_frames(beats: np.ndarray) -> bytes:
    """``W`` frames for weight beats (..., beat_bytes) uint8, in stream order."""
    b = np.asarray(beats, dtype=np.uint8)
    flat = b.reshape(-1, b.shape[-1])
    return b"".join(bytes([OP_WEIGHT]) + row.tobytes() for row in flat)


# --- board -> host ----------------------------------------------------------------------

@dataclass(frozen=True)
class BoardInfo:
    version: int
    depth: int
    rows: int
    vectors: int
    acc_width: int
    max_groups: int
    tiles_max: int
    beat_bytes: int
    divisor: int

    FIELDS = (("version", 1), ("depth", 1), ("rows", 2), ("vectors", 1), ("acc_width", 1),
              ("max_groups", 3), ("tiles_max", 3), ("beat_bytes", 2), ("divisor", 2))

    def to_bytes(self) -> bytes:
        out = bytearray()
        for name, n in self.FIELDS:
            out += int(getattr(self, name)).to_bytes(n, "little")
        assert len(out) == INFO_BYTES
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "BoardInfo":
        if len(data) != INFO_BYTES:
            raise TritforgeError(f"board info: {len(data)} bytes, expected {INFO_BYTES}")
        values, pos = {}, 0
        for name, n in cls.FIELDS:
            values[name] = int.from_bytes(data[pos:pos + n], "little")
            pos += n
        return cls(**values)

    @classmethod
    def of(cls, hw, divisor: int) -> "BoardInfo":
        return cls(VERSION, hw.depth, hw.rows, hw.vectors, hw.widths.acc, hw.max_groups,
                   hw.tiles_max, hw.beat_bytes, divisor)


@dataclass(frozen=True)
class Result:
    """One decoded result frame."""

    err: bool
    link_error: bool
    last: bool
    vector: int
    acc: tuple[int, ...]


def decode_result(frame: bytes, rows: int, acc_width: int) -> Result:
    """Decode a whole ``R`` frame (opcode included)."""
    n = result_bytes(rows, acc_width)
    if len(frame) != n or frame[0] != OP_RESULT:
        raise TritforgeError(f"result frame {frame[:4].hex()}...: expected {n} bytes "
                             f"starting with {chr(OP_RESULT)!r}")
    flags, vector = frame[1], frame[2]
    ab = acc_bytes(acc_width)
    acc = tuple(int.from_bytes(frame[3 + r * ab:3 + (r + 1) * ab], "little", signed=True)
                for r in range(rows))
    return Result(bool(flags & FLAG_ERR), bool(flags & FLAG_LINK_ERROR), bool(flags & FLAG_LAST),
                  vector, acc)
