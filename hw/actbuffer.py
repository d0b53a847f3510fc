"""Activation buffer: one registered write port, one read port with three register stages.

``words`` words of ``width`` bits. A write (``w_en``, ``w_addr``, ``w_data``) is registered
in the fabric and takes effect at the next clock edge (the register has no reset, so a
write offered in a reset cycle still lands). A read presents ``r_addr`` with ``r_en`` high;
the word appears on ``r_data`` after three enabled edges (a fabric address register, the
block's address register, its output register), all clock-enabled by ``r_en``, so
``r_data`` holds while ``r_en`` is low. The fabric registers in front let the block RAM,
wherever its column puts it, be reached from flip-flops alone. A read of an address in
the cycle after it was offered for writing returns the old word.

Primitive sets (hw/primitives.py; the same behaviour and latency in each):

* ``"generic"``: ``amaranth.lib.memory.Memory`` with a synchronous read port and a fabric
  register after it; Yosys infers block RAM without an output register.
* ``"ecp5"``: Lattice ``DP16KD`` block RAMs in pseudo-dual-port mode with the output
  register enabled (``REGMODE_B = "OUTREG"``, ``OCEB`` = ``r_en``). Yosys's ECP5 block RAM
  mapping never enables that register (its brams_map_16kd.v sets ``REGMODE "NOREG"``), and
  nextpnr then times the block's read clock-to-out at 5.83 ns (speed 6), which limits
  the engine once its multipliers are registered. Organisation: the widest port
  width of 36, 18, 9, 4, 2 or 1 bits whose depth (512 .. 16384 words) holds ``words``,
  ``ceil(width / port width)`` blocks side by side, no depth cascade (``words`` up to
  16,384). The tests run it against the behavioural Verilog model in tests/ecp5_models.py
  (written from Lattice TN1264, "ECP5 and ECP5-5G Memory Usage Guide").
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..errors import TritforgeError
from .checks import check_int
from .primitives import check_primitives

#: ECP5 DP16KD port widths and the depth each gives (18 Kbit blocks)
ECP5_CONFIGS = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
#: address bits of a DP16KD port; a port of depth 2**k uses the top k (AD13 down)
ECP5_ADDR_BITS = 14


def ecp5_config(words: int, width: int) -> tuple[int, int, int]:
    """(port width, port depth, blocks) of the ECP5 organisation of a buffer."""
    for pw, depth in ECP5_CONFIGS:
        if depth >= words:
            return pw, depth, -(-width // pw)
    raise TritforgeError(f"activation buffer of {words} words: the ECP5 primitive holds at "
                         f"most {ECP5_CONFIGS[-1][1]} words (no depth cascade)")


def buildable_with(words: int, primitives: str) -> str:
    """``primitives``, or ``"generic"`` where that set cannot hold ``words`` words (the
    ``ecp5`` buffer has no depth cascade); both give the same cycles."""
    return "generic" if primitives == "ecp5" and words > ECP5_CONFIGS[-1][1] else primitives


class ActivationBuffer(wiring.Component):
    """Ports: ``w_en``, ``w_addr``, ``w_data``; ``r_en``, ``r_addr``, ``r_data``."""

    latency = 3

    def __new__(cls, words: int, width: int, *, primitives: str = "generic", fabric: bool = True):
        cls.check(words, width, primitives)
        return super().__new__(cls)

    @staticmethod
    def check(words: int, width: int, primitives: str) -> None:
        """The parameters, and that the primitive set can build the buffer."""
        check_int("ActivationBuffer", "words", words, 1)
        check_int("ActivationBuffer", "width", width, 1)
        check_primitives(primitives, "activation buffer")
        if primitives == "ecp5":
            ecp5_config(max(words, 2), width)

    def __init__(self, words: int, width: int, *, primitives: str = "generic", fabric: bool = True):
        self.words, self.width, self.primitives = max(words, 2), width, primitives
        #: with ``fabric=False`` the write port and the read address go to the block as they
        #: are (a write lands at the next clock edge, as ``lib.memory``'s does) and the word
        #: appears after two enabled edges (the block's address and output registers)
        self.fabric = fabric
        self.latency = 3 if fabric else 2
        if primitives == "ecp5":
            self.ecp5 = ecp5_config(self.words, width)
        abits = unsigned(ceil_log2(self.words))
        super().__init__({"w_en": In(1), "w_addr": In(abits), "w_data": In(width),
                          "r_en": In(1), "r_addr": In(abits), "r_data": Out(width)})
        # the fabric registers in front of the block: write port, read address
        self.w_en_q = Signal(reset_less=True)
        self.w_addr_q = Signal.like(self.w_addr, reset_less=True)
        self.w_data_q = Signal.like(self.w_data, reset_less=True)
        self.r_addr_q = Signal.like(self.r_addr, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        if not self.fabric:
            m.d.comb += [self.w_en_q.eq(self.w_en), self.w_addr_q.eq(self.w_addr),
                         self.w_data_q.eq(self.w_data), self.r_addr_q.eq(self.r_addr)]
        else:
            m.d.sync += [self.w_en_q.eq(self.w_en), self.w_addr_q.eq(self.w_addr),
                         self.w_data_q.eq(self.w_data)]
            with m.If(self.r_en):
                m.d.sync += self.r_addr_q.eq(self.r_addr)
        if self.primitives == "ecp5":
            self._ecp5(m)
            return m
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.words,
                                               init=[])
        wport = mem.write_port()
        rport = mem.read_port(domain="sync", transparent_for=())
        m.d.comb += [wport.en.eq(self.w_en_q), wport.addr.eq(self.w_addr_q),
                     wport.data.eq(self.w_data_q), rport.en.eq(self.r_en),
                     rport.addr.eq(self.r_addr_q)]
        with m.If(self.r_en):
            m.d.sync += self.r_data.eq(rport.data)
        return m

    def _ecp5(self, m):
        pw, depth, blocks = self.ecp5
        low = ECP5_ADDR_BITS - ceil_log2(depth)     # unused low address bits of a port
        half = min(pw, 18)                          # data bits on the A (B) half of a port
        for blk in range(blocks):
            lo = blk * pw
            n = min(pw, self.width - lo)
            di = Signal(pw, name=f"di{blk}")
            do = Signal(pw, name=f"do{blk}")
            m.d.comb += [di[:n].eq(self.w_data_q[lo:lo + n]), self.r_data[lo:lo + n].eq(do[:n])]
            # at port widths of 18 and 36 the low address bits are the byte (9-bit) write
            # enables and WEA is held high (as Yosys's own mapping does); below, WEA writes
            byte_enables = pw // 9 if pw >= 18 else 0
            ports = {"i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                     "i_CEA": Const(1, 1), "i_OCEA": self.r_en if pw == 36 else Const(0, 1),
                     "i_RSTA": Const(0, 1),
                     "i_WEA": Const(1, 1) if byte_enables else self.w_en_q,
                     "i_CEB": self.r_en, "i_OCEB": self.r_en,
                     "i_RSTB": Const(0, 1), "i_WEB": Const(0, 1)}
            for c in range(3):
                ports.update({f"i_CSA{c}": Const(0, 1), f"i_CSB{c}": Const(0, 1)})
            for b in range(ECP5_ADDR_BITS):
                if b >= low:
                    ports[f"i_ADA{b}"] = (self.w_addr_q[b - low] if b - low < len(self.w_addr)
                                          else Const(0, 1))
                    ports[f"i_ADB{b}"] = (self.r_addr_q[b - low] if b - low < len(self.r_addr)
                                          else Const(0, 1))
                else:
                    ports[f"i_ADA{b}"] = self.w_en_q if b < byte_enables else Const(0, 1)
                    ports[f"i_ADB{b}"] = Const(0, 1)
            # write data: DIA (low half) then, at width 36, DIB; read data: DOA then DOB
            for i in range(18):
                ports[f"i_DIA{i}"] = di[i] if i < half else Const(0, 1)
                ports[f"i_DIB{i}"] = di[18 + i] if pw == 36 else Const(0, 1)
                if pw == 36:
                    ports[f"o_DOA{i}"] = do[i]
                    ports[f"o_DOB{i}"] = do[18 + i]
                elif i < pw:
                    ports[f"o_DOB{i}"] = do[i]
            # at width 36 (pseudo dual port) the read data leaves on DOA and DOB and nextpnr
            # times DOA by REGMODE_A: both halves get the output register (OCEA = OCEB)
            params = {"p_DATA_WIDTH_A": pw, "p_DATA_WIDTH_B": pw,
                      "p_REGMODE_A": "OUTREG" if pw == 36 else "NOREG",
                      "p_REGMODE_B": "OUTREG", "p_RESETMODE": "SYNC",
                      "p_ASYNC_RESET_RELEASE": "SYNC", "p_CSDECODE_A": "0b000",
                      "p_CSDECODE_B": "0b000", "p_WRITEMODE_A": "NORMAL",
                      "p_WRITEMODE_B": "NORMAL", "p_CLKAMUX": "CLKA", "p_CLKBMUX": "CLKB",
                      "p_GSR": "DISABLED"}
            m.submodules[f"bram{blk}"] = Instance("DP16KD", **params, **ports)
