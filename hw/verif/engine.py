"""Bus-functional model of the GEMV engine's ports (hw/ENGINE.md), bound by the sidecar.

:class:`EngineBfm` drives the generated Verilog (``tritforge generate``: ``<top>.v`` with
``<top>.json``) from a cocotb test: it binds the five streams (``cmd``, ``cb``, ``act``,
``w`` in; ``res`` out) and the ``err``/``busy`` flags by their Verilog names, packs every
payload by the sidecar's field positions, and plays the host side of the contract:

* :meth:`load_codebook` writes the 27 entries (``cb`` stream) while the engine is idle;
* :meth:`command` sends one command with its activation words (``T*ng``, vector-major,
  ``codec.layout.pack_activation_group``) and weight beats (``tiles*ng``, tile-major,
  ``codec.layout.stream_beats``), collects its result beats up to ``last`` and waits until
  the engine is idle (``busy`` low), so :attr:`CommandRun.cycles` is the command's cost
  on an idle engine (``sim.fastmodel.command_cycles``): one command at a time;
* :meth:`stream` plays commands back to back (hw/ENGINE.md "Back to back"): each codebook
  into the other bank once the commands that read that bank before have all their
  results, every command queued as soon as the one before it was accepted, activation
  words and beats queued at once (the engine takes them when it is ready);
* :meth:`run_case` plays a ``codec.vectors.VectorCase``: its codebook, then one command
  per T vectors (the last padded with zero vectors), back to back, so
  :attr:`CaseRun.cycles` (first accept to ``busy`` low) is ``sim.fastmodel.run_cycles``;
* :meth:`reset` (before the first command) and :meth:`reset_now` (a synchronous reset at
  any cycle, queued input dropped), :meth:`flags` (the engine's status outputs now).

Stalls (``{"idle": p, "bp": p, "burst": n}``, :mod:`.stalls`) make the sources idle and
``res`` back-pressure at random; ``model=True`` adds the per-cycle comparison with the
stepping model (:class:`~.model.ModelChecker`). Results are checked by a
:class:`~.scoreboard.Scoreboard`; the BFM itself only moves data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ...hwconfig import HwConfig
from .model import ModelChecker
from .payloads import load_sidecar, sidecar_payloads
from .scoreboard import ResultBeat
from ...stalls import check_stalls, stalls_for
from .streams import Bench

SOURCES = ("cmd", "cb", "act", "w")
SINKS = ("res",)


@dataclass
class CommandRun:
    """What one command did on the engine."""

    beats: list[ResultBeat]      #: result beats in order (the last one has ``last``)
    accept: int                  #: bench cycle the command was accepted in
    cycles: int                  #: accept to the next cycle ``busy`` is low


@dataclass
class CaseRun:
    """The commands of one vector case, played back to back."""

    name: str
    commands: list[CommandRun] = field(default_factory=list)
    cycles: int = 0              #: the first accept to the cycle ``busy`` is low


@dataclass
class StreamJob:
    """One command of :meth:`EngineBfm.stream`: ``codebook`` the 27 ``(entry, mantissa,
    left_shift)`` to write for it (into the other bank), or None to read the bank of the
    command before it."""

    groups: int
    tiles: int
    load_act: bool
    act_words: list
    beats: list
    codebook: list | None = None


class EngineBfm:
    """The host side of the engine's ports for a cocotb test (``dut``: the engine's top)."""

    def __init__(self, dut, sidecar, *, stalls: dict | None = None, seed: int = 0,
                 model: bool = False, period_ns: int = 10):
        self.dut = dut
        self.sidecar = load_sidecar(sidecar)
        self.cfg = HwConfig.from_dict(self.sidecar["hwconfig"])
        self.payloads = sidecar_payloads(self.sidecar)
        self.bench = Bench(dut, period_ns)
        self.cmd = self.bench.source("cmd")
        self.cb = self.bench.source("cb")
        self.act = self.bench.source("act")
        self.w = self.bench.source("w")
        self.res = self.bench.sink("res")
        self.stalls: dict = {}
        self.set_stalls(stalls, seed)
        self.checker = ModelChecker(self) if model else None

    # --- set-up --------------------------------------------------------------------------
    def set_stalls(self, stalls: dict | None, seed: int = 0) -> None:
        """Idle / back-pressure from now on: ``{"idle": p, "bp": p, "burst": n}``, seeded."""
        self.stalls = check_stalls(stalls)
        gens = stalls_for(self.stalls, seed, SOURCES, SINKS)
        for name in SOURCES:
            getattr(self, name).idle = gens[name]
        self.res.backpressure = gens["res"]

    @property
    def quiet(self) -> bool:
        """No stalls: cycle counts are the cycle model's."""
        return not (self.stalls["idle"] or self.stalls["bp"])

    async def reset(self, cycles: int = 2) -> None:
        """The reset before the first command (outside the cycle loop)."""
        await self.bench.reset(cycles)

    async def reset_now(self, cycles: int = 1) -> None:
        """A synchronous reset of ``cycles`` cycles from the next cycle on, in the cycle loop
        (the model checker sees it too); every queued input is dropped."""
        for s in (self.cmd, self.cb, self.act, self.w):
            s.flush()
        self.bench.rst_pending = cycles
        while self.bench.rst_pending:
            await self.bench.step()

    def flags(self) -> dict:
        """The engine's status outputs in the current cycle."""
        d = self.dut
        return {"busy": int(d.busy.value), "err": int(d.err.value), "cmd_ready": int(d.cmd__ready.value),
                "act_ready": int(d.act__ready.value), "w_ready": int(d.w__ready.value),
                "res_valid": int(d.res__valid.value)}

    # --- payloads --------------------------------------------------------------------------
    def cmd_word(self, groups: int, tiles: int, load_act: bool = True, cb_bank: int = 0) -> int:
        if not 1 <= groups <= self.cfg.max_groups or not 1 <= tiles <= self.cfg.tiles_max:
            raise ValueError(f"command of {groups} groups x {tiles} tiles: the engine takes "
                             f"1..{self.cfg.max_groups} groups and 1..{self.cfg.tiles_max} tiles")
        return self.payloads["cmd"].pack({"last_group": groups - 1, "last_tile": tiles - 1,
                                          "load_act": int(bool(load_act)), "cb_bank": int(cb_bank)})

    def cb_words(self, entries) -> list[int]:
        """``cb`` payloads of ``(index, mantissa, left_shift)`` entries."""
        return [self.payloads["cb"].pack({"index": i, "mantissa": m, "shift": s})
                for i, m, s in entries]

    def result(self, word: int, cycle: int = -1) -> ResultBeat:
        r = self.payloads["res"].unpack(word)
        return ResultBeat(r["acc"], r["vector"], bool(r["last"]), cycle)

    # --- transactions -----------------------------------------------------------------------
    async def load_codebook(self, entries) -> None:
        """Write codebook entries ``(index, mantissa, left_shift)``; returns when all are taken."""
        words = self.cb_words(entries)
        self.cb.send(words)
        await self.bench.run_until(lambda: not self.cb.queue, 100 + 100 * len(words), "codebook load")

    async def command(self, groups: int, tiles: int, *, load_act: bool = True, act_words=(),
                      beats=(), limit: int | None = None) -> CommandRun:
        """One command: ``T*groups`` activation words (with ``load_act``), ``tiles*groups``
        weight beats; returns its result beats, accept cycle and cycle count."""
        T = self.cfg.vectors
        act_words, beats = list(act_words), list(beats)
        if load_act and len(act_words) != T * groups:
            raise ValueError(f"{len(act_words)} activation words, the command loads T*ng = {T * groups}")
        if not load_act and act_words:
            raise ValueError("activation words given to a command without load_act")
        if len(beats) != tiles * groups:
            raise ValueError(f"{len(beats)} weight beats, the command takes tiles*ng = {tiles * groups}")
        first_res, first_acc = len(self.res.items), len(self.cmd.accepted)
        self.cmd.send([self.cmd_word(groups, tiles, load_act)])
        self.act.send(act_words)
        self.w.send(beats)
        if limit is None:
            limit = 50 * (tiles * T + tiles * groups * T + T * groups) + 1000
        await self.bench.run_until(
            lambda: len(self.res.items) > first_res and self.result(self.res.items[-1][1]).last,
            limit, "command")
        got = [self.result(w, c) for c, w in list(self.res.items)[first_res:]]
        if self.w.queue or self.act.queue:
            raise AssertionError(f"command finished with {len(self.act.queue)} activation words "
                                 f"and {len(self.w.queue)} weight beats not taken")
        accept = self.cmd.accepted[first_acc]
        await self.bench.run_until(lambda: int(self.dut.busy.value) == 0, 100, "back to idle")
        return CommandRun(got, accept, self.bench.cycle - 1 - accept)

    async def stream(self, jobs: list[StreamJob], limit: int | None = None) -> tuple[list, int]:
        """Commands back to back (module docstring). Returns their runs (``cycles``: accept
        to the cycle the next one was accepted, or for the last to ``busy`` low) and the
        cycles from the first accept to ``busy`` low."""
        T = self.cfg.vectors
        if limit is None:
            limit = 1000 + 50 * sum(j.tiles * j.groups * T + T * j.groups + j.tiles * T for j in jobs)
        first_res, first_acc = len(self.res.items), len(self.cmd.accepted)
        seen = [first_res, 0]          # result beats looked at, the last ones among them

        def lasts() -> int:
            """Commands of the stream with their last result beat in (new beats only)."""
            for _, w in itertools.islice(self.res.items, seen[0], None):
                seen[1] += self.result(w).last
            seen[0] = len(self.res.items)
            return seen[1]

        banks, book_last = [], []        # per job its bank; per codebook its last job
        start = self.bench.cycle
        for j, job in enumerate(jobs):
            if len(job.beats) != job.tiles * job.groups or (
                    len(job.act_words) != (T * job.groups if job.load_act else 0)):
                raise ValueError(f"stream job {j}: {len(job.act_words)} activation words and "
                                 f"{len(job.beats)} beats for {job.groups} groups x {job.tiles} tiles")
            if job.codebook is not None or not banks:
                if job.codebook is None:
                    raise ValueError("the first command of a stream needs a codebook")
                if len(book_last) >= 2:      # the bank's last reader has all its results
                    wait = book_last[-2]
                    await self.bench.run_until(lambda: lasts() > wait, limit, "codebook bank free")
                bank = len(book_last) % 2
                book_last.append(j)
                self.cb.send(self.cb_words([(32 * bank + e, m, sh) for e, m, sh in job.codebook]))
                await self.bench.run_until(lambda: not self.cb.queue, limit, "codebook load")
            else:
                bank = banks[-1]
                book_last[-1] = j
            banks.append(bank)
            n_acc = len(self.cmd.accepted)
            self.cmd.send([self.cmd_word(job.groups, job.tiles, job.load_act, cb_bank=bank)])
            self.act.send(job.act_words)
            self.w.send(job.beats)
            await self.bench.run_until(lambda: len(self.cmd.accepted) > n_acc, limit, "command accept")
        await self.bench.run_until(lambda: lasts() == len(jobs), limit - (self.bench.cycle - start),
                                   "stream")
        await self.bench.run_until(lambda: int(self.dut.busy.value) == 0, 100, "back to idle")
        if self.w.queue or self.act.queue:
            raise AssertionError(f"stream finished with {len(self.act.queue)} activation words "
                                 f"and {len(self.w.queue)} weight beats not taken")
        got = [self.result(w, c) for c, w in list(self.res.items)[first_res:]]
        accepts = self.cmd.accepted[first_acc:] + [self.bench.cycle - 1]
        runs, k = [], 0
        for j in range(len(jobs)):
            end = next(i for i in range(k, len(got)) if got[i].last) + 1
            runs.append(CommandRun(got[k:end], accepts[j], accepts[j + 1] - accepts[j]))
            k = end
        return runs, self.bench.cycle - 1 - accepts[0]

    def case_jobs(self, case) -> list[StreamJob]:
        """A ``codec.vectors.VectorCase`` as stream jobs: one command per T vectors (the last
        padded with zero vectors), the first with the case's codebook."""
        T = self.cfg.vectors
        if case.rows != self.cfg.rows or case.tensor.depth != self.cfg.depth:
            raise ValueError(f"case {case.name}: written for d={case.tensor.depth} R={case.rows}, "
                             f"the engine is d={self.cfg.depth} R={self.cfg.rows}")
        beats = case.beat_words()
        jobs = []
        for c0 in range(0, case.xq.shape[0], T):
            x = np.zeros((T, case.tensor.in_padded), dtype=np.int8)
            blk = case.xq[c0:c0 + T]
            x[:blk.shape[0]] = blk
            jobs.append(StreamJob(case.groups, case.tiles, True, case.act_words(x), beats,
                                  case.codebook_words() if c0 == 0 else None))
        return jobs

    async def run_case(self, case) -> CaseRun:
        """Play a ``codec.vectors.VectorCase``: its codebook, then one command per T vectors,
        back to back."""
        runs, cycles = await self.stream(self.case_jobs(case))
        return CaseRun(case.name, runs, cycles)

