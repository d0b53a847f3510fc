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

* the command front end's states (``tritforge.hwconfig.State``, hw/control.py's names)
  FREE / START / LOAD / READY, with the command timing owned by ``tritforge.hwconfig``
  (``CMD_ACCEPT_CYCLES``, ``LOAD_OPEN_CYCLES``, ``END_CYCLES``); ``cmd.ready`` = FREE,
  ``act.ready`` = LOAD, ``cb.ready`` = 1; the pending command taken by the issue side when
  it streams none, or with the running command's last beat; ``busy`` = commands in flight
  (a register); two codebook banks and two activation banks;
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
from ..hwconfig import (ACT_BANKS, CMD_ACCEPT_CYCLES, CODEBOOK_BANK_WORDS, CODEBOOK_BANKS,
                        END_CYCLES, FIFO_DEPTH, LOAD_OPEN_CYCLES, MAC_STAGES, HwConfig, State)
from ..ports import IN, OUT, by_name, engine_ports, record_fields
from ..stalls import Stall, port_seed
from .elementstep import wrap

FREE, START, LOAD, READY = State.FREE, State.START, State.LOAD, State.READY
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
    bank: int
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
        self.cb_mant = [0] * (CODEBOOK_BANKS * CODEBOOK_BANK_WORDS)
        self.cb_shift = [0] * (CODEBOOK_BANKS * CODEBOOK_BANK_WORDS)
        self.cb_pending = None       #: (index, mantissa, shift) written at the next edge
        self.ring = [[0] * cfg.rows for _ in range(cfg.vectors)]
        self.cycle = 0
        self.latest_bank = 0          #: the bank of the latest completed LOAD (kept in reset)
        self._reset()

    def _reset(self):
        R = self.cfg.rows
        # the front end: the pending command's registers
        self.front = FREE
        self.p_last_group = self.p_last_tile = 0
        self.p_load_act = False
        self.p_cb_bank = self.p_act_bank = 0
        self.ld_g = self.ld_v = 0
        self.wait = 0                 # edges left in START
        self.open_wait = 0            # edges after LOAD's last word until READY
        self.in_flight = 0
        self.busy = False
        # a command's last result pop, registered (END_CYCLES edges) before it is counted out
        self.done = [False] * END_CYCLES
        self.err = False
        # err pipeline: an accepted bad beat sets err ``err_latency`` cycles later
        self.bad = [False] * (self.cfg.err_latency - 1)
        # the issue side: the running command
        self.last_group = self.last_tile = 0
        self.run_cb_bank = self.run_act_bank = 0
        self.acc_g = self.acc_t = 0
        self.w_open = False
        self.h_valid = False
        self.h_beat = 0
        self.h_v = 0
        self.h_g = 0
        self.h_first = self.h_final = self.h_lasttile = False
        self.h_cb_bank = self.h_act_bank = 0
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
            cmd_ready=self.front == FREE, cb_ready=True,
            act_ready=self.front == LOAD and not self.open_wait,
            w_ready=bool(self.w_open and adv and (not self.h_valid or last_use)),
            res_valid=self.res_valid, res_acc=self.res_acc, res_vector=self.res_vector,
            res_last=self.res_last, err=self.err, busy=self.busy)

    @property
    def pend_valid(self) -> bool:
        """The pending command can be taken by the issue side in this cycle."""
        return self.front == READY or (self.front == START and not self.p_load_act)

    def _address(self, v: int, bank: int, g: int) -> int:
        """The activation buffer's word (v, bank, g) (``HwConfig.act_buffer_words``)."""
        return (v * ACT_BANKS + bank) * self.cfg.act_stride + g

    def step(self, inp: Inputs) -> Outputs:
        """Outputs of this cycle, then the clock edge."""
        out = self.outputs(inp)
        self._edge(inp, out)
        self.cycle += 1
        return out

    # --- the clock edge ------------------------------------------------------------------------
    def _edge(self, inp: Inputs, out: Outputs):
        cfg = self.cfg
        T = cfg.vectors
        adv = self.adv
        take = inp.w_valid and out.w_ready
        pop = self.res_valid and inp.res_ready
        res_done = pop and self.res_last
        accept = inp.cmd_valid and out.cmd_ready
        last_beat = take and self.acc_g == self.last_group and self.acc_t == self.last_tile
        take_pend = self.pend_valid and (not self.w_open or last_beat)

        # memories: written even in a reset cycle; read before written
        issue_item = None
        if adv and self.h_valid:
            issue_item = self._issue(self.buffer[self._address(self.h_v, self.h_act_bank, self.h_g)])
        # a codebook write reaches the table one cycle after it is offered (a register, kept
        # through reset like the table)
        cb_before = (list(self.cb_mant), list(self.cb_shift))
        if self.cb_pending is not None:
            index, mant, shift = self.cb_pending
            self.cb_mant[index], self.cb_shift[index] = mant, shift
        self.cb_pending = None
        cb = self.ports["cb"].unpack(self.ports["cb"].pack(
            {"index": inp.cb_index, "mantissa": inp.cb_mantissa, "shift": inp.cb_shift}))
        if inp.cb_valid and cb["index"] % CODEBOOK_BANK_WORDS < layout.CODEBOOK_SIZE:
            self.cb_pending = (cb["index"], cb["mantissa"], cb["shift"])
        if inp.act_valid and out.act_ready:
            addr = self._address(self.ld_v, self.p_act_bank, self.ld_g)
            if addr < len(self.buffer):
                self.buffer[addr] = inp.act_word & ((1 << layout.ACT_WORD_BITS) - 1)

        pushed = self._advance_pipeline(issue_item, cb_before) if adv else None
        self._fifo(pushed, pop)
        if inp.rst:
            self._reset()
            return

        # err: an accepted beat's bytes are checked in registered steps (err from
        # c + err_latency); an accept with no command in flight clears it
        if self.bad[-1]:
            self.err = True
        elif accept and self.in_flight == 0:
            self.err = False
        self.bad = [bool(take and any(b >= layout.BYTE_LIMIT for b in self._bytes(inp.w_beat)))
                    ] + self.bad[:-1]
        # commands in flight: counted in at the accept, out one cycle after the last pop
        self.in_flight += int(accept) - int(self.done[-1])
        self.busy = self.in_flight != 0
        self.done = [res_done] + self.done[:-1]

        # issue register
        if adv:
            if self.h_valid and self.h_v != T - 1:
                self.h_v += 1
            elif take:
                self.h_valid, self.h_beat, self.h_v, self.h_g = True, inp.w_beat, 0, self.acc_g
                self.h_first = self.acc_g == 0
                self.h_final = self.acc_g == self.last_group
                self.h_lasttile = self.acc_t == self.last_tile
                self.h_cb_bank, self.h_act_bank = self.run_cb_bank, self.run_act_bank
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
        # the running command: the pending one, taken when none streams or with the last beat
        if take_pend:
            self.last_group, self.last_tile = self.p_last_group, self.p_last_tile
            self.run_cb_bank, self.run_act_bank = self.p_cb_bank, self.p_act_bank
            self.acc_g = self.acc_t = 0
            self.w_open = True

        # the front end
        if self.front == FREE:
            self.ld_g = self.ld_v = 0
            if accept:
                self.p_last_group, self.p_last_tile = inp.last_group, inp.last_tile
                self.p_load_act, self.p_cb_bank = bool(inp.load_act), int(inp.cb_bank)
                self.p_act_bank = self.latest_bank ^ int(self.p_load_act)
                self.front, self.wait = START, CMD_ACCEPT_CYCLES - 1
        elif self.front == START:       # LOAD's counters load
            self.wait -= 1
            if self.wait == 0:
                self.front = LOAD if self.p_load_act else FREE if take_pend else READY
        elif self.front == LOAD:
            if self.open_wait:          # READY LOAD_OPEN_CYCLES after the last word
                self.open_wait -= 1
                if self.open_wait == 0:
                    self.front = READY
            elif inp.act_valid:
                if self.ld_g == self.p_last_group:
                    self.ld_g = 0
                    if self.ld_v == T - 1:
                        self.latest_bank = self.p_act_bank
                        self.open_wait = LOAD_OPEN_CYCLES - 1
                        if not self.open_wait:
                            self.front = READY
                    else:
                        self.ld_v += 1
                else:
                    self.ld_g += 1
        elif self.front == READY and take_pend:
            self.front = FREE

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
                     final=self.h_final, last=self.h_lasttile and self.h_final and last_use,
                     bank=self.h_cb_bank)

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
            base = entering.bank * CODEBOOK_BANK_WORDS
            entering.m = [mant[base + k] for k in entering.k]
            entering.sh = [shift[base + k] for k in entering.k]
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
    #: the host writes the codebook for this command (into the other bank); False: the
    #: command reads the bank the job before it read (the same matrix again)
    codebook: bool = True


class JobDriver:
    """Plays jobs back to back with random valid/ready patterns, cycle by cycle.

    ``inputs()`` gives this cycle's ``Inputs``; ``observe(inputs, outputs)`` takes what the
    engine (model or RTL) answered and moves on. Streams follow the host rules of
    hw/ENGINE.md: the codebooks alternate between the two banks, each written once the last
    job that read its bank before has all its results (with ``overlap=False`` once the job
    before has: one command at a time), then the job's command is offered; a job without a
    codebook of its own reads the bank of the job before it. The activation words and the
    beats are flat streams over the jobs whose commands were accepted (offered whenever
    pending; the engine decides when to take them). ``p_valid``/``p_ready`` are the chances that a pending stream is valid and that
    ``res.ready`` is high in a cycle; ``reset_cycles`` assert the synchronous reset, after
    which every job without all its results restarts from its codebook (the codebook and
    the buffer are kept, but nothing in flight).
    Collected result beats: ``results[j]`` = list of ``(vector, acc tuple, last)``.
    """

    def __init__(self, cfg: HwConfig, jobs: list[Job], *, seed: int = 0, p_valid: float = 1.0,
                 p_ready: float = 1.0, reset_cycles=(), overlap: bool = True):
        self.cfg = cfg
        self.jobs = list(jobs)
        self.overlap = overlap
        self.rng = np.random.default_rng(seed)      # garbage payloads of idle cycles
        self.seed = seed
        self.p_valid, self.p_ready = p_valid, p_ready
        self.reset_cycles = set(reset_cycles)
        self.cycle = 0
        self.results: list[list] = [[] for _ in self.jobs]
        self.job = 0                 #: the job whose results come next
        # per job its codebook bank, and the job whose results it waits for
        self.bank, self.wait_for, books = [], [], []
        for j, job in enumerate(self.jobs):
            if job.codebook or not books:
                books.append(j)
            else:
                books[-1] = j
            self.bank.append((len(books) - 1) % CODEBOOK_BANKS)
            if not overlap:
                self.wait_for.append(j - 1)
            elif job.codebook and len(books) >= 3:
                self.wait_for.append(books[-3])
            else:
                self.wait_for.append(-1)
        self._restart()

    def _restart(self):
        """Everything from the job whose results come next: its codebook first."""
        self._next(self.job)
        self.accepted = self.job     #: jobs whose commands were accepted
        self.act_job = self.beat_job = self.job
        self.act_i = self.beat_i = 0
        for j in range(self.job, len(self.jobs)):
            self.results[j] = []

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

    def _next(self, j: int):
        """Job j is the next to send: its codebook (the first job after a restart writes
        its bank's codebook even if it shares it), or its command."""
        codebook = j < len(self.jobs) and (self.jobs[j].codebook or j == self.job)
        self.send, self.phase, self.cb_i = j, "cb" if codebook else "cmd", 0

    def _bank_free(self) -> bool:
        """Job ``send`` may go: the job it waits for (the last that read its codebook's bank
        before it; one at a time, the job before it) has all its results."""
        return self.job > self.wait_for[self.send]

    def _skip_loadless(self):
        while self.act_job < self.accepted and self.act_i == len(self.jobs[self.act_job].act_words):
            self.act_job, self.act_i = self.act_job + 1, 0

    def inputs(self) -> Inputs:
        inp = Inputs(rst=self.cycle in self.reset_cycles, res_ready=not self.bp.next())
        if self.send < len(self.jobs):
            job = self.jobs[self.send]
            bank = self.bank[self.send]
            if self.phase == "cb" and self._bank_free() and self._valid():
                inp.cb_valid, inp.cb_index = True, bank * CODEBOOK_BANK_WORDS + self.cb_i
                inp.cb_mantissa, inp.cb_shift = int(job.mantissa[self.cb_i]), int(job.shift[self.cb_i])
            elif self.phase == "cmd" and self._bank_free() and self._valid():
                inp.cmd_valid, inp.last_group, inp.last_tile = True, job.last_group, job.last_tile
                inp.load_act, inp.cb_bank = job.load_act, bool(bank)
        self._skip_loadless()
        if self.act_job < self.accepted and self._valid():
            inp.act_valid, inp.act_word = True, int(self.jobs[self.act_job].act_words[self.act_i])
        if self.beat_job < self.accepted and self._valid():
            inp.w_valid, inp.w_beat = True, int(self.jobs[self.beat_job].beats[self.beat_i])
        # idle-cycle garbage on payloads must not matter
        rnd = lambda bits: int(self.rng.integers(0, 1 << min(bits, 62)))   # noqa: E731
        if not inp.w_valid:
            inp.w_beat = rnd(62) | (rnd(62) << 62)
        if not inp.act_valid:
            inp.act_word = rnd(62) | (rnd(62) << 62)
        if not inp.cmd_valid:
            inp.last_group, inp.last_tile = rnd(8), rnd(8)
            inp.load_act, inp.cb_bank = bool(rnd(1)), bool(rnd(1))
        if not inp.cb_valid:
            inp.cb_index, inp.cb_mantissa, inp.cb_shift = rnd(6), rnd(12), rnd(4)
        return inp

    def observe(self, inp: Inputs, out) -> None:
        get = (lambda n: out[n]) if isinstance(out, dict) else (lambda n: getattr(out, n))
        self.cycle += 1
        if inp.rst:
            if not self.done:
                self._restart()
            return
        if self.done:
            return
        if inp.cb_valid and get("cb_ready"):
            self.cb_i += 1
            if self.cb_i == layout.CODEBOOK_SIZE:
                self.phase = "cmd"
        if inp.cmd_valid and get("cmd_ready"):
            self.accepted += 1
            self._next(self.send + 1)
        if inp.act_valid and get("act_ready"):
            self.act_i += 1
        if inp.w_valid and get("w_ready"):
            self.beat_i += 1
            if self.beat_i == len(self.jobs[self.beat_job].beats):
                self.beat_job, self.beat_i = self.beat_job + 1, 0
        if get("res_valid") and inp.res_ready:
            last = bool(get("res_last"))
            self.results[self.job].append((int(get("res_vector")), tuple(get("res_acc")), last))
            if last:
                self.job += 1


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
