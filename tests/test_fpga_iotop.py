"""The registered-I/O synthesis harness (fpga/iotop.py) and the replicated flip-flops it
measures (hw/replica.py): fast structural checks; the place-and-route figures are
`make test-synth`'s."""
from amaranth.back import rtlil
from amaranth.sim import Simulator

from tritforge.fpga import synth
from tritforge.fpga.iotop import IoTop, fold_levels
from tritforge.hw.engine import ADV_OWN_COPIES
from tritforge.hw.replica import KEEP_PREFIX
from tritforge.hwconfig import HwConfig


def test_fold_levels():
    assert [fold_levels(n) for n in (1, 2, 4, 5, 16, 17, 300)] == [0, 1, 1, 2, 2, 3, 5]


def test_replicas_are_modules_the_flow_keeps_apart():
    text = rtlil.convert(IoTop(HwConfig(depth=2, rows=2)), name="top", emit_src=False)
    kept = [ln.split()[1] for ln in text.splitlines()
            if ln.startswith("module ") and f".{KEEP_PREFIX}" in ln]
    # the advance: copies of its next value in the scale MAC (the engine's own, then one per
    # row for the decoder's and one per row for the group dot's), 4 copies in the engine,
    # one per row in the scale MAC; w.ready; ld_done; the read pointer (per row + 1)
    def copies(parent):
        return len([k for k in kept if k.startswith(f"\\top.engine.{parent}_copies.{KEEP_PREFIX}")])
    assert copies("mac.fifo.adv2") == ADV_OWN_COPIES + 2 * 2
    assert copies("advance") == 4 and copies("mac.adv_row") == 2
    assert copies("mac.fifo.rp") == 3
    assert copies("issue.w_ready") == 2 and copies("control.ld_done") == 1
    script = synth.yosys_script(synth.target("ecp5-85f"), ("engine",))
    assert f"setattr -mod -set keep_hierarchy 1 *.{KEEP_PREFIX}*" in script.splitlines()


def test_so_is_the_parity_of_the_outputs_delayed():
    """``so`` = XOR of every engine output bit, ``1 + fold_levels`` cycles later (the output
    register, then one register per fold level), with random bits shifted in on ``si``
    (one pin per input chain: chains from one pin would be identical)."""
    import random

    from amaranth import Cat, Value

    top = IoTop(HwConfig(depth=1, rows=1, max_in_features=64, max_out_features=8))
    eng = top.engine
    outs = Cat(eng.cmd.ready, eng.cb.ready, eng.act.ready, eng.w.ready, eng.res.valid,
               Value.cast(eng.res.payload), eng.err, eng.busy)
    delay = 1 + fold_levels(len(outs))
    rng = random.Random(5)
    parity, so = [], []

    async def bench(ctx):
        for _ in range(300):
            ctx.set(top.si, rng.getrandbits(len(top.si)))
            parity.append(bin(ctx.get(outs)).count("1") & 1)
            so.append(ctx.get(top.so))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(parity[50:])) == 2                  # the outputs do change
    assert so[delay:] == parity[:-delay]
