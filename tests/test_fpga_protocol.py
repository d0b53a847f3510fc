"""Host-link framing (fpga/protocol.py): sizes, encodings and decoding."""
import numpy as np
import pytest

from tritforge.codec import layout
from tritforge.errors import TritforgeError
from tritforge.fpga import protocol as P
from tritforge.hwconfig import HwConfig


def test_frame_sizes_follow_the_config():
    hw = HwConfig(depth=2, rows=4)
    assert P.payload_bytes(P.OP_WEIGHT, hw.beat_bytes) == 28
    assert P.payload_bytes(P.OP_ACT, hw.beat_bytes) == 16
    assert P.result_bytes(4, hw.widths.acc) == 3 + 4 * -(-hw.widths.acc // 8)
    with pytest.raises(TritforgeError, match="opcode"):
        P.payload_bytes(0x00, 28)


def test_encodings():
    assert P.command_frame(3, 0x10203, True) == b"X\x03\x00\x03\x02\x01\x01"
    with pytest.raises(TritforgeError, match="last_group"):
        P.command_frame(1 << 16, 0, False)
    words = np.arange(27, dtype=np.uint16) * 1000
    cb = P.codebook_frames(words)
    assert len(cb) == 27 * 4 and cb[4:8] == b"C\x01" + (1000).to_bytes(2, "little")
    x = np.arange(-8, 24, dtype=np.int8)
    a = P.act_frames(x)
    assert len(a) == 2 * 17 and a[0] == P.OP_ACT
    assert int.from_bytes(a[1:17], "little") == layout.pack_activation_group(x[:16])
    beats = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    w = P.weight_frames(beats)
    assert w[:6] == b"W\x00\x01\x02\x03\x04" and len(w) == 6 * 6


def test_info_and_result_round_trip():
    hw = HwConfig(depth=3, rows=2, vectors=2)
    info = P.BoardInfo.of(hw, 217)
    assert P.BoardInfo.from_bytes(info.to_bytes()) == info
    ab = P.acc_bytes(hw.widths.acc)
    accs = [-(1 << (hw.widths.acc - 1)), (1 << (hw.widths.acc - 1)) - 1]
    frame = bytes([P.OP_RESULT, P.FLAG_LAST | P.FLAG_ERR, 1]) + b"".join(
        a.to_bytes(ab, "little", signed=True) for a in accs)
    res = P.decode_result(frame, 2, hw.widths.acc)
    assert res.acc == tuple(accs) and res.last and res.err and not res.link_error and res.vector == 1
    with pytest.raises(TritforgeError, match="expected"):
        P.decode_result(frame[:-1], 2, hw.widths.acc)
