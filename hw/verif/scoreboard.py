"""Scoreboard: the engine's result beats against ``codec.golden``, cycles against ``sim.fastmodel``.

One command of T vectors through a matrix of ``tiles`` tiles returns ``tiles * T`` result
beats, tile-major then vector (hw/ENGINE.md): beat ``t*T + v`` holds rows ``t*R .. t*R+R-1``
of vector ``v``, ``vector = v``, and ``last`` on the final beat only. Rows past the
matrix's ``out_features`` and vectors past the ones sent read 0. :meth:`Scoreboard.expect`
builds those beats from the golden accumulators (``codec.golden.accumulators``, as a
vector set stores them), :meth:`Scoreboard.check` compares what the engine returned and
names the first wrong beat (tile, vector), every wrong row in it, expected and got.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...hwconfig import HwConfig
from ...sim import fastmodel


@dataclass(frozen=True)
class ResultBeat:
    """One result beat as the engine returned it (or as the scoreboard expects it)."""

    acc: tuple          #: R signed accumulators
    vector: int
    last: bool
    cycle: int = -1     #: bench cycle in which it was accepted (-1: expected beat)

    def fields(self) -> tuple:
        return (tuple(int(a) for a in self.acc), int(self.vector), bool(self.last))


class ScoreboardError(AssertionError):
    pass


class Scoreboard:
    """Expected result beats and cycle counts of engine commands for one ``HwConfig``."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.commands = 0          #: commands checked
        self.beats = 0             #: result beats checked

    def expect(self, expected: np.ndarray, tiles: int) -> list[ResultBeat]:
        """Result beats of one command from the golden accumulators ``expected`` (n <= T, out)."""
        T, R = self.cfg.vectors, self.cfg.rows
        expected = np.asarray(expected)
        n, out = expected.shape
        if n > T or out > tiles * R:
            raise ValueError(f"accumulators {expected.shape}: more than T={T} vectors or "
                             f"{tiles} tiles of R={R} rows")
        full = np.zeros((T, tiles * R), dtype=object)
        full[:n, :out] = expected
        return [ResultBeat(tuple(int(a) for a in full[v, t * R:(t + 1) * R]), v,
                           t == tiles - 1 and v == T - 1)
                for t in range(tiles) for v in range(T)]

    def check(self, what: str, got: list[ResultBeat], want: list[ResultBeat]) -> None:
        """Fail with the first wrong beat: its tile and vector, each wrong row, expected vs got."""
        T, R = self.cfg.vectors, self.cfg.rows
        for i, (g, e) in enumerate(zip(got, want)):
            if g.fields() == e.fields():
                continue
            tile, v = divmod(i, T)
            parts = []
            for r, (ga, ea) in enumerate(zip(g.fields()[0], e.fields()[0])):
                if ga != ea:
                    parts.append(f"row {tile * R + r} (lane {r}): expected {ea}, got {ga}")
            if g.vector != e.vector:
                parts.append(f"vector field: expected {e.vector}, got {g.vector}")
            if bool(g.last) != bool(e.last):
                parts.append(f"last: expected {int(e.last)}, got {int(g.last)}")
            at = f" (accepted in cycle {g.cycle})" if g.cycle >= 0 else ""
            raise ScoreboardError(f"{what}: result beat {i} (tile {tile}, vector {v}){at}: "
                                  + "; ".join(parts))
        if len(got) != len(want):
            raise ScoreboardError(f"{what}: {len(got)} result beats, expected {len(want)}")
        self.commands += 1
        self.beats += len(got)

    def check_command(self, what: str, got: list[ResultBeat], expected: np.ndarray,
                      tiles: int) -> None:
        self.check(what, got, self.expect(expected, tiles))

    def expected_cycles(self, out_features: int, in_features: int, n_vectors: int,
                        load_act: bool = True) -> int:
        """The cycle model's count (``sim.fastmodel.run_cycles``: the commands back to back,
        as ``EngineBfm.run_case`` plays them) for n vectors, no stalls."""
        return fastmodel.run_cycles(self.cfg, out_features, in_features, n_vectors, load_act)

    def check_cycles(self, what: str, got: int, want: int) -> None:
        if got != want:
            raise ScoreboardError(f"{what}: {got} cycles on the RTL, the cycle model says {want} "
                                  f"(no stalls; {got - want:+d})")

    def check_case(self, case, run, cycles: bool = False) -> None:
        """Every command of a played ``codec.vectors.VectorCase`` (``EngineBfm.run_case``)
        against its golden accumulators; with ``cycles`` (a run without stalls) the total
        against the cycle model's count (and the count stored in the case, if any)."""
        T = self.cfg.vectors
        n = case.xq.shape[0]
        if len(run.commands) != -(-n // T):
            raise ScoreboardError(f"case {case.name}: {len(run.commands)} commands played, "
                                  f"{n} vectors need {-(-n // T)}")
        for i, cmd in enumerate(run.commands):
            self.check_command(f"case {case.name}, command {i}", cmd.beats,
                               case.expected[i * T:(i + 1) * T], case.tiles)
        if cycles:
            want = self.expected_cycles(case.out_features, case.tensor.in_padded, n)
            if case.cycles is not None and case.cycles != want:
                raise ScoreboardError(f"case {case.name}: stores {case.cycles} cycles, the cycle "
                                      f"model says {want}")
            self.check_cycles(f"case {case.name}", run.cycles, want)
