"""The host side (fpga/hostlink.py) against the engine + link core + UARTs in the Amaranth
simulator, through a bit-level UART model (fpga/simboard.py): no board needed.
Results are compared with codec.golden, the single oracle."""
import numpy as np
import pytest

from tritforge.codec import golden, layout, packfile
from tritforge.errors import TritforgeError
from tritforge.codec.quantize import quantize_matrix
from tritforge.fpga.hostlink import HostLink
from tritforge.fpga.simboard import SimSerial
from tritforge.hwconfig import HwConfig


def _matrix(rng, out, inp, d):
    return quantize_matrix(rng.standard_normal((out, inp)).astype(np.float32), d)


def test_gemv_through_the_simulated_uart_matches_golden():
    hw = HwConfig(depth=2, rows=2, vectors=1, max_in_features=64, max_out_features=8)
    rng = np.random.default_rng(7)
    t = _matrix(rng, 3, 40, 2)                 # 2 tiles (last one padded), 3 groups (padded)
    beats = layout.stream_beats(t.q, t.k, 2, hw.rows)
    xq, _ = golden.quantize_activations(rng.standard_normal(40), t.in_padded)
    with SimSerial(hw, divisor=4) as port:
        link = HostLink(port)
        info = link.reset()
        assert (info.depth, info.rows, info.vectors, info.acc_width, info.beat_bytes) == \
            (2, 2, 1, hw.widths.acc, hw.beat_bytes)
        link.load_codebook(packfile.codebook_words(t.codebook))
        A = link.gemv(beats, xq[None])
    np.testing.assert_array_equal(A[:, :3], golden.accumulators(t, xq)[None])
    assert not A[:, 3:].any()                  # the padding row


def test_two_vectors_and_buffer_reuse():
    hw = HwConfig(depth=1, rows=1, vectors=2, max_in_features=32, max_out_features=4)
    rng = np.random.default_rng(3)
    t1, t2 = _matrix(rng, 2, 32, 1), _matrix(rng, 1, 32, 1)
    xq, _ = golden.quantize_activations(rng.standard_normal((2, 32)))
    with SimSerial(hw, divisor=4) as port:
        link = HostLink(port)
        link.load_codebook(packfile.codebook_words(t1.codebook))
        A1 = link.gemv(layout.stream_beats(t1.q, t1.k, 1, 1), xq)
        link.load_codebook(packfile.codebook_words(t2.codebook))
        A2 = link.gemv(layout.stream_beats(t2.q, t2.k, 1, 1), None)   # load_act = 0
    np.testing.assert_array_equal(A1, golden.accumulators(t1, xq))
    np.testing.assert_array_equal(A2, golden.accumulators(t2, xq))


def test_bad_byte_and_link_errors_are_reported_and_reset_recovers():
    hw = HwConfig(depth=1, rows=1, vectors=1, max_in_features=32, max_out_features=4)
    rng = np.random.default_rng(5)
    t = _matrix(rng, 1, 32, 1)
    beats = layout.stream_beats(t.q, t.k, 1, 1)
    xq, _ = golden.quantize_activations(rng.standard_normal(32))
    bad = beats.copy()
    bad[0, 1, 0] = 250                           # not a trit byte
    with SimSerial(hw, divisor=4) as port:
        link = HostLink(port)
        link.load_codebook(packfile.codebook_words(t.codebook))
        with pytest.raises(TritforgeError, match="243"):
            link.gemv(bad, xq[None])
        port.write(b"\xff")                      # an unknown opcode: a link error
        with pytest.raises(TritforgeError, match="link error"):
            link.gemv(beats, xq[None])
        link.reset()                             # Z clears the link error
        A = link.gemv(beats, xq[None])
    np.testing.assert_array_equal(A, golden.accumulators(t, xq)[None])


def test_host_checks_shapes_against_the_board():
    hw = HwConfig(depth=1, rows=1, vectors=1, max_in_features=32, max_out_features=4)
    with SimSerial(hw, divisor=4) as port:
        link = HostLink(port)
        link.reset()
        with pytest.raises(TritforgeError, match="beats of shape"):
            link.gemv(np.zeros((1, 2, 3), np.uint8), None)
        with pytest.raises(TritforgeError, match="groups"):
            link.gemv(np.zeros((1, 3, hw.beat_bytes), np.uint8), None)
