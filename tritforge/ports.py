"""The GEMV engine's port set: every port, its direction and its payload's fields.

``engine_ports(cfg)`` is the one description. From it come the Amaranth signature and
payload layouts (``hw.ports``), the stepping model's per-cycle records
(``sim.stepmodel.Inputs`` / ``Outputs``), the Amaranth simulator driver's payload values
(``hw.simdriver``) and the sidecar's port map (``hw.verilog``), which the verification IP
(``hw.verif``) and any integrator read. It is plain Python, so the models, which never
import Amaranth, read it too.

Streams are ``amaranth.lib.stream`` valid/ready ports: in Verilog ``<port>__payload``,
``<port>__valid``, ``<port>__ready``. A struct payload packs its fields in order from bit
0; an array field packs its elements in order, element i at ``offset + i * width``. Flags
are plain one-bit outputs. hw/ENGINE.md says what each port means.

Record names (the models' fields): ``<port>_valid``, ``<port>_ready``, and per payload
field ``<port>_<field>``; the command's fields keep their own names (``last_group``,
``last_tile``, ``load_act``, ``cb_bank``), a flag is its port's name.
"""
from __future__ import annotations

from dataclasses import dataclass

from .codec import layout
from .hwconfig import CODEBOOK_BANK_WORDS, HwConfig

IN, OUT = "in", "out"


@dataclass(frozen=True)
class Field:
    """One payload field: ``count`` elements (an array) or one value of ``width`` bits;
    ``flag``: a one-bit truth value (a ``bool`` in the models' records)."""

    name: str
    width: int
    signed: bool = False
    count: int | None = None
    flag: bool = False

    @property
    def bits(self) -> int:
        return self.width * (self.count or 1)


@dataclass(frozen=True)
class Port:
    """A stream (``stream``) with a payload of ``fields`` (a struct, or one plain word when
    ``word``), or a flag (one field, the flag's value). ``dir`` is the payload's direction."""

    name: str
    dir: str
    fields: tuple[Field, ...]
    stream: bool = True
    word: bool = False
    #: prefix of the fields' record names ("" for the command's own field names)
    prefix: str | None = None

    @property
    def width(self) -> int:
        return sum(f.bits for f in self.fields)

    def offsets(self) -> dict[str, int]:
        """Bit offset of every field in the payload."""
        out, at = {}, 0
        for f in self.fields:
            out[f.name] = at
            at += f.bits
        return out

    def record(self, f: Field) -> str:
        """The models' record name of field ``f``."""
        if not self.stream:
            return self.name
        prefix = f"{self.name}_" if self.prefix is None else self.prefix
        return prefix + f.name

    def pack(self, values: dict) -> int:
        """The payload word of ``values`` (field name -> int, or a sequence for an array)."""
        word = 0
        for f, at in zip(self.fields, self.offsets().values()):
            elems = values[f.name] if f.count else [values[f.name]]
            for i, v in enumerate(elems):
                word |= (int(v) & ((1 << f.width) - 1)) << (at + i * f.width)
        return word

    def unpack(self, word: int) -> dict:
        """Field name -> value (signed fields as signed ints, arrays as tuples)."""
        out = {}
        for f, at in zip(self.fields, self.offsets().values()):
            elems = []
            for i in range(f.count or 1):
                v = (int(word) >> (at + i * f.width)) & ((1 << f.width) - 1)
                if f.signed and v >> (f.width - 1):
                    v -= 1 << f.width
                elems.append(v)
            out[f.name] = tuple(elems) if f.count else elems[0]
        return out


def vector_bits(cfg: HwConfig) -> int:
    """Width of a vector number 0..T-1 (``ceil_log2(T + 1)``)."""
    return max(1, cfg.vectors.bit_length())


def bits_for(n: int) -> int:
    """Bits of a value 0..n-1, at least 1 so that no port is zero-width."""
    return max(1, (n - 1).bit_length())


def engine_ports(cfg: HwConfig, beat_bytes: int | None = None) -> tuple[Port, ...]:
    """The engine's ports in order; ``beat_bytes`` narrows ``w`` (an engine slice's window
    of the beat, ``codec.layout.beat_window``)."""
    beat_bytes = cfg.beat_bytes if beat_bytes is None else beat_bytes
    return (
        Port("cmd", IN, (Field("last_group", bits_for(cfg.max_groups)),
                         Field("last_tile", bits_for(cfg.tiles_max)),
                         Field("load_act", 1, flag=True),
                         Field("cb_bank", 1, flag=True)), prefix=""),
        Port("cb", IN, (Field("index", bits_for(2 * CODEBOOK_BANK_WORDS)), Field("mantissa", cfg.mant_bits),
                        Field("shift", cfg.shift_bits))),
        Port("act", IN, (Field("word", layout.ACT_WORD_BITS),), word=True),
        Port("w", IN, (Field("beat", 8 * beat_bytes),), word=True),
        Port("res", OUT, (Field("acc", cfg.widths.acc, signed=True, count=cfg.rows),
                          Field("vector", vector_bits(cfg)), Field("last", 1, flag=True))),
        Port("err", OUT, (Field("err", 1, flag=True),), stream=False),
        Port("busy", OUT, (Field("busy", 1, flag=True),), stream=False),
    )


def array_ports(cfg: HwConfig) -> tuple[Port, ...]:
    """The ports of an array of engines (``cfg.organisation == "array"``, hw/engine_array.py):
    the engine's ``cmd``, ``cb`` and ``act`` (broadcast to every engine), then per engine
    ``e`` of ``cfg.slices`` its own weight stream ``w<e>`` (the beats of its rows, packed
    as an engine of its rows packs them) and result stream ``res<e>`` (its rows), then
    ``err`` and ``busy`` (any engine's)."""
    shared = {p.name: p for p in engine_ports(cfg)}
    per = [engine_ports(cfg.slice_config(rows)) for _, rows in cfg.slices]
    return ((shared["cmd"], shared["cb"], shared["act"])
            + tuple(Port(f"w{e}", IN, p[3].fields, word=True) for e, p in enumerate(per))
            + tuple(Port(f"res{e}", OUT, p[4].fields) for e, p in enumerate(per))
            + (shared["err"], shared["busy"]))


def mem_port(cfg: HwConfig) -> Port:
    """The variable-depth engine's memory stream: ``mem_bytes`` bytes of the column stream a
    beat, byte b in bits ``8b..8b+7`` of ``data``, the first ``count`` of them valid: every
    beat of a job's stream is whole but its last; a beat of ``count = 0`` carries nothing
    (hw/ENGINE.md "Variable-depth stream")."""
    return Port("mem", IN, (Field("data", 8 * cfg.mem_bytes), Field("count", bits_for(cfg.mem_bytes + 1))))


def var_engine_ports(cfg: HwConfig) -> tuple[Port, ...]:
    """The variable-depth engine's ports (hw/varengine.py): the engine's, with ``mem`` (the
    column stream) in place of ``w``."""
    return tuple(mem_port(cfg) if p.name == "w" else p for p in engine_ports(cfg))


def ports_of(cfg: HwConfig) -> tuple[Port, ...]:
    """The port set of the engine ``cfg`` builds: ``engine_ports``, ``array_ports`` or
    ``var_engine_ports``."""
    if cfg.organisation == "array":
        return array_ports(cfg)
    return var_engine_ports(cfg) if cfg.variable else engine_ports(cfg)


def by_name(ports) -> dict[str, Port]:
    return {p.name: p for p in ports}


def record_fields(ports, side: str) -> list[tuple[str, type]]:
    """The models' record fields of one cycle as (name, type): ``side`` "in" (what the
    engine samples, after ``rst``) or "out" (what it drives), in port order. Handshakes and
    flag fields are ``bool``, arrays ``tuple``, other fields ``int``."""
    out = [("rst", bool)] if side == IN else []
    for p in ports:
        if not p.stream:
            if p.dir == side:
                out.append((p.name, bool))
            continue
        if p.dir != side:
            out.append((f"{p.name}_ready", bool))
            continue
        out.append((f"{p.name}_valid", bool))
        out += [(p.record(f), bool if f.flag else tuple if f.count else int) for f in p.fields]
    return out
