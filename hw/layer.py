"""The decoder-layer top: one Llama/Qwen2-form decoder layer for one decode token, or for
T prompt tokens on a build whose engine has T vectors, exactly
``sim.hwlayer.HwDecoderLayer.compute`` (docs/NUMERIC.md, "Attention and vector units");
ports, schedule, prefill and timing in hw/LAYER.md.

The host sends one command per layer and token (``cmd``: the position) and serves the
memory-side streams in the order the schedule reads them; the layer sequences its units:

* the GEMV engine (hw/engine.py) for q, k, v, o, gate, up, down, each matrix's codebook
  and requantization constants loaded just before its command;
* the vector unit: two RMSNorms (hw/rmsnorm.py), RoPE (hw/rope.py), three int8
  quantizers (hw/int8quant.py: the K/V rows, the queries, the engine's o/down inputs),
  SiLU·mul (hw/silumul.py), two requantizers (hw/requant.py; one adds the residual);
* the attention unit (hw/attention.py), one job per KV head;
* the vector memory (hw/vecmem.py), whose two readers and one write port every step
  streams through, beside stream glue (hw/lanepacker.py, hw/serializer.py,
  hw/streambuffers.py).

Schedule (``Phase``): HIN (h into the memory and norm 1) · per matrix CB (its 27 codebook
entries), MAT (its constants), CMD (the engine command), RUN (results requantized into
the memory) · after v: ROPE (k and q heads, in place; once the k heads are rotated, the
new K and V rows out through reader 1 beside the q heads) ·
ATT (one attention job per KV head, its query heads quantized on the way in, the next
job's while the current one runs, into a FIFO; the output into the memory and into the
act quantizer) · o (the act quantizer's output pass into
the engine, the rows added to the residual and into norm 2) · gate, up (SiLU·mul of gate
and each of up's rows as it is written, into the act quantizer) · down (the act
quantizer's output pass into the engine, the rows added to the residual and onto
``h_out``). At T > 1 (hw/LAYER.md "Prefill"): q's CB, MAT and CMD come before HIN; each
matrix's input vectors are fed a token at a time, read from the memory in their matrix's
phases (NORM2 before gate); ROPE, ATT and HOUT (region h onto ``h_out``) run once
per token; the regions the engine writes interleave the tokens in chunks of R
(``LayerConfig.address``).

Every parameter of a layer streams in per command, so one build runs every layer of a
model: the two RMSNorms' weights too (``norm``: each norm's g_q beside the h elements it
is fed with, its gamma_frac and eps_q on the first of those beats).
"""
from __future__ import annotations

import enum

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO

from ..layerconfig import LayerConfig
from ..layerports import layer_ports
from .attention import AttentionUnit
from .engine import GemvEngine
from .fixedops import saturate, scale_mul
from .indexing import pick, write
from .int8quant import Int8Quantizer
from .lanepacker import LanePacker
from .primitives import check_primitives
from .requant import Requantize
from .rmsnorm import RmsNorm
from .rope import Rope
from .serializer import Serializer
from .signature import members
from .silumul import SiluMul
from .streambuffers import RegisterSlice, SkidBuffer
from .stridedaddress import StridedAddress
from .vecmem import VectorMemory

#: codebook entries loaded per matrix
CODEBOOK_ENTRIES = 27


class Phase(enum.Enum):
    IDLE = 0
    HIN = 1
    CB = 2
    MAT = 3
    CMD = 4
    RUN = 5
    ROPE = 6             # and the new K/V rows out (KVW, on reader 1)
    ATT = 7
    NORM2 = 8
    HOUT = 9


class Dst(enum.Enum):
    """Where a vector-memory reader's elements go."""
    NONE = 0
    ROPE = 1
    QUANT_KV = 2
    QUANT_Q = 3
    QUANT_ACT = 4
    NORM2 = 5
    SILU = 6
    RESIDUAL = 7
    HOUT = 8
    SILU_UP = 9          # gate beside up's rows as they are written (T = 1)


class DecoderLayer(wiring.Component):
    """Ports (tritforge/layerports.py): ``cmd``, ``h_in``, ``norm``, ``cb``, ``mat``, ``w``,
    ``cs``, ``kv_rd`` in; ``kv_wr``, ``h_out``; ``err``, ``busy``. ``primitives``
    (hw/primitives.py) builds every unit's multipliers and buffers (the same cycles with
    every set)."""

    def __new__(cls, lcfg: LayerConfig, *, primitives: str = "generic"):
        if not isinstance(lcfg, LayerConfig):
            raise TypeError(f"DecoderLayer lcfg must be a LayerConfig, not {lcfg!r}")
        check_primitives(primitives, "decoder layer")
        return super().__new__(cls)

    def __init__(self, lcfg: LayerConfig, *, primitives: str = "generic"):
        self.lcfg = lcfg
        self.primitives = primitives
        super().__init__(members(layer_ports(lcfg)))

    def elaborate(self, platform):
        lc = self.lcfg
        ecfg, v = lc.accel.engine, lc.accel.vector
        RB, B, FR = v.resid_bits, v.scale_bits, v.resid_frac_bits
        H, hd, L = lc.hidden, lc.head_dim, lc.lanes
        T, R = lc.tokens, ecfg.rows
        reg = {name: base for name, (base, _) in lc.regions.items()}
        mats = lc.matrices
        M = {mt.name: i for i, mt in enumerate(mats)}     # schedule index by matrix name
        acc_bits = ecfg.widths.acc
        m = Module()

        # ---- units ---------------------------------------------------------------------
        sub = m.submodules
        P = {"primitives": self.primitives}            # every unit's hard blocks
        sub.mem = mem = VectorMemory(RB, lc.memory_depth, readers=2, chunk=R, stride=T * R, **P)
        # the write port's walk through a token of an interleaved region (HIN, ROPE)
        sub.wr_addr = wa = StridedAddress(len(mem.wr.payload.addr), R, T * R)
        sub.engine = eng = GemvEngine(ecfg, **P)
        sub.norm1, sub.norm2 = norm1, norm2 = RmsNorm(v, H, **P), RmsNorm(v, H, **P)
        # the K/V rows and the query heads pass their quantizer back to back: two banks, so
        # that a head comes in while the previous one is divided and read out
        sub.quant_kv = qkv = Int8Quantizer(RB - 1, B, hd, banks=2, **P)
        sub.quant_q = qq = Int8Quantizer(RB - 1, B, hd, banks=2, **P)
        # at T > 1 the act quantizer takes o's and down's inputs a token at a time, the
        # next token's while the previous one's leaves for the engine: two banks
        sub.quant_act = qa = Int8Quantizer(RB - 1, B, max(lc.qdim, lc.intermediate), banks=2 if T > 1 else 1,
                                           **P)
        sub.act_pack = apk = LanePacker(16, B)
        sub.kv_pack = kvpk = LanePacker(L, B)
        sub.q_pack = qpk = LanePacker(L, B)
        sub.rope = rope = Rope(v, hd, **P)
        sub.silu = silu = SiluMul(v, **P)
        sub.requant = rq = Requantize(v, acc_bits, **P)
        sub.requant_res = rqr = Requantize(v, acc_bits, residual=True, **P)
        # each requantizer between two skid buffers (``rq_i``, ``rq_o``; ``rqr_i``,
        # ``rqr_o``): the ready of the rows' consumers (the memory, SiLU·mul, norm 2,
        # ``h_out``) stops at the output's, the requantizer's advance at the input's
        def between_skids(name, unit):
            sub[f"{name}_in"] = si = SkidBuffer(unit.i.payload.shape())
            sub[f"{name}_out"] = so = SkidBuffer(unit.o.payload.shape())
            wiring.connect(m, si.o, unit.i)
            wiring.connect(m, unit.o, so.i)
            return si.i, so.o

        rq_i, rq_o = between_skids("rq", rq)
        rqr_i, rqr_o = between_skids("rqr", rqr)
        sub.res_ser = rser = Serializer(acc_bits, R, T * max(mt.out_features for mt in mats))
        sub.attention = att = AttentionUnit(lc.attention_unit, **P)
        sub.att_ser = aser = Serializer(RB, L, T * lc.qdim)
        rd0, rd1 = mem.rd0, mem.rd1

        # ---- state ---------------------------------------------------------------------
        phase = Signal(Phase)
        mi = Signal(range(len(mats)))                 # the matrix
        pos = Signal(len(self.cmd.payload.pos))
        cnt = Signal(range(max(lc.memory_depth, CODEBOOK_ENTRIES) + 1))   # the phase's element count
        issued = Signal(range(2 * max(lc.heads, lc.kv_heads) + 2))        # reader commands issued
        # (attention commands issued + 1) · group: the query heads that may be read so far
        qlim = Signal(range(lc.heads + lc.group + 1), init=lc.group)
        resid = Signal()                               # the residual reader was started
        # ROPE: the k heads written, every head written; KVW's reads issued, its beats out
        k_done, rope_done, kv_done = Signal(), Signal(), Signal()
        kv_issued = Signal(range(2 * lc.kv_heads + 1))
        kv_cnt = Signal(range(2 * lc.kv_heads * (hd // L) + 1))
        dst0, dst1 = Signal(Dst), Signal(Dst)
        # the token of a per-token phase, and its offsets: t·R in an interleaved region,
        # t·qdim in region a (LayerConfig.address)
        tok = Signal(range(T)) if T > 1 else Const(0, 1)
        toff = Signal(range(T * R))
        aoff = Signal(range(T * lc.qdim))
        feed = Signal(range(T + 1))                    # the matrix's input vectors fed (read)
        wcnt = Signal(range(ecfg.max_groups))          # the engine's activation words: of the vector
        wtok = Signal(range(T + 1))                    # ... and the vectors loaded
        ndone = Signal(range(3))                       # the norms whose ``norm`` beats are in
        # each loaded vector's step (m, e) (e with the matrix's fraction bits)
        x_m = [Signal(B, name=f"x_m{t}") for t in range(T)]
        x_e = [Signal(signed(len(apk.o.payload.e) + 2), name=f"x_e{t}") for t in range(T)]
        hm, he, pre = Signal(B), Signal(signed(len(self.mat.payload.he))), Signal(len(self.mat.payload.a))
        err = Signal()

        def const(values, shape=None):
            return pick([Const(int(x), shape) for x in values], mi)

        tiles = const([ecfg.tiles(mt.out_features) for mt in mats], range(ecfg.tiles_max + 1))
        groups = const([mt.groups for mt in mats], range(ecfg.max_groups + 1))
        outs = const([T * mt.out_features for mt in mats], range(T * max(mt.out_features for mt in mats) + 1))
        loads = const([mt.load for mt in mats], 1)
        residual = const([mt.residual for mt in mats], 1)
        bases = const([reg[mt.dst] for mt in mats], range(lc.memory_depth))
        e_frac = const([FR if mt.fixed_point_input else 0 for mt in mats], range(FR + 1))
        # the unit whose int8 elements the engine loads: norm 1, norm 2 or the act quantizer
        src = const([{"norm1": 0, "norm2": 1}.get(mt.source, 2) for mt in mats], range(3))

        m.d.comb += [self.busy.eq(phase != Phase.IDLE), self.err.eq(err | eng.err | att.err)]

        # ---- memory-side streams straight into their units ------------------------------
        wiring.connect(m, wiring.flipped(self.w), eng.w)
        wiring.connect(m, wiring.flipped(self.cs), rope.cs)
        wiring.connect(m, wiring.flipped(self.kv_rd), att.kv)
        wiring.connect(m, kvpk.o, wiring.flipped(self.kv_wr))
        # the query heads' beats into the attention unit through a FIFO of one job's beats:
        # the next job's heads are read and quantized while the current job runs
        qbeat = qpk.o.payload.shape()
        sub.q_fifo = qfifo = SyncFIFO(width=qbeat.size, depth=lc.group * (hd // L))
        m.d.comb += [qfifo.w_data.eq(qpk.o.payload), qfifo.w_en.eq(qpk.o.valid), qpk.o.ready.eq(qfifo.w_rdy),
                     att.q.payload.eq(qfifo.r_data), att.q.valid.eq(qfifo.r_rdy), qfifo.r_en.eq(att.q.ready)]
        wiring.connect(m, qkv.o, kvpk.i)
        wiring.connect(m, qq.o, qpk.i)
        m.d.comb += [aser.i.valid.eq(att.out.valid), aser.i.payload.items.eq(att.out.payload.elems),
                     att.out.ready.eq(aser.i.ready), aser.limit.eq(T * lc.qdim)]
        m.d.comb += [eng.cb.payload.eq(self.cb.payload),
                     eng.cb.valid.eq(self.cb.valid & (phase == Phase.CB)),
                     self.cb.ready.eq(phase == Phase.CB)]
        # the engine's result beats into the serializer, at T > 1 through a FIFO of T beats:
        # a tile's T beats leave the engine in T cycles and the serializer takes R cycles
        # each, so the FIFO holds them and the engine never waits (T·R <= T·groups); then
        # a register slice (one cycle: the engine's result FIFO read and its route end at a
        # register, and the serializer's ready at its flag)
        sub.res_slice = res_slice = RegisterSlice(eng.res.payload.shape())
        if T > 1:
            sub.res_fifo = rfifo = SyncFIFO(width=res_slice.i.payload.shape().size, depth=T)
            m.d.comb += [rfifo.w_data.eq(eng.res.payload), rfifo.w_en.eq(eng.res.valid),
                         eng.res.ready.eq(rfifo.w_rdy), res_slice.i.payload.eq(rfifo.r_data),
                         res_slice.i.valid.eq(rfifo.r_rdy), rfifo.r_en.eq(res_slice.i.ready)]
        else:
            wiring.connect(m, eng.res, res_slice.i)
        res = res_slice.o.payload
        m.d.comb += [rser.i.valid.eq(res_slice.o.valid), rser.i.payload.items.eq(res.acc),
                     res_slice.o.ready.eq(rser.i.ready), rser.limit.eq(outs)]

        # ---- the engine's activation words: from norm 1, norm 2 or the act quantizer ----
        # at T = 1 the act quantizer holds o's and down's whole vector before their matrix
        # begins (ATT and up feed it): its output pass opens with the matrix's RUN
        for k, unit in enumerate((norm1, norm2, qa)):
            opens = (phase == Phase.RUN) if T == 1 and unit is qa else 1
            with m.If((src == k) & opens):
                m.d.comb += [apk.i.valid.eq(unit.o.valid), apk.i.payload.eq(unit.o.payload),
                             unit.o.ready.eq(apk.i.ready)]
        m.d.comb += [eng.act.valid.eq(apk.o.valid), eng.act.payload.eq(apk.o.payload.elems.as_value()),
                     apk.o.ready.eq(eng.act.ready)]
        with m.If(apk.o.valid & apk.o.ready):
            write(m, x_m, wtok, apk.o.payload.m)
            write(m, x_e, wtok, apk.o.payload.e + e_frac)
            m.d.sync += wcnt.eq(wcnt + 1)
            with m.If(wcnt == groups - 1):
                m.d.sync += [wcnt.eq(0), wtok.eq(wtok + 1)]

        # ---- engine results -> requantizer -> memory ------------------------------------
        # the result's vector's step times the matrix's host_scale: per token a register
        # (free-running: the steps and the matrix's constants are set long before its first
        # result leaves the engine's pipeline), picked by the result's vector
        vec = res.vector
        st_m = [Signal(B, name=f"st_m{t}") for t in range(T)]
        st_e = [Signal(signed(len(x_e[0]) + 2), name=f"st_e{t}") for t in range(T)]
        for t in range(T):
            sm, se = scale_mul(m, x_m[t], x_e[t], hm, he, B, f"rqscale{t}")
            m.d.sync += [st_m[t].eq(sm), st_e[t].eq(se)]
        cm, ce = Signal(B), Signal(signed(len(x_e[0]) + 2))
        m.d.comb += [cm.eq(pick(st_m, vec)), ce.eq(pick(st_e, vec))]
        for unit_i in (rq_i, rqr_i):
            m.d.comb += [unit_i.payload.acc.eq(rser.o.payload.x), unit_i.payload.m.eq(cm),
                         unit_i.payload.e.eq(ce), unit_i.payload.a.eq(pre)]
        m.d.comb += rqr_i.payload.res.eq(rd1.payload.x)
        e_lim = 1 << (len(rq_i.payload.e) - 1)
        with m.If(rser.o.valid & ((ce >= e_lim) | (ce < -e_lim))):
            m.d.sync += err.eq(1)                      # a step outside the requantizer's range
        with m.If(residual):
            m.d.comb += [rqr_i.valid.eq(rser.o.valid & rd1.valid & (dst1 == Dst.RESIDUAL)),
                         rser.o.ready.eq(rqr_i.ready & rd1.valid & (dst1 == Dst.RESIDUAL))]
        with m.Else():
            m.d.comb += [rq_i.valid.eq(rser.o.valid), rser.o.ready.eq(rq_i.ready)]
        m.d.comb += [rq_o.ready.eq(1), rqr_o.ready.eq(1)]

        # ---- vector-memory readers to their destinations --------------------------------
        x0, x1 = rd0.payload.x, rd1.payload.x
        dsts = {
            Dst.ROPE: (rope.x.valid, rope.x.ready, [rope.x.payload.x.eq(x0)]),
            Dst.QUANT_Q: (qq.i.valid, qq.i.ready, [qq.i.payload.v.eq(x0), qq.i.payload.last.eq(rd0.payload.last)]),
        }
        if T > 1:       # (at T = 1 o's input and h_out come straight from the phases that form them)
            dsts.update({
                Dst.QUANT_ACT: (qa.i.valid, qa.i.ready, [qa.i.payload.v.eq(x0), qa.i.payload.last.eq(rd0.payload.last)]),
                Dst.HOUT: (self.h_out.valid, self.h_out.ready, [self.h_out.payload.h.eq(x0)]),
            })
        for d, (valid, ready, payload) in dsts.items():
            with m.If(dst0 == d):
                m.d.comb += [valid.eq(rd0.valid), rd0.ready.eq(ready)] + payload
        # SiLU·mul takes gate (reader 0) and up (reader 1) together (T > 1), or at T = 1
        # gate (reader 0) beside each of up's rows as the requantizer writes it; its product
        # feeds the act quantizer
        if T == 1:
            with m.If((dst0 == Dst.SILU_UP) & (mi == M["up"])):
                m.d.comb += [silu.i.valid.eq(rd0.valid & rq_o.valid), silu.i.payload.g.eq(x0),
                             silu.i.payload.u.eq(rq_o.payload.y), rd0.ready.eq(rq_o.valid & silu.i.ready),
                             rq_o.ready.eq(rd0.valid & silu.i.ready)]
        else:
            with m.If(dst0 == Dst.SILU):
                both = rd0.valid & rd1.valid
                m.d.comb += [silu.i.valid.eq(both), silu.i.payload.g.eq(x0), silu.i.payload.u.eq(x1),
                             rd0.ready.eq(both & silu.i.ready), rd1.ready.eq(both & silu.i.ready)]
        silu_last = Signal()
        silu_cnt = Signal(range(lc.intermediate + 1))
        with m.If(silu.o.valid & silu.o.ready):
            m.d.sync += silu_cnt.eq(Mux(silu_last, 0, silu_cnt + 1))
        m.d.comb += silu_last.eq(silu_cnt == lc.intermediate - 1)
        # the act quantizer takes SiLU·mul for down (at T = 1 SiLU·mul feeds nothing else, and
        # its last products leave after up's last row)
        with m.If((mi == M["down"]) if T > 1 else 1):
            m.d.comb += [qa.i.valid.eq(silu.o.valid), qa.i.payload.v.eq(silu.o.payload.y),
                         qa.i.payload.last.eq(silu_last), silu.o.ready.eq(qa.i.ready)]
        with m.If(dst1 == Dst.RESIDUAL):
            m.d.comb += rd1.ready.eq(rqr_i.ready & rser.o.valid)
        with m.If(dst1 == Dst.QUANT_KV):
            m.d.comb += [qkv.i.valid.eq(rd1.valid), rd1.ready.eq(qkv.i.ready), qkv.i.payload.v.eq(x1),
                         qkv.i.payload.last.eq(rd1.payload.last)]
        # norm 2 takes the residual with its weights (``norm``) beat by beat (the command's
        # first vector: the norm's weights stay for the others): at T = 1 from o's rows as
        # they are written, so gate's input is normalized while o runs; at T > 1 from reader 0
        if T == 1:
            n2_feeding, n2_valid, n2_h, n2_ready = ((phase == Phase.RUN) & (mi == M["o"]), rqr_o.valid,
                                                    rqr_o.payload.y, rqr_o.ready)
        else:
            n2_feeding, n2_valid, n2_h, n2_ready = dst0 == Dst.NORM2, rd0.valid, x0, rd0.ready
        due = ndone != 2
        ok = self.norm.valid | ~due
        with m.If(n2_feeding):
            m.d.comb += [norm2.h.valid.eq(n2_valid & ok), norm2.h.payload.h.eq(n2_h), n2_ready.eq(norm2.h.ready & ok),
                         self.norm.ready.eq(norm2.h.ready & n2_valid & due)]

        # ---- the norms' weights: beat i of a norm's ``norm`` stream (taken beside its
        # h element i of the command's first vector) writes g_q[i]; the first also holds
        # gamma_frac and eps_q, which the norm takes once all of a vector's h is in (its k
        # beat), offered again from each vector's first element
        ncnt = Signal(range(H))
        took = self.norm.valid & self.norm.ready
        npl = self.norm.payload
        with m.If(took):
            m.d.sync += ncnt.eq(Mux(ncnt == H - 1, 0, ncnt + 1))
            with m.If(ncnt == H - 1):
                m.d.sync += ndone.eq(ndone + 1)
        # at T = 1 down's rows leave on ``h_out`` as they are added to the residual (no HOUT
        # phase: the command ends with down's last row)
        if T == 1:
            with m.If((phase == Phase.RUN) & (mi == M["down"])):
                m.d.comb += [self.h_out.valid.eq(rqr_o.valid), self.h_out.payload.h.eq(rqr_o.payload.y),
                             rqr_o.ready.eq(self.h_out.ready)]

        for k, (unit, feeding) in enumerate(((norm1, phase == Phase.HIN), (norm2, n2_feeding))):
            held = Signal(name=f"norm{k + 1}_k_held")
            ecnt = Signal(range(H), name=f"norm{k + 1}_elem")
            m.d.comb += [unit.g.valid.eq(took & feeding), unit.g.payload.addr.eq(ncnt),
                         unit.g.payload.value.eq(npl.g), unit.k.valid.eq(held)]
            with m.If(unit.h.valid & unit.h.ready):
                m.d.sync += ecnt.eq(Mux(ecnt == H - 1, 0, ecnt + 1))
            with m.If(unit.k.valid & unit.k.ready):
                m.d.sync += held.eq(0)
            with m.If(took & feeding & (ncnt == 0)):
                m.d.sync += [unit.k.payload.gamma_frac.eq(npl.gamma_frac), unit.k.payload.eps_q.eq(npl.eps_q)]
            with m.If(unit.h.valid & unit.h.ready & (ecnt == 0)):
                m.d.sync += held.eq(1)

        # ---- the write port -------------------------------------------------------------
        wr = mem.wr
        # HIN takes token t once the engine holds the words of tokens 0..t-1 (a norm is fed
        # one vector at a time); the norm's weights beside token 0
        hin_gate = (wtok == tok) if T > 1 else 1
        hin_ok = hin_gate & (self.norm.valid | (ndone != 0))
        with m.If(phase == Phase.HIN):
            m.d.comb += [wr.valid.eq(self.h_in.valid & hin_ok & norm1.h.ready),
                         wr.payload.addr.eq(wa.addr),
                         wr.payload.x.eq(self.h_in.payload.h)]
        with m.If(phase == Phase.RUN):
            with m.If(residual):
                m.d.comb += [wr.valid.eq(rqr_o.valid & rqr_o.ready), wr.payload.x.eq(rqr_o.payload.y)]
            with m.Else():
                m.d.comb += [wr.valid.eq(rq_o.valid & rq_o.ready), wr.payload.x.eq(rq_o.payload.y)]
            m.d.comb += wr.payload.addr.eq(bases + cnt)
        with m.If(phase == Phase.ROPE):
            m.d.comb += [wr.valid.eq(rope.o.valid), wr.payload.addr.eq(wa.addr),
                         wr.payload.x.eq(saturate(rope.o.payload.y, RB)), rope.o.ready.eq(1)]
        with m.If(phase == Phase.ATT):
            m.d.comb += [wr.valid.eq(aser.o.valid & aser.o.ready), wr.payload.addr.eq(reg["a"] + aoff + cnt),
                         wr.payload.x.eq(aser.o.payload.x), aser.o.ready.eq(1)]
            if T == 1:
                # the act quantizer takes the output as it is written: o's input is ready
                # when ATT ends
                m.d.comb += [qa.i.valid.eq(aser.o.valid), qa.i.payload.v.eq(aser.o.payload.x),
                             qa.i.payload.last.eq(cnt == lc.qdim - 1), aser.o.ready.eq(qa.i.ready)]
        written = wr.valid & wr.ready
        # the walk is loaded as HIN or ROPE begins and at each of their tokens (``goto``,
        # ``next_token``)
        m.d.comb += [wa.step.eq(written & ((phase == Phase.HIN) | (phase == Phase.ROPE))), wa.strided.eq(1)]
        walked = {Phase.HIN: "h", Phase.ROPE: "k"}         # the phases that write through the walk

        # ---- sequencer ------------------------------------------------------------------
        def read(cmd, dst_reg, dst, base, n, when=1, strided=1):
            """Offer a read command (base, n) to a reader; where it is taken (the reader
            was idle and ``when`` holds), its elements go to ``dst``. ``strided``: a token
            of an interleaved region. Returns the taken condition."""
            m.d.comb += [cmd.valid.eq(when), cmd.payload.base.eq(base), cmd.payload.n.eq(n),
                         cmd.payload.strided.eq(strided)]
            with m.If(cmd.ready & when):
                m.d.sync += dst_reg.eq(dst)
            return cmd.ready & when

        def goto(p, matrix=None):
            m.d.sync += [phase.eq(p), cnt.eq(0), issued.eq(0)]
            if p in walked:
                m.d.comb += [wa.load.eq(1), wa.base.eq(reg[walked[p]])]
            if matrix is not None:
                # a matrix begins: its input's vectors are counted afresh
                m.d.sync += [mi.eq(matrix), feed.eq(0), wtok.eq(0), wcnt.eq(0)]

        def next_token(then, region=None):
            """A per-token phase has done token ``tok``: it runs again for the next token
            (the write port's walk restarted in ``region``), or after the last ``then()``."""
            if T == 1:
                then()
                return
            with m.If(tok == T - 1):
                m.d.sync += [tok.eq(0), toff.eq(0), aoff.eq(0)]
                then()
            with m.Else():
                m.d.sync += [tok.eq(tok + 1), toff.eq(toff + R), aoff.eq(aoff + lc.qdim), cnt.eq(0),
                             issued.eq(0), qlim.eq(lc.group)]
                if region is not None:
                    m.d.comb += [wa.load.eq(1), wa.base.eq(reg[region] + toff + R)]

        def head_base(region, head):
            """The first element of ``head`` (head_dim elements) of token ``tok``."""
            return reg[region] + head * (hd * T) + toff

        # T > 1: q's command is taken before HIN, so that norm 1's words of each token
        # drain into the engine while the next token comes in
        with m.If(phase == Phase.IDLE):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                m.d.sync += [pos.eq(self.cmd.payload.pos), qlim.eq(lc.group), ndone.eq(0)]
                goto(Phase.HIN if T == 1 else Phase.CB, matrix=M["q"])
        with m.If(phase == Phase.HIN):
            # norm 1 takes h with its weights (``norm``) beat by beat
            m.d.comb += [norm1.h.valid.eq(self.h_in.valid & hin_ok),
                         norm1.h.payload.h.eq(self.h_in.payload.h),
                         self.h_in.ready.eq(norm1.h.ready & hin_ok),
                         self.norm.ready.eq(norm1.h.ready & self.h_in.valid & hin_gate & (ndone == 0))]
            with m.If(written):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == H - 1):
                    next_token(lambda: goto(Phase.CB) if T == 1 else goto(Phase.RUN), region="h")
        # a matrix's input feed starts beside its codebook, a vector per token: o from the
        # attention output, down from SiLU·mul of gate and up (the act quantizer's feeds, read
        # as soon as the reader is idle: its two banks take a token while the previous one
        # leaves), gate's tokens after the first from the residual through norm 2 once the
        # engine holds the previous ones' words (norm 2 holds one vector; the NORM2 phase
        # reads the first)
        # (at T = 1 o's and down's inputs are in the act quantizer already, fed during ATT and
        # up; up starts reader 0 on region g for SiLU·mul beside its rows)
        in_matrix = (phase == Phase.CB) | (phase == Phase.MAT) | (phase == Phase.CMD) | (phase == Phase.RUN)
        in_turn = (feed == 0) | (wtok == feed) | (mi == M["o"]) | (mi == M["down"])
        with m.If(in_matrix & (feed < T) & in_turn):
            if T > 1:
                with m.If(mi == M["o"]):
                    with m.If(read(mem.rd0_cmd, dst0, Dst.QUANT_ACT, reg["a"] + feed * lc.qdim, lc.qdim,
                                   strided=0)):
                        m.d.sync += feed.eq(feed + 1)
                with m.If(mi == M["down"]):
                    both = mem.rd0_cmd.ready & mem.rd1_cmd.ready
                    read(mem.rd1_cmd, dst1, Dst.SILU, reg["u"] + feed * R, lc.intermediate, when=both)
                    with m.If(read(mem.rd0_cmd, dst0, Dst.SILU, reg["g"] + feed * R, lc.intermediate, when=both)):
                        m.d.sync += feed.eq(feed + 1)
                with m.If(mi == M["gate"]):
                    with m.If(read(mem.rd0_cmd, dst0, Dst.NORM2, reg["h"] + feed * R, H)):
                        m.d.sync += feed.eq(feed + 1)
            else:
                with m.If(mi == M["up"]):
                    with m.If(read(mem.rd0_cmd, dst0, Dst.SILU_UP, reg["g"], lc.intermediate, strided=0)):
                        m.d.sync += feed.eq(feed + 1)
        with m.If(phase == Phase.CB):
            with m.If(self.cb.valid):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == CODEBOOK_ENTRIES - 1):
                    m.d.sync += [phase.eq(Phase.MAT), cnt.eq(0)]
        with m.If(phase == Phase.MAT):
            m.d.comb += self.mat.ready.eq(1)
            with m.If(self.mat.valid):
                p = self.mat.payload
                m.d.sync += [hm.eq(p.hm), he.eq(p.he), pre.eq(p.a), phase.eq(Phase.CMD)]
        with m.If(phase == Phase.CMD):
            c = eng.cmd.payload
            # one matrix at a time (its codebook written after the previous one's results
            # are in): every command reads codebook bank 0
            m.d.comb += [eng.cmd.valid.eq(1), c.last_group.eq(groups - 1), c.last_tile.eq(tiles - 1),
                         c.load_act.eq(loads), c.cb_bank.eq(0), rser.start.eq(1)]
            with m.If(eng.cmd.ready):
                m.d.sync += resid.eq(0)
                if T > 1:
                    with m.If(mi == M["q"]):
                        goto(Phase.HIN)
                    with m.Else():
                        goto(Phase.RUN)
                else:
                    goto(Phase.RUN)
        with m.If(phase == Phase.RUN):
            # the residual reader, once reader 1 is free (after the SiLU feeds for down);
            # the interleaved residual lies in the order the engine's rows leave it
            with m.If(residual & ~resid & ((feed == T) if T > 1 else 1)):
                with m.If(read(mem.rd1_cmd, dst1, Dst.RESIDUAL, reg["h"], T * H, strided=0)):
                    m.d.sync += resid.eq(1)
            with m.If(written):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == outs - 1):
                    # after v the attention half; after o the MLP half; after down the output
                    # (at T = 1 norm 2 took o's rows: gate follows o; down's rows left on h_out)
                    nxt = {M["v"]: Phase.ROPE, **({M["o"]: Phase.NORM2, M["down"]: Phase.HOUT} if T > 1
                                                   else {M["down"]: Phase.IDLE})}
                    for k in range(len(mats)):
                        with m.If(mi == k):
                            if k in nxt:
                                goto(nxt[k])
                            else:
                                goto(Phase.CB, matrix=k + 1)
        with m.If(phase == Phase.ROPE):
            # a token's k heads, then its q heads, through the RoPE unit (two reads of reader
            # 0, the write port's walk moved to region q after the k heads); once the k heads
            # are written, per KV head its K row then its V row through reader 1 and the KV
            # quantizer onto ``kv_wr`` (KVW), beside the q heads' rotation
            with m.If(issued == 0):
                with m.If(read(mem.rd0_cmd, dst0, Dst.ROPE, reg["k"] + toff, lc.kvdim)):
                    m.d.sync += issued.eq(1)
            with m.If(issued == 1):
                with m.If(read(mem.rd0_cmd, dst0, Dst.ROPE, reg["q"] + toff, lc.qdim)):
                    m.d.sync += issued.eq(2)
            with m.If(written):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == lc.kvdim - 1):
                    m.d.sync += k_done.eq(1)
                    m.d.comb += [wa.load.eq(1), wa.base.eq(reg["q"] + toff)]
                with m.If(cnt == lc.qdim + lc.kvdim - 1):
                    m.d.sync += rope_done.eq(1)
            with m.If(k_done & (kv_issued < 2 * lc.kv_heads)):
                head = kv_issued >> 1
                base = Mux(kv_issued[0], head_base("v", head), head_base("k", head))
                with m.If(read(mem.rd1_cmd, dst1, Dst.QUANT_KV, base, hd)):
                    m.d.sync += kv_issued.eq(kv_issued + 1)
            with m.If(self.kv_wr.valid & self.kv_wr.ready):
                m.d.sync += kv_cnt.eq(kv_cnt + 1)
                with m.If(kv_cnt == 2 * lc.kv_heads * (hd // L) - 1):
                    m.d.sync += kv_done.eq(1)
            with m.If(rope_done & kv_done):
                m.d.sync += [k_done.eq(0), rope_done.eq(0), kv_done.eq(0), kv_issued.eq(0), kv_cnt.eq(0)]
                next_token(lambda: goto(Phase.ATT), region="k")
        with m.If(phase == Phase.ATT):
            with m.If(qlim <= lc.heads):                  # a job left to command
                m.d.comb += [att.cmd.valid.eq(1), att.cmd.payload.keys.eq(pos + tok + 1)]
                with m.If(att.cmd.ready):
                    m.d.sync += qlim.eq(qlim + lc.group)
            # a group's query heads are read from the phase's first cycle (the first group)
            # or once the previous group's job has started: they wait in the FIFO, at most
            # one group's beats, until their job's query load takes them
            with m.If((issued < qlim) & (issued < lc.heads)):
                with m.If(read(mem.rd0_cmd, dst0, Dst.QUANT_Q, head_base("q", issued), hd)):
                    m.d.sync += issued.eq(issued + 1)
            with m.If(written):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == lc.qdim - 1):
                    next_token(lambda: goto(Phase.CB, matrix=M["o"]))
        if T > 1:       # (at T = 1 there is no NORM2 or HOUT phase)
            with m.If(phase == Phase.NORM2):
                with m.If(read(mem.rd0_cmd, dst0, Dst.NORM2, reg["h"], H)):
                    goto(Phase.CB, matrix=M["gate"])
                    m.d.sync += feed.eq(1)
            with m.If(phase == Phase.HOUT):
                with m.If(issued == 0):
                    with m.If(read(mem.rd0_cmd, dst0, Dst.HOUT, reg["h"] + toff, H)):
                        m.d.sync += issued.eq(1)
                with m.If(self.h_out.valid & self.h_out.ready):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == H - 1):
                        next_token(lambda: goto(Phase.IDLE))
        with m.If(phase >= len(Phase)):
            m.d.sync += phase.eq(Phase.IDLE)
        # attention output: the serializer restarts with the phase
        m.d.comb += aser.start.eq((phase == Phase.ROPE))
        return m
