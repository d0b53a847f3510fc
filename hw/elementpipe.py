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

A beat carries ``lanes`` elements (``tritforge.vectorports.lane_field``): ``lane`` picks
one lane's element, so a unit builds its element datapath once per lane, all lanes
advancing together.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Signal
from amaranth.lib import data


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
