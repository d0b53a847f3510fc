"""The Amaranth form of the engine's port set (``tritforge.ports``): payload layouts and the
component signature, so the RTL's ports are made from the same description as the models'
records and the sidecar."""
from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hwconfig import HwConfig
from ..ports import IN, Port, engine_ports


def field_shape(f):
    elem = signed(f.width) if f.signed else unsigned(f.width)
    return data.ArrayLayout(elem, f.count) if f.count else elem


def payload_shape(port: Port):
    """A plain word's shape, or the struct layout of the fields in order."""
    if port.word or not port.stream:
        return field_shape(port.fields[0])
    return data.StructLayout({f.name: field_shape(f) for f in port.fields})


def payload_layouts(cfg: HwConfig, beat_bytes: int | None = None) -> dict:
    """Payload shape of every stream port, by port name."""
    return {p.name: payload_shape(p) for p in engine_ports(cfg, beat_bytes) if p.stream}


def members(ports) -> dict:
    """Signature members of ``ports``: streams as ``stream.Signature``, flags as plain
    members of their width."""
    out = {}
    for p in ports:
        flow = In if p.dir == IN else Out
        out[p.name] = flow(stream.Signature(payload_shape(p)) if p.stream else p.width)
    return out


def engine_signature(cfg: HwConfig, beat_bytes: int | None = None) -> wiring.Signature:
    return wiring.Signature(members(engine_ports(cfg, beat_bytes)))
