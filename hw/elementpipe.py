"""The vector unit's element pipelines: a chain of register stages that all advance together.

A pipeline of ``stages`` registers ends in an output stream ``o``; stage k's registers hold
the element whose valid bit ``valid[k]`` is set. The whole chain advances (``adv``, every
stage register's clock enable) when its last stage is empty or being taken,
``adv = ~o.valid | o.ready``; then ``valid[0]`` loads the element entering this cycle and
every other valid bit its predecessor's. So the pipeline takes one element per cycle while
its output is ready, holds every stage (bubbles too) while it is not, and the element
entering in cycle t is on ``o`` in cycle t + stages. ``adv`` is a combinational function of
``o.ready`` (it is the input's ready): a consumer's ready reaches the stage enables in the
same cycle, the price of a pipeline without skid buffers (hw/VECTOR.md, "Synthesis",
says where the enable's fan-out shows).

``CreditFifo`` is the other discipline, for a pipeline whose consumer's ready must not
reach its stages (hw/VECTOR.md, "Timing"): the registers run free (no enable), the last
stage is an entry of a small FIFO, and an element issues into the first stage only while
the pipeline holds a credit (a FIFO entry no element in flight or stored has claimed). The
consumer's ready moves only the FIFO's read pointer and the credit count; the issue is a
function of registers. Without stalls an element issued in cycle t is on ``o`` in cycle t +
stages, as in ``advance``'s pipeline of as many stages.

A beat carries ``lanes`` elements (``tritforge.vectorports.lane_field``): ``lane`` picks
one lane's element, so a unit builds its element datapath once per lane, all lanes
advancing together.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..vectortiming import CREDIT_FIFO_DEPTH


def advance(m, o, entering, stages: int, name: str):
    """The valid bits and the advance of a ``stages``-register pipeline that ends in
    stream ``o`` (its ``o.valid`` is driven here); ``entering``: an element enters this
    cycle if ``adv`` is high. Returns ``(adv, valid)``."""
    valid = Signal(stages, name=f"{name}_valid")
    adv = Signal(name=f"{name}_adv")
    m.d.comb += [adv.eq(~valid[-1] | o.ready), o.valid.eq(valid[-1])]
    with m.If(adv):
        m.d.sync += valid.eq(Cat(entering, valid[:-1]))
    return adv, valid


class CreditFifo(wiring.Component):
    """The end of a credit pipeline of ``stages`` registers: the caller's ``stages`` - 1
    free-running registers, then this FIFO of ``depth`` entries (a LUT memory written from
    the last register stage, read asynchronously at its read pointer), whose entry is the
    last stage.

    Ports: ``req`` (in: an element would issue), ``can`` (out: a credit is held, a
    register), ``issue`` (out: ``req`` and ``can``; the first stage loads the element), ``w_en`` / ``w_data`` (in: the element the
    last register stage holds, with its valid bit), ``o`` (the oldest stored element),
    ``idle`` (out: no element issued and not yet taken, i.e. the pipeline and the FIFO
    empty), with ``can_next=True`` also ``can_next`` (out: ``can`` in the next cycle, for a
    caller's register that must equal ``can`` and a condition of its own), with
    ``idle_next=True`` also ``idle_next`` (out: ``idle`` in the next cycle if no element
    issues in this one). The credit count is ``depth`` minus the elements issued and not yet taken; an
    element taken in cycle t returns its credit at the edge, so at full rate an element
    holds one from its issue cycle t to t + stages, and ``depth`` >= stages + 1 never stalls
    the issue (``vectortiming.CREDIT_FIFO_DEPTH``). ``issue`` is ``req`` and a register;
    ``o.valid`` and ``idle`` are registers."""

    def __init__(self, width: int, stages: int, depth: int = CREDIT_FIFO_DEPTH, *, can_next: bool = False,
                 idle_next: bool = False):
        if depth & (depth - 1) or depth < stages + 1:
            raise ValueError(f"CreditFifo depth {depth}: a power of 2 of at least stages + 1 = {stages + 1}")
        self.width, self.stages, self.depth = width, stages, depth
        super().__init__({"req": In(1), "can": Out(1), "issue": Out(1), "w_en": In(1), "w_data": In(width),
                          "o": Out(stream.Signature(width)), "idle": Out(1),
                          **({"can_next": Out(1)} if can_next else {}),
                          **({"idle_next": Out(1)} if idle_next else {})})

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        m.submodules.mem = mem = Memory(shape=self.width, depth=D, init=[])
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        wptr, rptr = Signal(range(D)), Signal(range(D))
        # the stored elements and the credits as thermometer codes (bit k: more than k), so
        # whether there is one is a register and a step is one LUT per bit, no carry chain
        count = Signal(D)
        credit = Signal(D, init=(1 << D) - 1)
        take = Signal()
        m.d.comb += [take.eq(count[0] & self.o.ready), self.can.eq(credit[0]),
                     self.issue.eq(self.req & credit[0]),
                     self.o.valid.eq(count[0]), self.idle.eq(credit[-1]),
                     wp.en.eq(self.w_en), wp.addr.eq(wptr), wp.data.eq(self.w_data),
                     rp.addr.eq(rptr), self.o.payload.eq(rp.data)]
        _thermometer(m, count, self.w_en, take)
        _thermometer(m, credit, take, self.issue)
        if hasattr(self, "can_next"):
            m.d.comb += self.can_next.eq(Mux(take ^ self.issue, take | credit[1], credit[0]))
        if hasattr(self, "idle_next"):
            m.d.comb += self.idle_next.eq(credit[-1] | credit[-2] & take)
        with m.If(self.w_en):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(take):
            m.d.sync += rptr.eq(rptr + 1)
        return m


def _thermometer(m, code, inc, dec):
    """A counter kept as a thermometer code (bit k set: the count exceeds k), one step up
    for ``inc``, down for ``dec``, none for both: the step's enable is ``inc ^ dec`` and
    each bit's next value a LUT of ``inc`` and its neighbours."""
    with m.If(inc ^ dec):
        m.d.sync += code.eq(Mux(inc, Cat(1, code[:-1]), code[1:]))


def credit_valid(m, issue, stages: int, name: str):
    """The valid bits of a credit pipeline's ``stages`` - 1 free-running registers
    (``CreditFifo``): bit 0 loads ``issue``; the last is the FIFO's write enable."""
    valid = Signal(stages - 1, name=f"{name}_valid")
    m.d.sync += valid.eq(Cat(issue, valid[:-1]))
    return valid


def delay(m, adv, value, stages: int, name: str):
    """``value`` carried through ``stages`` registers enabled by ``adv``; the last one."""
    out = value
    for k in range(stages):
        reg = Signal.like(value, name=f"{name}_d{k}") if isinstance(value, Signal) else \
            Signal(value.shape(), name=f"{name}_d{k}")
        with m.If(adv):
            m.d.sync += reg.eq(out)
        out = reg
    return out


def lane(field, k: int):
    """Lane k of a beat's element field: the field itself for one lane (a plain value),
    element k of the array for more (``tritforge.vectorports.lane_field``)."""
    if isinstance(field, data.View) and isinstance(field.shape(), data.ArrayLayout):
        return field[k]
    if k:
        raise IndexError(f"lane {k} of a one-lane field")
    return field


def check_lanes(owner: str, lanes: int, n: int | None = None, what: str = "n") -> int:
    """``lanes`` >= 1 (``TypeError`` / ``ValueError``), dividing ``n`` when given."""
    if not isinstance(lanes, int) or isinstance(lanes, bool):
        raise TypeError(f"{owner} lanes must be an integer, not {lanes!r}")
    if lanes < 1:
        raise ValueError(f"{owner} lanes must be at least 1, not {lanes}")
    if n is not None and n % lanes:
        raise ValueError(f"{owner} lanes={lanes} must divide {what}={n}")
    return lanes
