"""Amaranth components of the accelerator (one per file) and the Verilog export.

``engine.GemvEngine`` (the top of hw/ENGINE.md) is wiring of: ``control.CommandControl``
(command latch, start, LOAD, end), ``issue.IssueStage`` (beat acceptance, the issue
register, ``w.ready``), ``errcheck.InvalidByteCheck`` (the sticky ``err``), and the
datapath: ``actbuffer`` and ``actmultiples.ActMultiples`` (the shared +-3**i x) beside
``decoder.TritDecoder`` (packed beat -> trit planes, scale indices), ``groupdot.GroupDot``
(R x 16 lanes x d planes, multiply-free), ``scalemac.ScaleMac`` (``codebookram``, one
multiply per group on ``multiplier``, exact shift, row accumulators, and
``resultfifo.ResultFifo``, which owns the one global advance). ``replica`` is the one
mechanism for cycle-neutral fan-out; ``signature`` the Amaranth form of the port set
(``tritforge.ports``). ``verilog`` writes Verilog + JSON sidecar, ``simdriver`` runs the
engine and stream blocks under Amaranth's simulator. These import ``codec`` and the core
package, never ``sim``; ``verif`` (the cocotb verification IP) checks the RTL against the
models and so imports ``sim``.
"""
