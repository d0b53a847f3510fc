"""The variable-depth engine's word FIFO and column finder: memory beats in, one column of
the variable-depth stream a cycle out (hw/ENGINE.md "Variable-depth stream").

Memory beats (``i``, ``tritforge.ports.mem_port``: ``mem_bytes`` = P bytes, the first
``count`` valid) are kept whole, one per *slot* of a circular buffer of
``HwConfig.window_words`` = N slots; a beat of ``count = 0`` carries nothing and is
dropped, a beat of fewer than P bytes ends a job's stream (its bytes from ``count`` on are
*pad*, never a column). Nothing is shifted: a column is found by its slot and byte offset.

Where a column ends follows from its header alone (its R depth trits,
``codec.layout.var_column_bytes``), so for every byte offset o of every beat the finder
computes an *entry*: the offset ``(o + L) mod P`` where the next column starts, the beats
it advances ``(o + L) div P`` and the beat holding its last byte ``(o + L - 1) div P``. The
first ``P - h + 1`` offsets are *head* offsets (a column's h header bytes end in the beat);
the last ``h - 1`` are *tail* offsets, whose entries are computed when the next beat
arrives.

No loop looks an entry up by slot. Each beat, in the order it arrives, is turned by a
pipeline without feedback into a *row*: for every way into the beat — at one of its P
offsets, or through the previous beat's tail offset t (that column's end decides where
this beat is entered) — the chain of columns that starts in the beat from there (a P-bit
mask of their offsets), and how the chain leaves it: the index of the way into the next
beat and how many beats it passes over first (a column longer than a beat). A chain within
a beat is followed by lookups in the beat's own nodes (``chain_moves`` + 1 of them, two a
register stage, ``HwConfig.chain_stages``); a chain that reaches a tail offset leaves
through it, and a pad offset leaves to the next beat's byte 0. The *beat loop* then takes
one row a cycle, as they come: its only state is the way into the next beat, one selection
among the row's ways. It hands the beat's mask (with the column through the previous
beat's tail offset first) to the *popper*, which gives one column a cycle (the lowest
offset left); the column's entry is looked up and it waits at the *take* until its last
beat is present and the gearbox has ``room``.

A beat accepted in cycle x: its decoded digits (x + 1), its slot and depth sums (x + 2),
its entries (x + 3, written into one small memory per offset), its nodes (x + 4), its
chains (``chain_stages`` registers), its row (tail ways), the beat loop, the popper, the
lookup, the take: a column whose last beat is accepted in x can be taken from
``x + HwConfig.gearbox_take_cycles``. ``take`` is high in a cycle a column is taken; its
decoded beats (``span`` of them from its first, read from the slots' memory) and where it
lies in them are registered, so ``col_valid`` and ``words``, ``offset``, ``length`` and
``cross`` (the column runs past a partial beat's end: its bytes there are pad) show it the
cycle after. The beats before the next column's are freed in the take's edge; ``i.ready``
is high while a slot is free (from registers).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..codec import layout
from ..hwconfig import HwConfig
from .checks import check_config
from .decoder import byte_digits, byte_invalid
from .indexing import pick
from .replica import RegisterReplicas
from .signature import payload_shape
from ..ports import mem_port


#: bits of one decoded byte in a slot: five 2-bit base-3 digits (an invalid byte's read as
#: zero trits) and the invalid flag
SLOT_BITS = 2 * layout.TRITS_PER_BYTE + 1
#: bytes of a slot per memory: the slots are kept in memories of this many decoded bytes
#: (and one of the counts), each with its own registered copy of the write and read
#: addresses, so that no address net spans the whole slot store
SLOT_CHUNK_BYTES = 2


def column_lengths(cfg: HwConfig) -> list[int]:
    """A column's bytes by the sum of its R depths (0..R*D): ``layout.var_column_bytes``
    depends on the sum only."""
    sums = np.zeros((cfg.rows * cfg.depth + 1, cfg.rows), dtype=np.int64)
    sums[:, 0] = np.arange(cfg.rows * cfg.depth + 1)
    return layout.var_column_bytes(sums).tolist()


def depth_digit(digits, header_trit: int):
    """The digit of a header's trit ``header_trit``, its header starting at byte 0 of the
    per-byte digit lists ``digits``."""
    b, pos = divmod(header_trit, layout.TRITS_PER_BYTE)
    return digits[b][pos]


def clipped_depth(digit, depth: int):
    """A group's depth k = D - 2 + digit, read as 0 below (a depth outside the base depth's
    range is flagged by the gearbox, not here)."""
    return Mux(digit + depth >= 2, (digit + depth - 2).as_unsigned(), 0)


class ColumnFinder(wiring.Component):
    """Ports: ``i`` (memory beats), ``room`` (a column may be taken), ``take``,
    ``col_valid`` with ``words``, ``offset``, ``length``, ``cross`` (module docstring)."""

    #: descriptors (looked-up columns) the take may have waiting beside the one at the take:
    #: a column is at the take 4 cycles after the popper's credit returns
    DESCRIPTORS = 5
    #: registered copies of the entry lookup's address, each for P / copies entry memories
    LOOKUP_ADDRESS_COPIES = 4

    def __new__(cls, cfg: HwConfig):
        check_config("ColumnFinder", cfg)
        if not cfg.variable:
            raise ValueError(f"ColumnFinder cfg.weight_stream must be 'variable', not "
                             f"{cfg.weight_stream!r}")
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.P, self.N, self.span = cfg.mem_bytes, cfg.window_words, cfg.column_span
        self.head = layout.var_header_bytes(cfg.rows)
        self.heads = self.P - self.head + 1          # head offsets 0 .. heads - 1
        self.tails = self.head - 1                   # tail offsets heads .. P - 1
        self.ways = self.P + self.tails              # ways into a beat: an offset, or a tail t (P + t)
        self.lengths = column_lengths(cfg)
        self.adv_max = (self.P - 1 + max(self.lengths)) // self.P
        #: beats a chain may pass over (at most adv_max - 1), as a field of at least one bit
        self.skips = max(self.adv_max, 2)
        #: a node (``_nodes``)
        self.node_layout = data.StructLayout({"step": 1, "starts": 1, "nxt": range(self.P),
                                              "way": range(self.ways), "skip": range(self.skips)})
        #: an entry's fields: next offset, beats advanced, beat of the last byte
        self.entry_fields = {"next": Shape.cast(range(self.P)), "adv": Shape.cast(range(self.adv_max + 1)),
                             "last": Shape.cast(range(self.span))}
        super().__init__({"i": In(stream.Signature(payload_shape(mem_port(cfg)))), "room": In(1),
                          "take": Out(1), "col_valid": Out(1),
                          "words": Out(SLOT_BITS * self.P * self.span), "offset": Out(range(self.P)),
                          "length": Out(range(max(self.lengths) + 1)), "cross": Out(1)})

    def _rom(self, m, o: int, s, name: str):
        """(next offset, beats advanced, beat of the last byte) of a column at byte offset
        o whose depths sum to ``s``: a constant table per offset."""
        P = self.P
        nxt, adv, last = (Signal(shape, name=f"{name}_{field}") for field, shape in self.entry_fields.items())
        with m.Switch(s):                    # the largest sum as the default
            for v, n in enumerate(self.lengths):
                with m.Case(v) if v < len(self.lengths) - 1 else m.Default():
                    m.d.comb += [nxt.eq((o + n) % P), adv.eq((o + n) // P), last.eq((o + n - 1) // P)]
        return nxt, adv, last

    # --- a beat's row ---------------------------------------------------------------------
    def _nodes(self, m, rom, n3):
        """Per offset of the beat (from its entries, x + 3): a *node*: ``step`` (the column
        there ends inside the beat, the next starts at ``nxt``), ``starts`` (a column starts
        there), and where a chain ending there leaves the beat (``way`` into the next beat,
        ``skip`` beats passed over first)."""
        P, h = self.P, self.head
        nodes = []
        for o in range(P):
            n = Signal(self.node_layout, name=f"n{o}")
            pad = o >= n3
            if o < self.heads:
                e_next, e_adv, _ = rom[o + h - 1]
                m.d.comb += [n.step.eq(~pad & (e_adv == 0)), n.starts.eq(~pad), n.nxt.eq(e_next),
                             n.way.eq(Mux(pad, 0, e_next)), n.skip.eq(Mux(pad | (e_adv == 0), 0, e_adv - 1))]
            else:                            # a tail offset: its column leaves through it
                m.d.comb += n.way.eq(Mux(pad, 0, P + o - self.heads))
            nodes.append(n)
        return nodes

    def _chains(self, m, valid, carry, nodes):
        """The chain from every offset of the beat, built from the beat's end: a column
        moves on by at least ``column_bytes_min`` = L bytes, so the chains from the last L
        offsets are their own nodes', and the chain from an offset o whose column ends
        inside the beat is o's column followed by the chain from its next offset, which
        lies in a block of L offsets nearer the end. One block a register stage
        (``chain_moves`` of them), one lookup among the chains found so far per offset;
        ``carry`` (the beat's slot and tail entries) and the nodes go along. Returns per
        offset (mask of the columns its chain starts, way out, skip) and the registered
        valid, carry."""
        P, L = self.P, self.cfg.column_bytes_min

        def own(o, node):
            return Mux(node.starts, Const(1 << o, P), 0), node.way, node.skip

        done = {o: own(o, nodes[o]) for o in range(max(0, P - L), P)}
        dummy = (Const(0, P), Const(0, range(self.ways)), Const(0, range(self.skips)))
        for stage in range(self.cfg.chain_moves):
            block = range(max(0, P - (stage + 2) * L), P - (stage + 1) * L)
            found = [done.get(o, dummy) for o in range(P)]
            for o in block:
                step = nodes[o].step
                after = [pick([f[i] for f in found], nodes[o].nxt) for i in range(3)]
                mine = own(o, nodes[o])
                done[o] = (Mux(step, after[0] | mine[0], mine[0]), Mux(step, after[1], mine[1]),
                           Mux(step, after[2], mine[2]))
            regs = {}
            for o, (mask, way, skip) in done.items():
                regs[o] = (Signal(P, name=f"c{stage}_{o}_mask"), Signal.like(way, name=f"c{stage}_{o}_way"),
                           Signal.like(skip, name=f"c{stage}_{o}_skip"))
                m.d.sync += [a.eq(b) for a, b in zip(regs[o], (mask, way, skip))]
            r_nodes = [Signal(self.node_layout, name=f"c{stage}_node{o}") for o in range(P)]
            r_valid = Signal(name=f"c{stage}_valid")
            r_carry = Signal(carry.shape(), name=f"c{stage}_carry")
            m.d.sync += [*(a.eq(b) for a, b in zip(r_nodes, nodes)), r_valid.eq(valid), r_carry.eq(carry)]
            done, nodes, valid, carry = regs, r_nodes, r_valid, r_carry
        return [done[e] for e in range(P)], valid, carry

    def elaborate(self, platform):
        cfg, P, N, h = self.cfg, self.P, self.N, self.head
        R, D = cfg.rows, cfg.depth
        A = N.bit_length() - 1
        m = Module()

        # --- the slots (decoded beats with their count) and the entry table -----------
        count_bits = (P + 1).bit_length()
        # the slots: one memory per SLOT_CHUNK_BYTES decoded bytes and one of the counts
        widths = [SLOT_BITS * min(SLOT_CHUNK_BYTES, P - b) for b in range(0, P, SLOT_CHUNK_BYTES)] + [count_bits]
        chunks = []                              # per memory: its write port, its span read ports
        for c, width in enumerate(widths):
            mem = Memory(shape=unsigned(width), depth=N, init=[])
            m.submodules[f"slots{c}"] = mem
            chunks.append((mem.write_port(), [mem.read_port() for _ in range(self.span)]))
        # per offset o, a memory of every slot's entry at o (LUT RAM: written by one beat a
        # cycle, read by the lookup after the popper), stored with the slot of the column's
        # last beat and the slot the next column starts in (the writer knows the slot)
        stored = data.StructLayout({**self.entry_fields, "last_slot": A, "land": A + 1})
        ent_mem = []
        for o in range(P):
            mem = Memory(shape=stored, depth=N, init=[])
            m.submodules[f"entries{o}"] = mem
            ent_mem.append((mem.write_port(), mem.read_port()))

        wr = Signal(A + 1)
        rd = Signal(A + 1)
        slot_free = Signal(init=1, name="slot_free")     # set with the take, below
        m.d.comb += self.i.ready.eq(slot_free)
        accept = self.i.valid & self.i.ready & (self.i.payload.count != 0)
        with m.If(accept):
            m.d.sync += wr.eq(wr + 1)

        # --- input pipeline: 1 the beat, 2 its digits, 3 the depth sums -----------------
        v1 = Signal(name="v1")
        raw = Signal(8 * P, name="raw")
        n1 = Signal(range(P + 1), name="n1")
        s1 = Signal(A + 1, name="s1")
        m.d.sync += [v1.eq(accept), raw.eq(self.i.payload.data), n1.eq(self.i.payload.count), s1.eq(wr)]
        v2, n2, s2 = Signal(name="v2"), Signal(range(P + 1), name="n2"), Signal(A + 1, name="s2")
        digits2 = [[Signal(2, name=f"d2_{b}_{p}") for p in range(layout.TRITS_PER_BYTE)] for b in range(P)]
        invalid2 = Signal(P)
        for b in range(P):
            byte = raw[8 * b:8 * b + 8]
            m.d.sync += [d.eq(v) for d, v in zip(digits2[b], byte_digits(m, byte, f"in{b}"))]
            m.d.sync += invalid2[b].eq(byte_invalid(byte))
        m.d.sync += [v2.eq(v1), n2.eq(n1), s2.eq(s1)]
        # the decoded beat into its slot, read from 2 cycles later; each memory's write
        # enable and address a copy of its own
        m.submodules.slot_wa = slot_wa = RegisterReplicas(1 + A, len(chunks))
        m.d.comb += [slot_wa.d.eq(Cat(v1, s1[:A])), slot_wa.en.eq(1)]
        slot_data = Cat(*(Cat(*digits2[b], invalid2[b]) for b in range(P)), n2)
        at = 0
        for c, ((w, _), width) in enumerate(zip(chunks, widths)):
            m.d.comb += [w.en.eq(slot_wa.q[c][0]), w.addr.eq(slot_wa.q[c][1:]),
                         w.data.eq(slot_data[at:at + width])]
            at += width
        # the previous beat's last h - 1 bytes, its slot and count
        tail = [[Signal(2, name=f"tail{b}_{p}") for p in range(layout.TRITS_PER_BYTE)] for b in range(h - 1)]
        have_prev = Signal(name="have_prev")
        prev_slot = Signal(A + 1, name="prev_slot")
        prev_n = Signal(range(P + 1), name="prev_n")
        ext = tail + digits2                     # offset e of ext: tail offset or this beat's
        sums3 = []
        for e in range(P):
            k = [clipped_depth(depth_digit(ext[e:], layout.VAR_HEADER_TRITS * r), D) for r in range(R)]
            s = Signal(range(R * D + 1), name=f"sum{e}")
            m.d.sync += s.eq(sum(k))
            sums3.append(s)
        v3, n3, s3 = Signal(name="v3"), Signal(range(P + 1), name="n3"), Signal(A + 1, name="s3")
        prev3 = Signal(name="prev3")
        prev_slot3 = Signal(A + 1, name="prev_slot3")
        prev_n3 = Signal(range(P + 1), name="prev_n3")
        m.d.sync += [v3.eq(v2), n3.eq(n2), s3.eq(s2), prev3.eq(have_prev), prev_slot3.eq(prev_slot),
                     prev_n3.eq(prev_n)]
        with m.If(v2):
            m.d.sync += [have_prev.eq(1), prev_slot.eq(s2), prev_n.eq(n2)]
            m.d.sync += [t.eq(d) for tb, db in zip(tail, digits2[P - h + 1:]) for t, d in zip(tb, db)]

        # --- entries written: this beat's head offsets, the previous beat's tail ----------
        # ext offset e holds the previous beat's tail offset P - h + 1 + e (e < h - 1) or
        # this beat's offset e - h + 1; one table lookup each
        rom = [self._rom(m, e - h + 1 if e >= h - 1 else P - h + 1 + e, sums3[e], f"rom{e}")
               for e in range(P)]
        # the entries and the beat's figures registered (x + 4): written from here on
        rom_r = [tuple(Signal.like(f, name=f"{f.name}_r") for f in entry) for entry in rom]
        m.d.sync += [a.eq(b) for entry_r, entry in zip(rom_r, rom) for a, b in zip(entry_r, entry)]
        late = [Signal.like(x, name=f"{x.name}_r") for x in (v3, n3, s3, prev_slot3)]
        m.d.sync += [a.eq(b) for a, b in zip(late, (v3, n3, s3, prev_slot3))]
        # each offset's write enable registered beside them (the head offsets of the beat's
        # bytes, the tail offsets of the previous beat's)
        went = Signal(P, name="went")
        m.d.sync += went.eq(Cat(v3 & (o < n3) if o < self.heads else v3 & prev3 & (o < prev_n3)
                                for o in range(P)))
        rom, (v3, n3, s3, prev_slot3) = rom_r, late
        for o, (w, _) in enumerate(ent_mem):
            # a head offset's column has its header here, a tail offset's in this beat
            slot, (e_next, e_adv, e_last) = (s3, rom[o + h - 1]) if o < self.heads else (prev_slot3, rom[o - self.heads])
            m.d.comb += [w.en.eq(went[o]), w.addr.eq(slot[:A]),
                         w.data.eq(Cat(e_next, e_adv, e_last, (slot + e_last)[:A], (slot + e_adv)[:A + 1]))]

        # --- the beat's row: nodes (x + 5), chains, the ways in through the tail ------
        nodes = self._nodes(m, rom, n3)
        nodes4 = [Signal(self.node_layout, name=f"node{o}") for o in range(P)]
        m.d.sync += [a.eq(b) for a, b in zip(nodes4, nodes)]
        # the previous beat's tail entries (used only if the column at tail offset t exists):
        # it ends in this beat (one), else the beats it passes over after this one; its next
        # offset
        tail = data.StructLayout({"one": 1, "over": range(self.skips), "next": range(P)})
        v4 = Signal(name="v4")
        carry4 = Signal(data.StructLayout({"slot": A + 1, "tails": data.ArrayLayout(tail, self.tails)}),
                        name="carry4")
        m.d.sync += [v4.eq(v3), carry4.slot.eq(s3)]
        for t in range(self.tails):
            m.d.sync += [carry4.tails[t].one.eq(rom[t][1] == 1), carry4.tails[t].over.eq(rom[t][1] - 2),
                         carry4.tails[t].next.eq(rom[t][0])]
        chains, v5, carry5 = self._chains(m, v4, carry4, nodes4)
        slot5 = carry5.slot
        ways = []                                # per way: mask, has (a column to give), way out, skip
        for e in range(P):
            mask, way, skip = chains[e]
            ways.append((mask, mask.any(), way, skip))
        for t in range(self.tails):
            one, over, nxt = carry5.tails[t].one, carry5.tails[t].over, carry5.tails[t].next
            mask, way, skip = (pick([c[i] for c in chains], nxt) for i in range(3))
            ways.append((Mux(one, mask, 0), Const(1, 1), Mux(one, way, nxt), Mux(one, skip, over)))
        # a way into the beat: the columns its chain starts (mask, has any), its way out of
        # the beat and the beats passed over after it
        way_layout = data.StructLayout({"mask": P, "has": 1, "way": range(self.ways), "skip": range(self.skips)})
        row_w = [Signal(way_layout, name=f"row_way{i}") for i in range(self.ways)]
        row_v, row_slot = Signal(name="row_v"), Signal(A + 1, name="row_slot")
        m.d.sync += [row_v.eq(v5), row_slot.eq(slot5),
                     *(r.eq(Cat(mask, has, way, skip)) for r, (mask, has, way, skip) in zip(row_w, ways))]

        # --- the beat loop: one row a cycle, its state the way into the next beat -------
        way_in = Signal(range(self.ways))
        skip_in = Signal(range(self.skips))
        sel = data.View(way_layout, pick([r.as_value() for r in row_w], way_in))
        push = Signal()
        with m.If(row_v):
            with m.If(skip_in != 0):             # a column passes over this beat
                m.d.sync += skip_in.eq(skip_in - 1)
            with m.Else():
                m.d.comb += push.eq(sel.has)
                m.d.sync += [way_in.eq(sel.way), skip_in.eq(sel.skip)]
        pre = way_in >= P                        # entered through the previous beat's tail
        tw = Shape.cast(range(max(self.tails, 1))).width
        # the beat's record (its slot, mask, the column through the tail first), registered;
        # then with the mask after its first column and whether any is left
        # (``first``: the slot of its first column's entry, the previous one through a tail)
        beat = data.StructLayout({"slot": A + 1, "mask": P, "pre": 1, "t": tw, "first": A})
        rec = data.StructLayout({"beat": beat, "after": P, "any": 1, "after_any": 1})
        pushed, record = Signal(name="pushed"), Signal(beat, name="record")
        m.d.sync += [pushed.eq(push), record.eq(Cat(row_slot, sel.mask, pre, (way_in - P)[:tw],
                                                         Mux(pre, row_slot - 1, row_slot)[:A]))]
        # into the record queue, which the popper reads from the next cycle on (its only
        # way in: the queue's write side then depends on registers alone)
        rec_after = (record.mask & (record.mask - 1))[:P]
        m.submodules.masks = masks = fifo.SyncFIFO(width=rec.size, depth=N)
        m.d.comb += [masks.w_en.eq(pushed),
                     masks.w_data.eq(Cat(record, rec_after, record.mask != 0, rec_after != 0))]

        # --- the popper: one column a cycle from the head mask --------------------------
        pv = Signal(name="pv")
        pslot = Signal(A + 1, name="pslot")
        pmask = Signal(P, name="pmask")
        ppre = Signal(name="ppre")
        pt = Signal(tw, name="pt")
        credits = Signal(range(self.DESCRIPTORS + 2), init=self.DESCRIPTORS + 1)
        has_credit = Signal(init=1, name="has_credit")     # credits != 0, registered with them
        emit = pv & has_credit
        low = Signal(range(P))
        for b in reversed(range(P)):
            with m.If(pmask[b]):
                m.d.comb += low.eq(b)
        # the mask after this column and whether any is left, kept in registers
        pnext = Signal(P, name="pnext")
        p_any = Signal(name="p_any")
        pn_any = Signal(name="pn_any")
        rest = Mux(ppre, p_any, pn_any)
        load = ~pv | emit & ~rest
        src = data.View(rec, masks.r_data)
        m.d.comb += masks.r_en.eq(load)
        after = pnext & (pnext - 1)
        with m.If(load):
            m.d.sync += [pv.eq(masks.r_rdy), pslot.eq(src.beat.slot), pmask.eq(src.beat.mask),
                         ppre.eq(src.beat.pre), pt.eq(src.beat.t), pnext.eq(src.after), p_any.eq(src.any),
                         pn_any.eq(src.after_any)]
        with m.Elif(emit):
            with m.If(ppre):
                m.d.sync += ppre.eq(0)
            with m.Else():
                m.d.sync += [pmask.eq(pnext), p_any.eq(pn_any), pnext.eq(after), pn_any.eq(after != 0)]
        ev = Signal(name="ev")
        eslot = Signal(A + 1, name="eslot")
        eoff = Signal(range(P), name="eoff")
        m.d.sync += [ev.eq(emit), eslot.eq(Mux(ppre, pslot - 1, pslot)),
                     eoff.eq(Mux(ppre, self.heads + pt, low))]

        # --- the lookup: the column's entry, into the descriptors -----------------------
        # every offset's entry of the slot eslot takes, read in the edge eslot is registered
        # (the read ports' own registers, beside their memories; never a slot written in
        # that cycle), addressed by registered copies of that slot kept as it will be: the
        # beat's first column's on a load, the beat's own after a column through the tail,
        # else unchanged
        m.submodules.lookup_ra = lookup_ra = RegisterReplicas(A, self.LOOKUP_ADDRESS_COPIES)
        m.d.comb += [lookup_ra.en.eq(1),
                     lookup_ra.d.eq(Mux(load, src.beat.first, Mux(emit & ppre, pslot[:A], lookup_ra.q[0])))]
        for o, (_, r) in enumerate(ent_mem):
            m.d.comb += r.addr.eq(lookup_ra.q[o * self.LOOKUP_ADDRESS_COPIES // P])
        entry = data.View(stored, pick([r.data.as_value() for _, r in ent_mem], eoff))
        # a column's descriptor: where it is, its entry (with the slot of its last beat and
        # the slot the next column starts in) and the slots its beats are read from
        column = data.StructLayout({"off": range(P), "entry": stored,
                                    "reads": data.ArrayLayout(A, self.span)})
        dv, desc = Signal(name="dv"), Signal(column, name="desc")
        m.d.sync += [dv.eq(ev), desc.eq(Cat(eoff, entry, *((eslot + k)[:A] for k in range(self.span))))]
        m.submodules.descs = descs = fifo.SyncFIFO(width=column.size, depth=self.DESCRIPTORS)
        hv, hd = Signal(name="hv"), Signal(column, name="hd")

        # --- the take: the column's last beat present, room in the gearbox -------------
        # ``ready``: the head's last beat is present, registered (the next head's, or this
        # one's, looked up in the presence flags as they will be: a take never frees a beat
        # of the column after it)
        present = Signal(N)
        ready = Signal(name="ready")
        m.d.comb += self.take.eq(hv & ready & self.room)
        free = ~hv | self.take
        nhd = data.View(column, Mux(descs.r_rdy, descs.r_data, desc))
        m.d.comb += [descs.r_en.eq(free), descs.w_en.eq(dv & ~(free & ~descs.r_rdy)), descs.w_data.eq(desc)]
        with m.If(free):
            m.d.sync += [hv.eq(descs.r_rdy | dv), hd.eq(nhd)]
        credits_next = (credits - emit + self.take)[:len(credits)]
        m.d.sync += [credits.eq(credits_next), has_credit.eq(credits_next != 0)]
        # a beat is present from x + gearbox_take_cycles; freed (with the beats before the
        # next column's) in the take's edge
        pv_, ps_ = v3, s3                        # the beat's registers at x + 4
        for k in range(cfg.gearbox_take_cycles - 6):
            nv, ns = Signal(name=f"pres_v{k}"), Signal(A + 1, name=f"pres_s{k}")
            m.d.sync += [nv.eq(pv_), ns.eq(ps_)]
            pv_, ps_ = nv, ns
        arriving = Signal(N, name="arriving")    # the beat present from the next cycle, one-hot
        m.d.sync += arriving.eq(Mux(pv_, Const(1, N) << ps_[:A], 0))
        will = present | arriving

        def will_have(slot):
            return will.bit_select(slot, 1)
        # the three candidates looked up in parallel, then chosen
        queued = data.View(column, descs.r_data)
        m.d.sync += ready.eq(Mux(free, Mux(descs.r_rdy, will_have(queued.entry.last_slot),
                                           will_have(desc.entry.last_slot)),
                                 will_have(hd.entry.last_slot)))
        gone = (hd.entry.land - rd)[:A + 1]
        for s in range(N):
            with m.If(self.take & ((s - rd)[:A] < gone)):
                m.d.sync += present[s].eq(0)
            with m.If(arriving[s]):
                m.d.sync += present[s].eq(1)
        with m.If(self.take):
            m.d.sync += rd.eq(hd.entry.land)
        # a slot free in the next cycle: from the pointers as they will be (each case of a
        # beat accepted and a take computed from registers, chosen last)
        def not_full(w, r):
            return (w - r)[:A + 1] != N
        m.d.sync += slot_free.eq(Mux(self.take, Mux(accept, not_full(wr + 1, hd.entry.land), not_full(wr, hd.entry.land)),
                                     Mux(accept, not_full(wr + 1, rd), not_full(wr, rd))))

        # --- the taken column: its beats and where it lies in them ---------------------
        # read every cycle (no enable from the take), shown while ``col_valid``
        off = Signal(range(P), name="off")
        adv1 = Signal(self.entry_fields["adv"], name="adv1")
        last1 = Signal(self.entry_fields["last"], name="last1")
        next1 = Signal(range(P), name="next1")
        # the read addresses: the head's slots, one registered copy per memory
        m.submodules.slot_ra = slot_ra = RegisterReplicas(A * self.span, len(chunks))
        m.d.comb += [slot_ra.d.eq(nhd.reads), slot_ra.en.eq(free)]
        for c, (_, reads) in enumerate(chunks):
            m.d.comb += [r.addr.eq(slot_ra.q[c][A * k:A * (k + 1)]) for k, r in enumerate(reads)]
        m.d.sync += [self.col_valid.eq(self.take), off.eq(hd.off), adv1.eq(hd.entry.adv),
                     last1.eq(hd.entry.last), next1.eq(hd.entry.next)]
        words = Cat(Cat(reads[k].data for _, reads in chunks[:-1]) for k in range(self.span))
        counts = [reads.data for reads in chunks[-1][1]]
        # the column ends at byte ``end`` of its last beat: P when the next starts a new beat
        end = Mux(adv1 > last1, P, next1)
        m.d.comb += [self.words.eq(words), self.offset.eq(off),
                     self.length.eq(adv1 * P + next1 - off),
                     self.cross.eq(Cat(*((counts[k] != P) & (last1 > k) for k in range(self.span - 1)),
                                       *((counts[k] < end) & (last1 == k) for k in range(self.span))).any())]
        return m
