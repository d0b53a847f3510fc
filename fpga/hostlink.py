"""Host side of the board link: drives the engine on a board through ``fpga.protocol``.

Works on any object with pyserial's ``write(bytes)`` and ``read(n) -> bytes`` (``read``
returns fewer bytes on its timeout): a real port (:func:`open_port`, pyserial), or the
simulated board of the tests. It asks the board for its parameters (``I`` frame), so
the host needs no configuration of its own, then loads the codebook, the activations and
the packed weights and collects the integer accumulators, tile by tile (one tile of
weights in flight: the protocol's flow control).
"""
from __future__ import annotations

import time

import numpy as np

from ..codec import layout
from ..errors import TritforgeError
from . import protocol as P


def open_port(port: str, baud: int, timeout: float = 2.0):
    """Open a serial port (or a pyserial URL such as ``loop://``) with pyserial."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError) as exc:
        raise TritforgeError(f"serial port {port}: cannot open ({exc})") from None


class HostLink:
    """One session with a board: ``reset()``, ``info``, ``load_codebook()``, ``gemv()``."""

    def __init__(self, port, resync_pause: float = 0.0):
        self.port = port
        self.resync_pause = resync_pause
        self.info: P.BoardInfo | None = None

    # --- raw frames -----------------------------------------------------------------------
    def _read(self, n: int, what: str) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.port.read(n - len(data))
            if not chunk:
                raise TritforgeError(f"board link: timed out waiting for {what} "
                                     f"({len(data)} of {n} bytes)")
            data += chunk
        return bytes(data)

    def reset(self) -> P.BoardInfo:
        """Resynchronise (pause, ``Z``), then read the board's parameters."""
        if self.resync_pause:
            time.sleep(self.resync_pause)
        if hasattr(self.port, "reset_input_buffer"):
            self.port.reset_input_buffer()
        self.port.write(P.reset_request())
        ack = self._read(1, "the reset acknowledgement")
        if ack[0] != P.OP_RESET:
            raise TritforgeError(f"board link: reset answered with byte {ack[0]:#04x}, "
                                 f"expected {P.OP_RESET:#04x} ('Z'); is it a tritforge board?")
        self.port.write(P.info_request())
        frame = self._read(1 + P.INFO_BYTES, "the info frame")
        if frame[0] != P.OP_INFO:
            raise TritforgeError(f"board link: info answered with byte {frame[0]:#04x}, expected 'I'")
        info = P.BoardInfo.from_bytes(frame[1:])
        if info.version != P.VERSION:
            raise TritforgeError(f"board link: protocol version {info.version}, "
                                 f"this host speaks {P.VERSION}")
        self.info = info
        return info

    def _need_info(self) -> P.BoardInfo:
        if self.info is None:
            self.reset()
        return self.info

    def load_codebook(self, words: np.ndarray) -> None:
        """Load the 27 codebook words (``codec.packfile.codebook_words``)."""
        words = np.asarray(words).reshape(-1)
        if words.size != layout.CODEBOOK_SIZE:
            raise TritforgeError(f"codebook: {words.size} words, expected {layout.CODEBOOK_SIZE}")
        self._need_info()
        self.port.write(P.codebook_frames(words))

    # --- one GEMV command ---------------------------------------------------------------------
    def gemv(self, beats: np.ndarray, xq: np.ndarray | None) -> np.ndarray:
        """Run one command: weight beats (tiles, ng, beat_bytes) (``layout.stream_beats``)
        against int8 activations xq (T', ng*16) with T' <= T (``None`` reuses the loaded
        buffer). Returns the accumulators (T', tiles*R) as int64 (or object for > 63 bits).
        """
        info = self._need_info()
        beats = np.asarray(beats, dtype=np.uint8)
        if beats.ndim != 3 or beats.shape[2] != info.beat_bytes:
            raise TritforgeError(f"weight beats of shape {beats.shape}: expected "
                                 f"(tiles, groups, {info.beat_bytes}) for this board")
        tiles, ng, _ = beats.shape
        if not 1 <= ng <= info.max_groups:
            raise TritforgeError(f"matrix of {ng} groups: the board takes 1..{info.max_groups}")
        if not 1 <= tiles <= info.tiles_max:
            raise TritforgeError(f"matrix of {tiles} tiles: the board takes 1..{info.tiles_max}")
        n_vec = info.vectors
        if xq is not None:
            xq = np.asarray(xq, dtype=np.int8)
            xq = xq.reshape(-1, xq.shape[-1])
            if xq.shape[1] != ng * layout.GROUP or xq.shape[0] > info.vectors:
                raise TritforgeError(f"activations of shape {xq.shape}: expected up to "
                                     f"{info.vectors} vectors of {ng * layout.GROUP}")
            n_vec = xq.shape[0]
            full = np.zeros((info.vectors, ng * layout.GROUP), dtype=np.int8)
            full[:n_vec] = xq
        self.port.write(P.command_frame(ng - 1, tiles - 1, xq is not None))
        if xq is not None:
            self.port.write(P.act_frames(full))
        out = np.zeros((info.vectors, tiles * info.rows), dtype=object)
        frame_len = P.result_bytes(info.rows, info.acc_width)
        for t in range(tiles):
            self.port.write(P.weight_frames(beats[t]))
            for v in range(info.vectors):
                res = P.decode_result(self._read(frame_len, f"result tile {t} vector {v}"),
                                      info.rows, info.acc_width)
                if res.link_error:
                    raise TritforgeError("board link: the board reports lost data (link error); "
                                         "check the baud rate and cabling")
                if res.err:
                    raise TritforgeError("board: the engine flagged a weight byte >= 243")
                expect_last = t == tiles - 1 and v == info.vectors - 1
                if res.vector != v or res.last != expect_last:
                    raise TritforgeError(f"board link: result tile {t} vector {v} came back as "
                                         f"vector {res.vector}, last={res.last}")
                out[v, t * info.rows:(t + 1) * info.rows] = res.acc
        out = out[:n_vec]
        if info.acc_width <= 63:
            out = out.astype(np.int64)
        return out
