"""Model checker: the per-cycle stepping model (``sim.stepmodel``) beside the RTL.

Every cycle, in the ReadOnly phase, :class:`ModelChecker` feeds ``StepModel`` exactly what
the bench drives into the engine in that cycle (the reset, each stream's valid and
payload, ``res.ready``) and compares every output the model gives for the cycle with the
RTL's: every ``ready``, ``res.valid``, ``err``, ``busy`` and, when both are valid, the
``res`` payload (accumulators, vector, last). hw/ENGINE.md "Timing" is the contract both
follow; the first difference fails the bench with the cycle and the differing values.
"""
from __future__ import annotations

from ...hwconfig import HwConfig
from ...sim.stepmodel import Inputs, StepModel


class ModelMismatch(AssertionError):
    pass


class ModelChecker:
    """Compares ``StepModel(cfg)`` with the RTL bound to an :class:`~.engine.EngineBfm`."""

    OUTPUTS = ("cmd_ready", "cb_ready", "act_ready", "w_ready", "res_valid", "err", "busy")

    def __init__(self, bfm):
        self.bfm = bfm
        self.cfg: HwConfig = bfm.cfg
        self.model = StepModel(self.cfg)
        self.cycles = 0                 #: cycles compared
        bfm.bench.observers.append(self.check)

    def inputs(self) -> Inputs:
        """What the bench drives in the current cycle, as the model's ``Inputs``."""
        b, pay = self.bfm, self.bfm.payloads
        inp = Inputs(rst=b.bench.rst_now, res_ready=b.res.taking)
        if b.cmd.offered is not None:
            c = pay["cmd"].unpack(b.cmd.offered)
            inp.cmd_valid, inp.last_group, inp.last_tile = True, c["last_group"], c["last_tile"]
            inp.load_act, inp.cb_bank = bool(c["load_act"]), bool(c["cb_bank"])
        if b.cb.offered is not None:
            c = pay["cb"].unpack(b.cb.offered)
            inp.cb_valid, inp.cb_index = True, c["index"]
            inp.cb_mantissa, inp.cb_shift = c["mantissa"], c["shift"]
        if b.act.offered is not None:
            inp.act_valid, inp.act_word = True, b.act.offered
        if b.w.offered is not None:
            inp.w_valid, inp.w_beat = True, b.w.offered
        return inp

    def check(self, cycle: int) -> None:
        dut = self.bfm.dut
        want = self.model.step(self.inputs())
        got = {"cmd_ready": dut.cmd__ready, "cb_ready": dut.cb__ready, "act_ready": dut.act__ready,
               "w_ready": dut.w__ready, "res_valid": dut.res__valid, "err": dut.err, "busy": dut.busy}
        got = {k: int(h.value) for k, h in got.items()}
        exp = {k: int(getattr(want, k)) for k in self.OUTPUTS}
        if got["res_valid"] and exp["res_valid"]:
            r = self.bfm.payloads["res"].unpack(int(dut.res__payload.value))
            got["res"] = (r["acc"], r["vector"], r["last"])
            exp["res"] = (tuple(int(a) for a in want.res_acc), int(want.res_vector), int(want.res_last))
        self.cycles += 1
        if got != exp:
            diff = {k: {"rtl": got.get(k), "model": exp.get(k)} for k in sorted(set(got) | set(exp))
                    if got.get(k) != exp.get(k)}
            raise ModelMismatch(f"cycle {cycle}: RTL differs from the stepping model: {diff}")
