"""Payload packing from the generated Verilog's JSON sidecar (hw/verilog.py ``sidecar``).

The sidecar is the one description of the engine an integrator holds beside the Verilog:
its ``ports`` list every port with ``width`` and, for struct payloads, ``fields`` with
``offset``/``width``/``signed`` (arrays: ``count``, ``stride``, ``elem_signed``). A
:class:`Payload` packs a dict of field values into the port's integer and unpacks it back,
from those positions only; nothing here imports the RTL's Python layouts.
"""
from __future__ import annotations

import json
import os

SIDECAR_FORMAT = "tritforge-engine-sidecar"
SIDECAR_VERSION = 1


def load_sidecar(sidecar) -> dict:
    """A sidecar as a dict, from a dict or the path of its JSON file (format checked)."""
    if isinstance(sidecar, (str, os.PathLike)):
        with open(sidecar) as f:
            sidecar = json.load(f)
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"not a {SIDECAR_FORMAT} document (format "
                         f"{sidecar.get('format') if isinstance(sidecar, dict) else type(sidecar).__name__!r})")
    if sidecar.get("version") != SIDECAR_VERSION:
        raise ValueError(f"sidecar version {sidecar.get('version')!r}, expected {SIDECAR_VERSION}")
    return sidecar


def _to_signed(v: int, bits: int) -> int:
    return v - (1 << bits) if bits and v >> (bits - 1) & 1 else v


def _fit(port: str, name: str, v: int, bits: int, signed: bool) -> int:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{port}.{name} = {v}: out of range {lo}..{hi} ({bits} bits)")
    return v & ((1 << bits) - 1)


class Payload:
    """Pack / unpack one port's payload by the sidecar's field positions."""

    def __init__(self, port: dict):
        self.name = port["name"]
        self.width = int(port["width"])
        self.fields = {f["name"]: f for f in port.get("fields") or []}

    def pack(self, values: dict) -> int:
        """The port's integer for ``values`` (missing fields are 0; every value range-checked)."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise KeyError(f"{self.name}: no fields {sorted(unknown)}")
        word = 0
        for name, f in self.fields.items():
            v = values.get(name, 0)
            if "count" in f:
                v = list(v) if v else [0] * f["count"]
                if len(v) != f["count"]:
                    raise ValueError(f"{self.name}.{name}: {len(v)} elements, expected {f['count']}")
                for i, e in enumerate(v):
                    word |= _fit(self.name, f"{name}[{i}]", int(e), f["stride"],
                                 bool(f.get("elem_signed"))) << (f["offset"] + i * f["stride"])
            else:
                word |= _fit(self.name, name, int(v), f["width"], bool(f.get("signed"))) << f["offset"]
        return word

    def unpack(self, word: int) -> dict:
        """``{field: value}`` of a port integer (arrays as tuples, signed fields signed)."""
        word = int(word)
        out = {}
        for name, f in self.fields.items():
            if "count" in f:
                mask = (1 << f["stride"]) - 1
                vals = [(word >> (f["offset"] + i * f["stride"])) & mask for i in range(f["count"])]
                out[name] = tuple(_to_signed(v, f["stride"]) if f.get("elem_signed") else v
                                  for v in vals)
            else:
                v = (word >> f["offset"]) & ((1 << f["width"]) - 1)
                out[name] = _to_signed(v, f["width"]) if f.get("signed") else v
        return out


def sidecar_payloads(sidecar) -> dict[str, Payload]:
    """``{stream name: Payload}`` for every ``<stream>__payload`` port of a sidecar."""
    side = load_sidecar(sidecar)
    return {p["name"][:-len("__payload")]: Payload(p) for p in side["ports"]
            if p["name"].endswith("__payload")}
