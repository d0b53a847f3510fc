"""Verification IP of the generated GEMV engine: cocotb drivers, monitors, scoreboard.

For benches of the Verilog ``tritforge generate`` writes, on any simulator cocotb runs:

* :mod:`.stalls` — :class:`Stall`, the one seeded idle / back-pressure generator;
* :mod:`.streams` — :class:`StreamSource` / :class:`StreamSink` for Amaranth-style
  ``<port>__payload/__valid/__ready`` ports and :class:`Bench`, the cycle loop (drive at
  the falling edge, sample in ReadOnly);
* :mod:`.payloads` — :class:`Payload`: port payloads packed by the sidecar's fields;
* :mod:`.engine` — :class:`EngineBfm`: codebook, commands, activation words, weight beats,
  result beats, resets;
* :mod:`.scoreboard` — :class:`Scoreboard`: result beats against ``codec.golden``, cycle
  counts against ``sim.fastmodel``;
* :mod:`.model` — :class:`ModelChecker`: ``sim.stepmodel`` compared with the RTL every cycle;
* :mod:`.bench_engine` — the engine bench ``tritforge run --rtl-sample`` and the tests play
  (a cocotb test module; import it only inside a simulation).

It reads the engine's layout from the sidecar JSON only and imports neither Amaranth nor
the RTL's Python modules; it is the part of ``tritforge.hw`` that imports ``sim`` (the
cycle models it checks the RTL against).
"""
from .engine import CaseRun, CommandRun, EngineBfm
from .model import ModelChecker, ModelMismatch
from .payloads import Payload, load_sidecar, sidecar_payloads
from .scoreboard import ResultBeat, Scoreboard, ScoreboardError
from ...stalls import Stall, stalls_for
from .streams import Bench, StreamSink, StreamSource

__all__ = ["Bench", "CaseRun", "CommandRun", "EngineBfm", "ModelChecker", "ModelMismatch",
           "Payload", "ResultBeat", "Scoreboard", "ScoreboardError", "Stall", "StreamSink",
           "StreamSource", "load_sidecar", "sidecar_payloads", "stalls_for"]
