"""The host-link core: byte frames (``fpga.protocol``) to and from the engine's streams.

Byte side: ``rx`` (bytes from the UART receiver; ``rx_error`` pulses on a UART overrun or
framing error) and ``tx`` (bytes to the UART transmitter). Engine side: the engine's
``cmd``, ``cb``, ``act``, ``w`` streams driven, ``res`` taken, ``err`` read, and
``engine_reset`` pulsed on a ``Z`` frame. The engine-side ports copy the engine's own
signature, so :func:`amaranth.lib.wiring.connect` joins them.

Receive: one shift register of the largest payload takes the bytes of a frame (each new
byte enters at the top, one cycle after it arrived, so that the register's enable is a
flip-flop), so a frame of n bytes ends in the top n bytes and every stream reads a fixed
slice of it: no multiplexers. When a frame is complete (with its last shift) the stream's
``valid`` rises; the next received byte, if the engine has not taken it by then, is a
link error (the frame is dropped). A frame cut short for ``timeout`` clock cycles is
dropped (link error) and the core waits for an opcode again.

Transmit: one shift register of the longest reply frame; a result beat, the info reply
or the reset acknowledgement is loaded into it when it is empty and shifted out byte by
byte through a 2-byte output FIFO. ``res.ready`` is that register's "empty" flip-flop
itself, so a slow link holds the engine through its own back-pressure and adds no logic
in front of it; the popped result beat is registered (every cycle, no enable) and loaded
one cycle later. Results go before a waiting info reply or reset ack.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import TritforgeError
from ..hwconfig import HwConfig
from . import protocol as P

ENGINE_INPUTS = ("cmd", "cb", "act", "w")


class LinkCore(wiring.Component):
    """Parameters: ``hw`` (HwConfig), ``engine_signature`` (the engine's
    ``wiring.Signature``), ``divisor`` (reported in the info frame) and ``timeout``
    (clock cycles a frame may pause between bytes)."""

    def __init__(self, hw: HwConfig, engine_signature: wiring.Signature, divisor: int,
                 timeout: int):
        if not isinstance(hw, HwConfig):
            raise TritforgeError(f"LinkCore hw={hw!r}: expected a HwConfig")
        members = engine_signature.members
        for name in (*ENGINE_INPUTS, "res", "err"):
            if name not in members:
                raise TritforgeError(f"LinkCore: the engine has no port {name!r} (hw/ENGINE.md)")
        if not 1 <= timeout < 1 << 32:
            raise TritforgeError(f"LinkCore timeout={timeout}: expected 1..2**32-1 cycles")
        self.hw = hw
        self.divisor = divisor
        self.timeout = timeout
        self.info = P.BoardInfo.of(hw, divisor)
        ports = {
            "rx": In(stream.Signature(8)), "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "res": members["res"].flip(), "err": In(1),
            "engine_reset": Out(1), "link_error": Out(1),
        }
        for name in ENGINE_INPUTS:
            ports[name] = members[name].flip()
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        beat = hw.beat_bytes
        sizes = {op: P.payload_bytes(op, beat) for op in
                 (P.OP_INFO, P.OP_RESET, P.OP_CODEBOOK, P.OP_COMMAND, P.OP_ACT, P.OP_WEIGHT)}
        top = 8 * max(sizes.values())

        # --- receive ----------------------------------------------------------------------
        shreg = Signal(top)
        opcode = Signal(8)
        remaining = Signal(range(max(sizes.values()) + 1))
        # remaining != 0 and remaining == 1 as flip-flops of their own: the shift register's
        # enable (hundreds of flip-flops) is then one gate from two flip-flops
        in_frame = Signal()
        last_byte = Signal()
        idle_for = Signal(range(self.timeout + 1))
        want_info = Signal()
        want_ack = Signal()
        link_error = Signal()
        m.d.comb += self.link_error.eq(link_error)

        def tail(nbytes):
            return shreg[top - 8 * nbytes:]

        cmd = tail(P.COMMAND_BYTES)
        lg = 8 * P.LAST_GROUP_BYTES
        lt = 8 * P.LAST_TILE_BYTES
        m.d.comb += [self.cmd.payload.last_group.eq(cmd[:lg]),
                     self.cmd.payload.last_tile.eq(cmd[lg:lg + lt]),
                     self.cmd.payload.load_act.eq(cmd[lg + lt])]
        # the link plays one command at a time (the host waits for its results), so every
        # command reads codebook bank 0 and codebook indices 0..26 write it
        cbw = tail(P.CODEBOOK_BYTES)
        F = hw.mant_bits
        m.d.comb += [self.cb.payload.index.eq(cbw[:8]),
                     self.cb.payload.mantissa.eq(cbw[8:8 + F]),
                     self.cb.payload.shift.eq(cbw[8 + F:8 + F + hw.shift_bits])]
        m.d.comb += [self.act.payload.eq(tail(P.ACT_BYTES)),
                     self.w.payload.eq(tail(beat))]

        streams = {P.OP_COMMAND: self.cmd, P.OP_CODEBOOK: self.cb, P.OP_ACT: self.act,
                   P.OP_WEIGHT: self.w}
        # a payload byte is shifted in one cycle after it arrives (shift_q, byte_q: the
        # shift register's enable is then one flip-flop), and a completed frame's valid
        # rises with that last shift (done_q)
        shift_q = Signal()
        byte_q = Signal(8)
        done_q = Signal()
        m.d.sync += [shift_q.eq(0), done_q.eq(0)]
        with m.If(shift_q):
            m.d.sync += shreg.eq(Cat(shreg[8:], byte_q))
        pending = Signal()   # some stream's valid is high, or about to rise
        m.d.comb += pending.eq(Cat(done_q, *(s.valid for s in streams.values())).any())
        for s in streams.values():
            with m.If(s.ready):
                m.d.sync += s.valid.eq(0)
        with m.If(done_q):                            # after the clears above, before rx's
            with m.Switch(opcode):
                for op, s in streams.items():
                    with m.Case(op):
                        m.d.sync += s.valid.eq(1)

        with m.If(self.rx_error):
            m.d.sync += link_error.eq(1)

        with m.If(self.rx.valid):
            m.d.comb += self.rx.ready.eq(1)
            m.d.sync += idle_for.eq(0)
            with m.If(pending):                       # a frame the engine had not taken
                m.d.sync += link_error.eq(1)
                for s in streams.values():
                    m.d.sync += s.valid.eq(0)
            with m.If(~in_frame):                     # an opcode
                m.d.sync += opcode.eq(self.rx.payload)
                with m.Switch(self.rx.payload):
                    with m.Case(P.OP_INFO):
                        m.d.sync += want_info.eq(1)
                    with m.Case(P.OP_RESET):
                        m.d.sync += [want_ack.eq(1), self.engine_reset.eq(1), link_error.eq(0)]
                        for s in streams.values():
                            m.d.sync += s.valid.eq(0)
                    for op in (P.OP_CODEBOOK, P.OP_COMMAND, P.OP_ACT, P.OP_WEIGHT):
                        with m.Case(op):
                            m.d.sync += [remaining.eq(sizes[op]), in_frame.eq(sizes[op] != 0),
                                         last_byte.eq(sizes[op] == 1)]
                    with m.Default():
                        m.d.sync += link_error.eq(1)
            with m.Else():                            # a payload byte
                m.d.sync += [shift_q.eq(1), byte_q.eq(self.rx.payload), done_q.eq(last_byte),
                             remaining.eq(remaining - 1), in_frame.eq(~last_byte),
                             last_byte.eq(remaining == 2)]
        with m.Elif(in_frame):
            with m.If(idle_for == self.timeout):
                m.d.sync += [remaining.eq(0), in_frame.eq(0), last_byte.eq(0), link_error.eq(1),
                             idle_for.eq(0)]
            with m.Else():
                m.d.sync += idle_for.eq(idle_for + 1)

        with m.If(self.engine_reset):
            m.d.sync += self.engine_reset.eq(0)

        # --- transmit ---------------------------------------------------------------------
        ab = P.acc_bytes(hw.widths.acc)
        res_len = P.result_bytes(hw.rows, hw.widths.acc)
        info_len = 1 + P.INFO_BYTES
        txreg = Signal(8 * max(res_len, info_len))
        tx_left = Signal(range(max(res_len, info_len) + 1))
        # tx_empty == (tx_left == 0), kept as its own flip-flop: res.ready comes from it, and
        # res.ready is the engine's global advance (high fanout), so it must start at a register
        tx_empty = Signal(init=1)
        load_q = Signal()    # txreg takes the registered result frame (below) in this cycle
        # bytes leave through a 2-byte output FIFO whose "room" is a flip-flop computed from
        # its next count, so txreg shifts on registered state only (tx.ready reaches the
        # FIFO's pointers and count, not the wide register)
        obuf = [Signal(8, name=f"obuf{e}") for e in range(2)]
        ocnt = Signal(range(3))
        ocnt_nxt = Signal(range(3))
        owp = Signal()
        orp = Signal()
        room = Signal(init=1)
        push = Signal()
        pop = Signal()
        m.d.comb += [push.eq(~tx_empty & ~load_q & room), pop.eq(self.tx.valid & self.tx.ready),
                     ocnt_nxt.eq(ocnt + push - pop),
                     self.tx.payload.eq(Mux(orp, obuf[1], obuf[0]))]
        m.d.sync += [ocnt.eq(ocnt_nxt), room.eq(ocnt_nxt != 2), self.tx.valid.eq(ocnt_nxt != 0)]
        with m.If(push):
            m.d.sync += [txreg.eq(txreg[8:]), tx_left.eq(tx_left - 1), tx_empty.eq(tx_left == 1),
                         owp.eq(~owp)]
            for e in range(2):
                with m.If(owp == e):
                    m.d.sync += obuf[e].eq(txreg[:8])
        with m.If(pop):
            m.d.sync += orp.eq(~orp)

        info_bytes = bytes([P.OP_INFO]) + self.info.to_bytes()
        info_const = Const(int.from_bytes(info_bytes, "little"), 8 * info_len)
        # the result beat is registered first, with no enable (resq: what the engine shows,
        # every cycle), and the frame is loaded from it one cycle after the pop (load_q), so
        # neither the engine's FIFO read multiplexer nor res.valid reaches the wide txreg
        resq = Signal.like(self.res.payload)
        m.d.sync += [resq.eq(self.res.payload), load_q.eq(0)]
        accs = []
        for r in range(hw.rows):
            a = Signal(signed(8 * ab), name=f"acc{r}")
            m.d.comb += a.eq(resq.acc[r])
            accs.append(a)
        flags = Cat(self.err, link_error, resq.last, Const(0, 5))
        vector = Signal(8)
        m.d.comb += vector.eq(resq.vector)
        res_frame = Cat(Const(P.OP_RESULT, 8), flags, vector, *accs)

        m.d.comb += self.res.ready.eq(tx_empty)      # results first: res.ready is one flip-flop
        with m.If(load_q):
            m.d.sync += txreg.eq(res_frame)
        with m.If(tx_empty):
            with m.If(self.res.valid):
                m.d.sync += [load_q.eq(1), tx_left.eq(res_len), tx_empty.eq(0)]
            with m.Elif(want_ack):
                m.d.sync += [txreg.eq(P.OP_RESET), tx_left.eq(1), want_ack.eq(0), tx_empty.eq(0)]
            with m.Elif(want_info):
                m.d.sync += [txreg.eq(info_const), tx_left.eq(info_len), want_info.eq(0),
                             tx_empty.eq(0)]
        return m
