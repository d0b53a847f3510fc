"""Scale multiply-accumulate: codebook lookup, one mantissa multiply per group, exact shift,
row accumulators, result register.

For every item (one group column of R rows for one activation vector)::

    A[v, r] = A[v, r] + (m[k[r]] * P[r]) << delta[k[r]]

and when the item is its row tile's final group, ``A[v, :]`` goes out on ``o`` as one
result beat ``{acc, vector, last}`` (``codec.golden.accumulate``, hw/ENGINE.md).

Accumulators of width ``HwConfig.widths.acc``: with n groups, |P| <= 16*L*128,
m <= 2**F - 1 and delta <= S, ``|A| <= n * 16*L*128 * (2**F - 1) * 2**S``, and
``codec.golden.widths`` sizes the signed register at ``bound.bit_length() + 1`` bits, so
no admitted input overflows it (tests drive the extreme case).

T activation vectors share one weight item stream in the order v = 0..T-1 per group, so
the T accumulators form a ring: each valid item takes the head and puts the updated sum at
the tail (no multiplexer by v); a tile's first item adds its term to 0 instead of the head
(``hw.gatedadd``: an AND in front of the adder, or inside the ECP5 carry chain; its select
a per-row copy of the tag's ``first`` bit), so every tile starts from 0 and the adder's sum
goes straight into the ring; the ring's tail is resolved into a register one stage later
and the result FIFO takes it from there. T = 1 is a single register.

Composed of the codebook (``hw.codebookram.CodebookRam``: two banks of 27 entries written
through the ``cb`` stream, read at the item's index in its command's bank (the tag's
``bank``), a word ``m << (shift & 3)`` and ``shift >> 2`` per entry, so the exact shift
leaves one 4-way multiplexer after the multiply), one multiply-shift-accumulate row per
output row, and the result FIFO with the engine's advance (``hw.resultfifo.ResultFifo``).

Pipelined, ``latency`` = 8 stages: (1) codebook lookup (LUT RAM read into fabric
registers, beside P), (2)-(4) mantissa x P (one small multiply per row: (F+3) x dot bits,
15 x 18 at most, one DSP with its own input, pipeline and output registers,
``hw.multiplier``), (5) coarse shift into a term register, (6) accumulate into the ring,
(7) the ring's tail resolved into a register (the split accumulator's hi + c), (8) the
result FIFO. The whole block advances when ``adv`` is high, the result FIFO's flip-flop
decided three cycles ahead (``i.ready = adv``; hw/ENGINE.md), so ``res.ready`` reaches no
advance. The engine's one global advance comes from here, and ``adv_next`` (its next
value, a flip-flop too) loads the copies of it that drive the clock enables
(``hw.replica``: one per row here, more in the engine). The accumulators' clock enables
are flip-flops of their own (one per row).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import HwConfig
from .checks import check_config, check_int
from .codebookram import FINE, CodebookRam, word_layout
from .decoder import index_layout
from .gatedadd import gated_add
from .multiplier import PipelinedMultiplier
from .issue import item_tag_layout
from .primitives import check_primitives
from .replica import replicas
from .resultfifo import ResultFifo
from .signature import payload_layouts


def multiplier_bits(cfg: HwConfig) -> tuple[int, int]:
    """Signed operand widths of a row's multiplier: the codebook word's ``pm`` (unsigned,
    one bit more as signed) and the group dot product."""
    return word_layout(cfg)["pm"].shape.width + 1, cfg.widths.dot


class ScaleMac(wiring.Component):
    """Ports: ``i`` stream of ``{p, k, tag}``; ``cb`` codebook writes; ``o`` result beats;
    ``adv_next`` (the advance's next value: what ``i.ready`` will be in the next cycle, a
    flip-flop, for registers outside computed from the next state); ``adv_copies`` (copies
    of ``adv_next``, each its own flip-flop loaded from the advance two cycles ahead, for
    the copies of the advance in the other blocks: a tree of flip-flops); ``done`` (a
    flip-flop, high in the cycle after the command's last result beat was popped: it ends
    RUN in the engine)."""

    #: the lookup stage, the multiplier's three stages, shift, accumulate, resolve, result
    #: FIFO
    latency = 5 + PipelinedMultiplier.latency

    def __new__(cls, cfg: HwConfig, *, primitives: str = "generic", adv_copies: int = 0):
        cls.check(cfg, primitives)
        check_int("ScaleMac", "adv_copies", adv_copies)
        return super().__new__(cls)

    @staticmethod
    def check(cfg: HwConfig, primitives: str) -> None:
        """The parameters, and that the primitive set can build the mantissa multiplier."""
        check_config("ScaleMac", cfg)
        check_primitives(primitives, "scale MAC")
        PipelinedMultiplier.check(*multiplier_bits(cfg), primitives)

    def __init__(self, cfg: HwConfig, *, primitives: str = "generic", adv_copies: int = 0):
        self.primitives = primitives
        self.cfg = cfg
        w = cfg.widths
        lay = payload_layouts(cfg)
        self.in_layout = data.StructLayout({
            "p": data.ArrayLayout(signed(w.dot), cfg.rows), "k": index_layout(cfg),
            "tag": item_tag_layout(cfg)})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "cb": In(stream.Signature(lay["cb"])),
            "o": Out(stream.Signature(lay["res"])),
            "adv_next": Out(1),
            "adv_copies": Out(adv_copies),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        w = cfg.widths
        R, T = cfg.rows, cfg.vectors
        m = Module()
        m.submodules.codebook = cbr = CodebookRam(cfg)
        m.submodules.fifo = fifo = ResultFifo(cfg, adv_copies=len(self.adv_copies))
        wiring.connect(m, wiring.flipped(self.cb), cbr.cb)
        wiring.connect(m, fifo.o, wiring.flipped(self.o))
        adv, adv2 = fifo.adv, fifo.adv_next
        m.d.comb += [self.i.ready.eq(adv), self.adv_next.eq(adv2),
                     self.adv_copies.eq(fifo.adv_copies), self.done.eq(fifo.done)]
        # one copy of the advance per row for the row's datapath registers and multiplier
        adv_row = replicas(m, "adv_row", adv2, R, init=1)
        word = word_layout(cfg)
        pm_bits, coarse_bits = word["pm"].shape.width, word["coarse"].shape.width
        prod_bits = w.dot + pm_bits + 1
        tag_layout = item_tag_layout(cfg)

        # stage 1: lookup into fabric registers (m1, p1, s1); stages 2-4: product (the
        # multiplier's input, pipeline and output registers); shift and tag beside it
        valid = [Signal(name=f"v{n}") for n in range(1, 8)]
        tags = [Signal(tag_layout, name=f"tag{n}") for n in range(1, 8)]
        fin7 = Signal()          # v7 & tag7.final, its own flip-flop
        fin6 = Signal()          # v6 & tag6.final, likewise
        fin5 = Signal()          # v5 & tag5.final, likewise
        m1 = [Signal(pm_bits, name=f"m1_{r}", reset_less=True) for r in range(R)]
        p1 = [Signal(signed(w.dot), name=f"p1_{r}", reset_less=True) for r in range(R)]
        sh = [[Signal(coarse_bits, name=f"s{n}_{r}", reset_less=True) for r in range(R)]
              for n in range(1, 5)]
        prod = []
        for r in range(R):
            m.submodules[f"mul{r}"] = mul = PipelinedMultiplier(
                *multiplier_bits(cfg), primitives=self.primitives)
            m.d.comb += [mul.a.eq(m1[r]), mul.b.eq(p1[r]), mul.en.eq(adv_row[r]),
                         cbr.addr[r].eq(Cat(self.i.payload.k[r], self.i.payload.tag.bank))]
            prod.append(mul.p)
        # stage 5: the shifted term; stage 6: accumulator ring (T entries of R accumulators);
        # stage 7: the ring's tail resolved; stage 8: the result FIFO. A tile's first item
        # adds its term to 0 instead of the ring's head (hw/gatedadd.py: an AND in front of
        # the adder, or inside the ECP5 carry chain), so the adder's sum goes straight into
        # the ring and no entry needs clearing.
        # With the ECP5 primitives each accumulator is kept as two halves and the carry
        # between them (value = (hi + c) * 2**L + lo): a step adds the term's halves in two
        # carry chains of about half the width, the low one's carry out registered as c and
        # added into the high half at the next step (the high chain's carry in); stage 7
        # resolves hi + c. (ECP5 primitive set only: on iCE40 the carry chain with a
        # carry-in from a register does not place, "failed to place chain"; the generic set
        # keeps one W-bit adder)
        split = self.primitives == "ecp5"
        L = max(1, w.acc // 2)
        H = w.acc - L
        parts = ("lo", "c", "hi") if split else ("acc",)

        def acc_regs(v, r):
            if not split:
                return {"acc": Signal(signed(w.acc), name=f"acc_v{v}_r{r}")}
            return {"lo": Signal(L, name=f"acc_lo_v{v}_r{r}"), "c": Signal(name=f"acc_c_v{v}_r{r}"),
                    "hi": Signal(signed(H), name=f"acc_hi_v{v}_r{r}")}
        ring = [[acc_regs(v, r) for r in range(R)] for v in range(T)]

        # combinational logic first, outside any enable: the advance only reaches the
        # registers' clock enables, never a data path
        # tags[4].first (the item entering the ring is its tile's first), one copy per row
        # (it gates acc_width bits of the adder's input): loaded with its next value
        first = replicas(m, "first", Mux(adv, tags[3].first, tags[4].first), R)
        new, terms, term_in = [], [], []
        for r in range(R):
            term_bits = prod_bits + (1 << FINE) * ((1 << coarse_bits) - 1)
            t_in = Signal(signed(term_bits), name=f"term_in_{r}")
            with m.Switch(sh[3][r]):
                for c in range(1 << coarse_bits):
                    with m.Case(c):
                        m.d.comb += t_in.eq(prod[r] << ((1 << FINE) * c))
            term = Signal(signed(term_bits), name=f"term_{r}", reset_less=True)
            terms.append(term)
            term_in.append(t_in)
            head = ring[0][r]
            if not split:
                n = Signal(signed(w.acc), name=f"acc_new_{r}")
                m.d.comb += n.eq(Mux(first[r], 0, head["acc"]) + term)
                new.append({"acc": n})
                continue
            # the gate inside the carry chains' own LUTs (hw/gatedadd.py)
            lo_sum = gated_add(m, f"acc_lo_sum_{r}", head["lo"], first[r], term[:L], L + 1,
                               primitives=self.primitives)
            hi_sum = gated_add(m, f"acc_hi_sum_{r}", head["hi"], first[r], term >> L, H,
                               cin=head["c"], primitives=self.primitives)
            new.append({"lo": lo_sum[:L], "c": lo_sum[L], "hi": hi_sum})

        # stage 7: the ring's tail resolved (with the split accumulator: hi + c over the
        # high half) into a register of its own, which the FIFO's entries then load
        resolved = [Signal(signed(w.acc), name=f"resolved_{r}", reset_less=True)
                    for r in range(R)]
        m.d.comb += [fifo.entry.acc[r].eq(resolved[r]) for r in range(R)]
        m.d.comb += [fifo.entry.vector.eq(tags[6].vector), fifo.entry.last.eq(tags[6].last),
                     fifo.final.eq(fin7), fifo.final_next.eq(Mux(adv, fin6, fin7))]
        # the ring's clock enable (hundreds of flip-flops) is a flip-flop, one copy per row,
        # computed from the next state: adv & v5 one cycle ahead
        ring_en = replicas(m, "ring_en", adv2 & Mux(adv, valid[3], valid[4]), R)

        with m.If(adv):
            m.d.sync += [valid[0].eq(self.i.valid), tags[0].eq(self.i.payload.tag),
                         fin7.eq(fin6), fin6.eq(fin5), fin5.eq(valid[3] & tags[3].final)]
            m.d.sync += [valid[n + 1].eq(valid[n]) for n in range(6)]
            m.d.sync += [tags[n + 1].eq(tags[n]) for n in range(6)]
        for r in range(R):
            with m.If(adv_row[r]):
                tail = ring[T - 1][r]
                m.d.sync += [m1[r].eq(cbr.data[r].pm), p1[r].eq(self.i.payload.p[r]),
                             sh[0][r].eq(cbr.data[r].coarse), terms[r].eq(term_in[r]),
                             resolved[r].eq(Cat(tail["lo"], tail["hi"] + tail["c"])
                                            if split else tail["acc"])]
                m.d.sync += [sh[n + 1][r].eq(sh[n][r]) for n in range(3)]
        for r in range(R):
            with m.If(ring_en[r]):                   # = adv & valid[4]
                for v in range(T - 1):
                    m.d.sync += [ring[v][r][h].eq(ring[v + 1][r][h]) for h in parts]
                m.d.sync += [ring[T - 1][r][h].eq(new[r][h]) for h in parts]
        return m
