"""A registered reduction tree: a wide value folded a few bits at a time, with a register
after every level, so each level is one LUT deep (the engine's invalid-byte check, the
synthesis harness's output fold)."""
from amaranth.hdl import Module, Signal

from ..hwconfig import fold_levels


def fold_registered(m: Module, value, fold: int, op: str, name: str, until: int = 1):
    """Fold ``value`` ``fold`` bits at a time with ``op`` ("any" or "xor") into registers,
    level by level, until at most ``until`` bits are left; returns the last level."""
    level = value
    for n in range(1, fold_levels(len(value), fold, until) + 1):
        nxt = Signal(-(-len(level) // fold), name=f"{name}{n}")
        m.d.sync += [nxt[i].eq(getattr(level[fold * i:fold * i + fold], op)())
                     for i in range(len(nxt))]
        level = nxt
    return level
