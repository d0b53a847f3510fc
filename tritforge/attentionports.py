"""The attention unit's port set (hw/attention.py; hw/ATTENTION.md says what each port means).

Plain Python, like the engine's (``tritforge.ports``), from which the Amaranth signature
(``hw.signature.members``) and the tests' payloads are made.

* ``cmd``  (in): one job, ``keys`` = the context N (keys 0..N-1, the query at position N-1).
* ``q``    (in): the group's query heads in order, each ``beats`` beats of ``lanes`` int8
  elements; ``m``/``e`` (the head's step m · 2^-e) are read on a head's first beat.
* ``kv``   (in): per block of keys, the block's K rows then its V rows, each row ``beats``
  beats of int8 elements with the row's step on its first beat — the order in which a
  memory controller streams one KV head's cache (hw/ATTENTION.md, "KV stream").
* ``out``  (out): the group's heads in order, ``beats`` beats each of ``lanes`` fixed-point
  elements (FR fraction bits, ``resid_bits`` wide); ``last`` on the job's final beat.
* ``err``, ``busy``: flags.
"""
from __future__ import annotations

from .attentionunit import AttentionUnitConfig
from .vectorports import row_beat_fields
from .ports import IN, OUT, Field, Port


def row_fields(ucfg: AttentionUnitConfig) -> tuple[Field, ...]:
    """A beat of an int8 row with its step: ``elems``, ``m``, ``e``."""
    return row_beat_fields(ucfg.lanes, ucfg.attention.scale_bits)


def attention_ports(ucfg: AttentionUnitConfig) -> tuple[Port, ...]:
    return (
        Port("cmd", IN, (Field("keys", ucfg.keys_bits),)),
        Port("q", IN, row_fields(ucfg)),
        Port("kv", IN, row_fields(ucfg)),
        Port("out", OUT, (Field("elems", ucfg.vector.resid_bits, signed=True, count=ucfg.lanes),
                          Field("last", 1, flag=True))),
        Port("err", OUT, (Field("err", 1, flag=True),), stream=False),
        Port("busy", OUT, (Field("busy", 1, flag=True),), stream=False),
    )
