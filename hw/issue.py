"""The engine's issue stage: weight-beat acceptance, the issue register and its T uses.

An accepted beat goes into the beat register and is issued T times (vector 0..T-1, one
per advancing cycle) to the trit decoder, with its tags (vector, first and final group of
its tile, last item of the command, the command's codebook bank). ``w.ready`` is high
when a command still expects beats (``w_open``), the pipeline advances and the issue
register is empty or issuing its last use (hw/ENGINE.md).

The running command: the stage takes the control's pending command (``take_pend``) when
it has none streaming (``w_open`` low), or at the edge that takes the running command's
last beat, so the next command's first beat follows it without a gap (hw/ENGINE.md "Back
to back"). Taking it loads the counters and the command's own registers (its
``last_group - 1`` for each tile's reload, its codebook bank, its activation bank).

Counters: the group and tile of the next beat to accept count down one below the items
left in signed registers, so "last" is a sign bit; they step with each take.

The activation buffer is read one cycle ahead (``rd_addr``: the item the issue register
will hold after this edge), so its word meets the decoder's output; the issue register
keeps its beat's activation bank, so the last uses of one command's beat read its bank
while the next command's beats read theirs.

Timing closure, cycle-neutral (``hw.replica``):

* ``w.ready`` is a flip-flop computed from the next values of the registers it is made of
  (``adv_next``, the advance's next value, is a flip-flop of the scale MAC), with copies
  of it for the group and the tile counters (each ``take`` one gate from ``w.valid``);
* the beat register and the tags load whenever the issue register is free at this edge
  (it advances and is empty or issuing its last use): a superset of a take that depends
  on no input, from copies of its register (one per ``BYTES_PER_FREE`` bytes of the beat,
  one for the tags). Without a take the issue register is empty next cycle and the loaded
  values are unused.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import HwConfig
from .checks import check_config, check_int
from .control import buffer_address_bits, counter_shapes
from .replica import replicas
from .signature import payload_layouts


#: bytes of the beat register served by one copy of its enable (hw/replica.py)
BYTES_PER_FREE = 2


def item_tag_layout(cfg: HwConfig) -> data.StructLayout:
    """Control carried with every item: vector, first/final group of the tile, last of the
    command, the command's codebook bank."""
    return data.StructLayout({"vector": payload_layouts(cfg)["res"]["vector"].shape,
                              "first": 1, "final": 1, "last": 1, "bank": 1})


def issue_layout(cfg: HwConfig, beat_bytes: int) -> data.StructLayout:
    """One issued item: the beat (its bytes in this engine's window) and its tags."""
    return data.StructLayout({"beat": unsigned(8 * beat_bytes), "tag": item_tag_layout(cfg)})


class IssueStage(wiring.Component):
    """Ports: ``w`` (the weight beats); from the control the pending command
    (``pend_valid``, ``last_group_m1``, ``last_tile_m1``, ``cb_bank``, ``act_bank``) and to
    it ``take_pend`` (taken at this edge); ``adv`` (this stage's copy of the advance) and
    ``adv_next`` (its next value); ``o`` (issued items: ``valid`` is the issue register's;
    the item moves on with ``adv``, so ``o.ready`` is not used), ``rd_addr`` (the
    activation buffer's read address), ``take`` (a beat is accepted)."""

    def __new__(cls, cfg: HwConfig, beat_bytes: int):
        check_config("IssueStage", cfg)
        check_int("IssueStage", "beat_bytes", beat_bytes, 1)
        return super().__new__(cls)

    def __init__(self, cfg: HwConfig, beat_bytes: int):
        self.cfg, self.beat_bytes = cfg, beat_bytes
        gw, tw = counter_shapes(cfg)
        super().__init__({
            "w": In(stream.Signature(unsigned(8 * beat_bytes))),
            "pend_valid": In(1), "take_pend": Out(1),
            "last_group_m1": In(signed(gw)), "last_tile_m1": In(signed(tw)),
            "cb_bank": In(1), "act_bank": In(1),
            "adv": In(1), "adv_next": In(1),
            "o": Out(stream.Signature(issue_layout(cfg, beat_bytes))),
            "rd_addr": Out(buffer_address_bits(cfg)), "take": Out(1),
        })

    def elaborate(self, platform):
        cfg, nb = self.cfg, self.beat_bytes
        T = cfg.vectors
        m = Module()
        adv, adv_next = self.adv, self.adv_next
        gshape = payload_layouts(cfg)["cmd"]["last_group"].shape
        acc_g = Signal(gshape)                # group of the next beat to accept
        gc = Signal.like(self.last_group_m1)  # groups after the one being accepted, - 1
        tc = Signal.like(self.last_tile_m1)   # tiles after the one being accepted, - 1
        g_first = Signal()                    # acc_g == 0
        w_open = Signal()                     # a command and beats still expected
        run_lg_m1 = Signal.like(self.last_group_m1)   # the running command's
        run_cb, run_ab = Signal(), Signal()           # codebook and activation banks
        h_valid = Signal()
        h_beat = Signal(8 * nb, reset_less=True)
        h_v = Signal(range(max(T, 2)))
        h_g = Signal(gshape)
        h_first, h_final, h_lasttile = Signal(), Signal(), Signal()
        h_cb, h_ab = Signal(), Signal()
        # "vector v is the beat's last use": a constant at T = 1, so that no next value
        # below depends on the issue register's vector bit
        is_last_use = (lambda v: Const(1, 1)) if T == 1 else (lambda v: v == T - 1)
        last_use = is_last_use(h_v)
        g_last, t_last = gc[-1], tc[-1]
        w_ready = Signal()
        m.d.comb += [self.w.ready.eq(w_ready), self.take.eq(self.w.valid & w_ready)]
        # the pending command is taken when none streams (``idle_new``, from flip-flops), or
        # with the running one's last beat: ``w.valid`` meets flip-flop terms in one gate
        # (``last_arm``: w.ready and the last group of the last tile)
        idle_new, last_arm, end_arm = Signal(), Signal(), Signal()
        new = self.take_pend
        m.d.comb += [idle_new.eq(self.pend_valid & ~w_open),
                     last_arm.eq(w_ready & g_last & t_last),
                     end_arm.eq(last_arm & ~self.pend_valid),
                     new.eq(idle_new | (self.w.valid & last_arm & self.pend_valid))]

        tag = self.o.payload.tag
        m.d.comb += [self.o.valid.eq(h_valid), self.o.payload.beat.eq(h_beat),
                     tag.vector.eq(h_v), tag.first.eq(h_first), tag.final.eq(h_final),
                     tag.last.eq(h_lasttile & h_final & last_use), tag.bank.eq(h_cb)]
        with m.If(h_valid & ~last_use):
            m.d.comb += self.rd_addr.eq(Cat(h_g, h_ab, h_v + 1))
        with m.Else():
            m.d.comb += self.rd_addr.eq(Cat(acc_g, run_ab, Const(0, len(h_v))))

        # next values of the registers w.ready is made of
        h_valid_nxt = Signal()
        h_v_nxt = Signal.like(h_v)
        w_open_nxt = Signal()
        can_take_nxt = Signal()
        m.d.comb += [h_valid_nxt.eq(h_valid), h_v_nxt.eq(h_v), w_open_nxt.eq(w_open),
                     can_take_nxt.eq(w_open_nxt & (~h_valid_nxt | is_last_use(h_v_nxt)))]
        m.d.sync += [h_valid.eq(h_valid_nxt), h_v.eq(h_v_nxt), w_open.eq(w_open_nxt),
                     w_ready.eq(can_take_nxt & adv_next)]
        w_ready_g, w_ready_t = replicas(m, "w_ready", can_take_nxt & adv_next, 2)
        take_g, take_t = Signal(), Signal()
        m.d.comb += [take_g.eq(self.w.valid & w_ready_g), take_t.eq(self.w.valid & w_ready_t)]
        free_nxt = Signal()
        m.d.comb += free_nxt.eq(adv_next & (~h_valid_nxt | is_last_use(h_v_nxt)))
        beat_copies = -(-nb // BYTES_PER_FREE)
        *free_beat, free_tag = replicas(m, "free", free_nxt, beat_copies + 1, init=1)
        for b in range(nb):
            with m.If(free_beat[b // BYTES_PER_FREE]):
                m.d.sync += h_beat[8 * b:8 * b + 8].eq(self.w.payload[8 * b:8 * b + 8])
        with m.If(free_tag):
            m.d.sync += [h_g.eq(acc_g), h_first.eq(g_first), h_final.eq(g_last),
                         h_lasttile.eq(t_last), h_cb.eq(run_cb), h_ab.eq(run_ab)]
        # a take implies adv and an issue register that is empty or issuing its last use
        with m.If(adv & h_valid & ~last_use):
            m.d.comb += h_v_nxt.eq(h_v + 1)
        with m.Elif(self.take):
            m.d.comb += [h_valid_nxt.eq(1), h_v_nxt.eq(0)]
        with m.Elif(adv):
            m.d.comb += h_valid_nxt.eq(0)
        # the last beat closes the stream unless the pending command is taken with it
        with m.If(self.w.valid & end_arm):
            m.d.comb += w_open_nxt.eq(0)
        with m.If(idle_new):
            m.d.comb += w_open_nxt.eq(1)

        # the accept-side counters and the running command's registers: loaded from the
        # control's command registers when a command is taken while none streams, and with
        # every command's last beat whether or not a command is pending (without one the
        # values are unused: nothing is taken until a pending command reloads them with
        # ``idle_new``), so ``w.valid`` reaches them through their clock enables alone
        # (one gate: a take, with the flip-flop terms beside it); stepped by a take
        w_ready_r, = replicas(m, "w_ready_run", can_take_nxt & adv_next, 1)
        with m.If(idle_new | (self.w.valid & w_ready_r & g_last & t_last)):
            m.d.sync += [run_lg_m1.eq(self.last_group_m1), run_cb.eq(self.cb_bank),
                         run_ab.eq(self.act_bank)]
        with m.If(idle_new | take_g):
            m.d.sync += [acc_g.eq(Mux(idle_new | g_last, 0, acc_g + 1)),
                         g_first.eq(idle_new | g_last),
                         gc.eq(Mux(idle_new | (g_last & t_last), self.last_group_m1,
                                   Mux(g_last, run_lg_m1, gc - 1)))]
        with m.If(idle_new | (take_t & g_last)):
            m.d.sync += tc.eq(Mux(idle_new | t_last, self.last_tile_m1, tc - 1))
        return m
