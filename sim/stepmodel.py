"""Per-cycle stepping model of the GEMV engine (hw/engine.py), the cycle reference.

``StepModel(cfg).step(inputs) -> outputs`` advances one clock: given the values driven in
cycle n (``Inputs``: every stream's valid and payload, ``res_ready``, ``rst``; the records
are made from the engine's port set, ``tritforge.ports``), it returns
what the RTL shows in cycle n (``Outputs``: every ready, ``res`` valid and payload, ``err``,
``busy``) and then takes the clock edge. Observable behaviour equals the RTL's in every
cycle under any valid/ready pattern (tests/test_stepmodel.py compares them cycle by cycle
in the Amaranth simulator). It never imports ``hw`` or Amaranth: the structure below is
written from hw/ENGINE.md and the RTL's documented stages.

Structure mirrored (hw/ENGINE.md, hw/engine.py):

* the control's states (``tritforge.hwconfig.State``, hw/control.py's names) IDLE / START /
  LOAD / RUN, with the command timing owned by ``tritforge.hwconfig``
  (``CMD_ACCEPT_CYCLES``, ``LOAD_OPEN_CYCLES``, ``END_CYCLES``); ``cmd.ready`` = IDLE,
  ``act.ready`` = LOAD, ``cb.ready`` = 1, ``busy`` = not IDLE;
* one global advance ``adv``, a register decided three cycles ahead: "a push into the
  5-beat result FIFO fits in this cycle even if nothing was popped in the three before"
  (``res.ready`` only pops the FIFO; the ``res`` payload is its entry at the read pointer);
* an issue register that holds an accepted beat for its T uses;
  ``w.ready = w_open and adv and (issue empty or issuing its last use)``;
* behind it ``pipeline_stages - 1`` register stages; the codebook is read when an item
  enters the ``MAC_STAGES``-th last of them (``ScaleMac`` stage 1), the result FIFO is the
  last;
* T row-accumulator sets used as a ring (an item with ``first`` starts from 0);
* synchronous reset: control, pipeline valid bits, the result register and ``err`` return to
  their initial values; the codebook, the activation buffer (and writes to them in the reset
  cycle) are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

import numpy as np

from ..codec import layout
from ..errors import TritforgeError
from ..hwconfig import (CMD_ACCEPT_CYCLES, END_CYCLES, FIFO_DEPTH, LOAD_OPEN_CYCLES, MAC_STAGES,
                        HwConfig, State)
from ..ports import IN, OUT, by_name, engine_ports, record_fields
from ..stalls import Stall, port_seed
from .elementstep import wrap

IDLE, START, LOAD, RUN = State.IDLE, State.START, State.LOAD, State.RUN
#: the port set the records are named after (names do not depend on the configuration)
_PORTS = engine_ports(HwConfig())

#: Everything the engine samples in one cycle: ``rst``, each input stream's valid and
#: payload fields, each output stream's ready (``tritforge.ports.record_fields``).
Inputs = make_dataclass("Inputs", [(n, t, field(default=t())) for n, t in
                                   record_fields(_PORTS, IN)])
#: Everything the engine drives in one cycle: each input stream's ready, each output
#: stream's valid and payload fields (``res_acc``: R signed accumulators), the flags.
Outputs = make_dataclass("Outputs", record_fields(_PORTS, OUT))


@dataclass
class _Item:
    """One pipeline item: one beat's decoded groups against one activation vector."""

    p: list                      #: R group dot products
    k: list                      #: R codebook indices
    vector: int
    first: bool
    final: bool
    last: bool
    m: list = field(default_factory=list)
    sh: list = field(default_factory=list)


class StepModel:
    """The engine, one clock per :meth:`step`."""

    def __init__(self, cfg: HwConfig):
        if not isinstance(cfg, HwConfig):
            raise TritforgeError(f"StepModel cfg={cfg!r}: expected a HwConfig")
        self.cfg = cfg
        self.ports = by_name(engine_ports(cfg))
        self.acc_bits = cfg.widths.acc
        self.buffer = [0] * cfg.act_buffer_words
        self.cb_mant = [0] * layout.CODEBOOK_SIZE
        self.cb_shift = [0] * layout.CODEBOOK_SIZE
        self.cb_pending = None       #: (index, mantissa, shift) written at the next edge
        self.ring = [[0] * cfg.rows for _ in range(cfg.vectors)]
        self.cycle = 0
        self._reset()

    def _reset(self):
        R = self.cfg.rows
        self.state = IDLE
        self.last_group = self.last_tile = 0
        self.err = False
        # err pipeline: an accepted bad beat sets err ``err_latency`` cycles later
        self.bad = [False] * (self.cfg.err_latency - 1)
        self.ld_g = self.ld_v = 0
        self.acc_g = self.acc_t = 0
        self.w_open = False
        self.open_wait = 0            # edges until RUN opens for beats after LOAD's last word
        self.load_act = False
        self.wait = 0                 # edges left in START, or until idle after RUN's last pop
        self.h_valid = False
        self.h_beat = 0
        self.h_v = 0
        self.h_g = 0
        self.h_first = self.h_final = self.h_lasttile = False
        # stages behind the issue register, excluding the result register
        self.pipe: list[_Item | None] = [None] * (self.cfg.pipeline_stages - 2)
        # result FIFO of FIFO_DEPTH entries written in turn at ``wp``; the res payload is entry
        # ``rp``; the advance is a register decided three cycles ahead (``_fifo``)
        self.count = 0
        self.entries = [((0,) * R, 0, False)] * FIFO_DEPTH
        self.wp = self.rp = 0
        self.adv = self.adv2 = self.adv3 = True

    @property
    def res_valid(self) -> bool:
        return self.count > 0

    @property
    def res_acc(self) -> tuple:
        return self.entries[self.rp][0]

    @property
    def res_vector(self) -> int:
        return self.entries[self.rp][1]

    @property
    def res_last(self) -> bool:
        return self.entries[self.rp][2]

    # --- one clock ---------------------------------------------------------------------------
    def outputs(self, inp: Inputs) -> Outputs:
        """What the engine drives in this cycle, given this cycle's inputs (no state change)."""
        adv = self.adv
        last_use = self.h_v == self.cfg.vectors - 1
        return Outputs(
            cmd_ready=self.state == IDLE, cb_ready=True, act_ready=self.state == LOAD,
            w_ready=bool(self.w_open and adv and (not self.h_valid or last_use)),
            res_valid=self.res_valid, res_acc=self.res_acc, res_vector=self.res_vector,
            res_last=self.res_last, err=self.err, busy=self.state != IDLE)

    def step(self, inp: Inputs) -> Outputs:
        """Outputs of this cycle, then the clock edge."""
        out = self.outputs(inp)
        self._edge(inp, out)
        self.cycle += 1
        return out

    # --- the clock edge ------------------------------------------------------------------------
    def _edge(self, inp: Inputs, out: Outputs):
        cfg = self.cfg
        T, S = cfg.vectors, cfg.act_stride
        adv = self.adv
        take = inp.w_valid and out.w_ready
        pop = self.res_valid and inp.res_ready
        res_done = pop and self.res_last

        # memories: written even in a reset cycle; read before written
        issue_item = None
        if adv and self.h_valid:
            issue_item = self._issue(self.buffer[self.h_v * S + self.h_g])
        # a codebook write reaches the table one cycle after it is offered (a register, kept
        # through reset like the table)
        cb_before = (list(self.cb_mant), list(self.cb_shift))
        if self.cb_pending is not None:
            index, mant, shift = self.cb_pending
            self.cb_mant[index], self.cb_shift[index] = mant, shift
        self.cb_pending = None
        cb = self.ports["cb"].unpack(self.ports["cb"].pack(
            {"index": inp.cb_index, "mantissa": inp.cb_mantissa, "shift": inp.cb_shift}))
        if inp.cb_valid and cb["index"] < layout.CODEBOOK_SIZE:
            self.cb_pending = (cb["index"], cb["mantissa"], cb["shift"])
        if inp.act_valid and self.state == LOAD:
            addr = self.ld_v * S + self.ld_g
            if addr < len(self.buffer):
                self.buffer[addr] = inp.act_word & ((1 << layout.ACT_WORD_BITS) - 1)

        pushed = self._advance_pipeline(issue_item, cb_before) if adv else None
        self._fifo(pushed, pop)
        if inp.rst:
            self._reset()
            return

        # after LOAD's last word, RUN opens for beats LOAD_OPEN_CYCLES later
        if self.open_wait:
            self.open_wait -= 1
            self.w_open = self.w_open or not self.open_wait
        # err: an accepted beat's bytes are checked in registered steps (err from
        # c + err_latency)
        if self.bad[-1]:
            self.err = True
        self.bad = [bool(take and any(b >= layout.BYTE_LIMIT for b in self._bytes(inp.w_beat)))
                    ] + self.bad[:-1]

        # issue register
        if adv:
            if self.h_valid and self.h_v != T - 1:
                self.h_v += 1
            elif take:
                self.h_valid, self.h_beat, self.h_v, self.h_g = True, inp.w_beat, 0, self.acc_g
                self.h_first = self.acc_g == 0
                self.h_final = self.acc_g == self.last_group
                self.h_lasttile = self.acc_t == self.last_tile
            else:
                self.h_valid = False
        if take:
            if self.acc_g == self.last_group:
                self.acc_g = 0
                if self.acc_t == self.last_tile:
                    self.w_open = False
                self.acc_t += 1
            else:
                self.acc_g += 1

        # control
        if self.state == IDLE:
            if inp.cmd_valid:
                self.last_group, self.last_tile = inp.last_group, inp.last_tile
                self.load_act = bool(inp.load_act)
                self.err = False
                self.ld_g = self.ld_v = self.acc_g = self.acc_t = 0
                self.state, self.wait = START, CMD_ACCEPT_CYCLES - 1
        elif self.state == START:       # the counters load from the command
            self.wait -= 1
            if self.wait == 0 and self.load_act:
                self.state = LOAD
            elif self.wait == 0:
                self.state, self.w_open = RUN, True
        elif self.state == LOAD:
            if inp.act_valid:
                if self.ld_g == self.last_group:
                    self.ld_g = 0
                    if self.ld_v == T - 1:
                        self.state, self.open_wait = RUN, LOAD_OPEN_CYCLES
                    else:
                        self.ld_v += 1
                else:
                    self.ld_g += 1
        elif self.state == RUN:         # idle END_CYCLES + 1 after the last result's pop
            if self.wait:
                self.wait -= 1
                if self.wait == 0:
                    self.state = IDLE
            elif res_done:
                self.wait = END_CYCLES

    def _bytes(self, beat: int) -> list[int]:
        return [(beat >> (8 * b)) & 0xFF for b in range(self.cfg.beat_bytes)]

    def _issue(self, act_word: int) -> _Item:
        cfg = self.cfg
        raw = np.array([b if b < layout.BYTE_LIMIT else layout.ZERO_BYTE for b in self._bytes(self.h_beat)],
                       dtype=np.uint8)
        q, k = layout.decode_beat(raw, cfg.depth, cfg.rows)
        x = layout.unpack_activation_group(act_word).astype(np.int64)
        p = (q.astype(np.int64) @ x).tolist()
        last_use = self.h_v == cfg.vectors - 1
        return _Item(p=p, k=[int(v) for v in k], vector=self.h_v, first=self.h_first,
                     final=self.h_final, last=self.h_lasttile and self.h_final and last_use)

    def _fifo(self, pushed, pop):
        """Result FIFO update: ``pushed`` = (acc, vector, last) entering, ``pop`` = head taken."""
        if pushed is not None:
            self.entries[self.wp] = pushed
            self.wp = (self.wp + 1) % FIFO_DEPTH
        if pop:
            self.rp = (self.rp + 1) % FIFO_DEPTH
        # the advance is decided three cycles ahead (adv2, adv3 = the advances of the next
        # two cycles): the cycle after those advances if a push then still fits even when
        # nothing is popped before, counting a push in each of the next two cycles that
        # advances
        self.adv, self.adv2, self.adv3 = self.adv2, self.adv3, (
            self.count + (pushed is not None) + self.adv2 + self.adv3 <= FIFO_DEPTH - 1)
        self.count += (pushed is not None) - bool(pop)

    def _advance_pipeline(self, issue_item, cb_before):
        """Moves every stage; returns the result beat (acc, vector, last) it completes, if any."""
        tail = self.pipe[-1]
        pushed = None
        if tail is not None:
            new = []
            head = self.ring[0]
            for r in range(self.cfg.rows):
                term = (tail.m[r] * tail.p[r]) << tail.sh[r]
                new.append(wrap((0 if tail.first else head[r]) + term, self.acc_bits))
            self.ring = self.ring[1:] + [new]
            if tail.final:
                pushed = (tuple(new), tail.vector, tail.last)
        pipe = [issue_item] + self.pipe[:-1]
        # the codebook lookup register is ScaleMac's first stage: MAC_STAGES - 1 from the
        # end of ``pipe`` (which stops before the result FIFO, the MAC's last stage)
        entering = pipe[-(MAC_STAGES - 1)]
        if entering is not None:
            mant, shift = cb_before
            entering.m = [mant[k] for k in entering.k]
            entering.sh = [shift[k] for k in entering.k]
        self.pipe = pipe
        return pushed


# --- host side: a reactive stimulus for the engine (the model, the RTL, or both) ----------

@dataclass
class Job:
    """One command as the host sends it: codebook, activation words, weight beats."""

    mantissa: list               #: 27 codebook mantissas
    shift: list                  #: 27 codebook left shifts
    act_words: list              #: T*ng words, vector-major (empty when load_act is False)
    beats: list                  #: tiles*ng beat integers, tile-major
    last_group: int
    last_tile: int
    load_act: bool = True


class JobDriver:
    """Plays jobs one after another with random valid/ready patterns, cycle by cycle.

    ``inputs()`` gives this cycle's ``Inputs``; ``observe(inputs, outputs)`` takes what the
    engine (model or RTL) answered and moves on. Streams follow the host rules of
    hw/ENGINE.md: the codebook is written while the engine is idle, then the command, then
    activation words and beats (offered whenever pending; the engine decides when to take
    them). ``p_valid``/``p_ready`` are the chances that a pending stream is valid and that
    ``res.ready`` is high in a cycle; ``reset_cycles`` assert the synchronous reset, after
    which the current job restarts from its command (codebook and buffer are kept).
    Collected result beats: ``results[j]`` = list of ``(vector, acc tuple, last)``.
    """

    def __init__(self, cfg: HwConfig, jobs: list[Job], *, seed: int = 0, p_valid: float = 1.0,
                 p_ready: float = 1.0, reset_cycles=()):
        self.cfg = cfg
        self.jobs = list(jobs)
        self.rng = np.random.default_rng(seed)      # garbage payloads of idle cycles
        self.seed = seed
        self.p_valid, self.p_ready = p_valid, p_ready
        self.reset_cycles = set(reset_cycles)
        self.cycle = 0
        self.results: list[list] = [[] for _ in self.jobs]
        self.job = 0
        self._start_job(codebook=True)

    def _start_job(self, codebook: bool):
        self.phase = "cb" if codebook else "cmd"
        self.cb_i = self.act_i = self.beat_i = 0
        if self.job < len(self.jobs):
            self.results[self.job] = []

    @property
    def done(self) -> bool:
        return self.job >= len(self.jobs)

    @property
    def p_valid(self) -> float:
        return self._p_valid

    @p_valid.setter
    def p_valid(self, p: float) -> None:
        """A pending stream is idle in a cycle with chance 1 - p_valid (``tritforge.stalls``)."""
        self._p_valid, self.idle = p, Stall(port_seed(self.seed, "inputs"), 1.0 - p)

    @property
    def p_ready(self) -> float:
        return self._p_ready

    @p_ready.setter
    def p_ready(self, p: float) -> None:
        """``res.ready`` is low in a cycle with chance 1 - p_ready."""
        self._p_ready, self.bp = p, Stall(port_seed(self.seed, "res"), 1.0 - p)

    def _valid(self) -> bool:
        return not self.idle.next()

    def inputs(self) -> Inputs:
        inp = Inputs(rst=self.cycle in self.reset_cycles, res_ready=not self.bp.next())
        if self.done:
            return inp
        job = self.jobs[self.job]
        if self.phase == "cb" and self._valid():
            inp.cb_valid, inp.cb_index = True, self.cb_i
            inp.cb_mantissa, inp.cb_shift = int(job.mantissa[self.cb_i]), int(job.shift[self.cb_i])
        elif self.phase == "cmd" and self._valid():
            inp.cmd_valid, inp.last_group, inp.last_tile = True, job.last_group, job.last_tile
            inp.load_act = job.load_act
        elif self.phase == "run":
            if self.act_i < len(job.act_words) and self._valid():
                inp.act_valid, inp.act_word = True, int(job.act_words[self.act_i])
            if self.beat_i < len(job.beats) and self._valid():
                inp.w_valid, inp.w_beat = True, int(job.beats[self.beat_i])
        # idle-cycle garbage on payloads must not matter
        rnd = lambda bits: int(self.rng.integers(0, 1 << min(bits, 62)))   # noqa: E731
        if not inp.w_valid:
            inp.w_beat = rnd(62) | (rnd(62) << 62)
        if not inp.act_valid:
            inp.act_word = rnd(62) | (rnd(62) << 62)
        if not inp.cmd_valid:
            inp.last_group, inp.last_tile, inp.load_act = rnd(8), rnd(8), bool(rnd(1))
        if not inp.cb_valid:
            inp.cb_index, inp.cb_mantissa, inp.cb_shift = rnd(5), rnd(12), rnd(4)
        return inp

    def observe(self, inp: Inputs, out) -> None:
        get = (lambda n: out[n]) if isinstance(out, dict) else (lambda n: getattr(out, n))
        self.cycle += 1
        if inp.rst:
            if not self.done:
                self._start_job(codebook=self.phase == "cb")
            return
        if self.done:
            return
        if self.phase == "cb":
            if inp.cb_valid and get("cb_ready"):
                self.cb_i += 1
                if self.cb_i == layout.CODEBOOK_SIZE:
                    self.phase = "cmd"
        elif self.phase == "cmd":
            if inp.cmd_valid and get("cmd_ready"):
                self.phase = "run"
        elif self.phase == "run":
            if inp.act_valid and get("act_ready"):
                self.act_i += 1
            if inp.w_valid and get("w_ready"):
                self.beat_i += 1
            if get("res_valid") and inp.res_ready:
                last = bool(get("res_last"))
                self.results[self.job].append((int(get("res_vector")), tuple(get("res_acc")), last))
                if last:
                    self.job += 1
                    self._start_job(codebook=True)


def make_job(cfg: HwConfig, q: np.ndarray, k: np.ndarray, xq: np.ndarray, mantissa, shift,
             load_act: bool = True) -> tuple[Job, list]:
    """A ``Job`` for levels q (out, in_pad), indices k (out, ng), activations xq (T, in_pad)
    and integer codebook (27 mantissas, 27 left shifts), with the result beats the engine
    must return: ``[(vector, acc tuple, last)]`` in order, from ``codec.golden.accumulate``
    (rows past ``out`` read 0)."""
    from ..codec import golden

    out, in_pad = q.shape
    cfg.check_shape(out, in_pad)
    T = cfg.vectors
    xq = np.asarray(xq).reshape(T, in_pad)
    ng = in_pad // layout.GROUP
    beats = layout.stream_beats(q, k, cfg.depth, cfg.rows)
    tiles = beats.shape[0]
    words = [int.from_bytes(bytes(b), "little") for b in beats.reshape(-1, cfg.beat_bytes)]
    act = [layout.pack_activation_group(xq[v, 16 * g:16 * g + 16]) for v in range(T) for g in range(ng)]
    A = np.zeros((T, tiles * cfg.rows), dtype=object)
    A[:, :out] = golden.accumulate(golden.group_dots(q, xq), k, mantissa, shift)
    results = [(v, tuple(int(a) for a in A[v, t * cfg.rows:(t + 1) * cfg.rows]),
                t == tiles - 1 and v == T - 1) for t in range(tiles) for v in range(T)]
    job = Job(mantissa=[int(m) for m in mantissa], shift=[int(s) for s in shift],
              act_words=act if load_act else [], beats=words, last_group=ng - 1,
              last_tile=tiles - 1, load_act=load_act)
    return job, results


def run(model: StepModel, driver: JobDriver, max_cycles: int = 10_000_000) -> list[tuple]:
    """Step ``model`` with ``driver`` until done; returns ``(inputs, outputs)`` per cycle."""
    trace = []
    while not driver.done:
        if len(trace) >= max_cycles:
            raise TritforgeError(f"stepping model: driver not done after {max_cycles} cycles")
        inp = driver.inputs()
        out = model.step(inp)
        driver.observe(inp, out)
        trace.append((inp, out))
    return trace
