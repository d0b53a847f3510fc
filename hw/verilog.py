"""Verilog export of the GEMV engine with its JSON sidecar.

``write(cfg, out_dir)`` writes ``<name>.v`` (``amaranth.back.verilog.convert(...,
emit_src=False)``, reproducible) and ``<name>.json``:

* ``hwconfig``: every ``HwConfig`` parameter (``HwConfig.from_json`` reads the file back);
* ``derived``: every derived value (beat bytes, widths, buffer depth, pipeline stages, ...);
* ``ports``: every Verilog port with direction and width, and for struct payloads the
  fields with their bit offset and width (``acc`` of ``res`` is an array: ``count`` and
  ``stride``), so testbenches read positions instead of repeating them;
* ``top``, ``decoder_style``, ``primitives`` (hw/primitives.py: "ecp5" instantiates the
  Lattice DSP and block RAM primitives, for Lattice flows), tool versions.

Both files are written to a temporary folder next to ``out_dir`` and moved in place, so an
interrupted run leaves no half-written output.
"""
from __future__ import annotations

import json
import os
from importlib import metadata

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data

from ..atomic import atomic_file
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from .engine import GemvEngine, port_layouts

TOP = "tritforge_engine"
FORMAT = "tritforge-engine-sidecar"
VERSION = 1


def _fields(layout) -> list[dict] | None:
    if not isinstance(layout, data.StructLayout):
        return None
    out = []
    for name, field in layout:
        entry = {"name": name, "offset": field.offset, "width": field.width,
                 "signed": Shape.cast(field.shape).signed if not isinstance(
                     field.shape, data.Layout) else False}
        if isinstance(field.shape, data.ArrayLayout):
            elem = Shape.cast(field.shape.elem_shape)
            entry.update(count=field.shape.length, stride=elem.width, elem_signed=elem.signed)
        out.append(entry)
    return out


def port_map(cfg: HwConfig) -> list[dict]:
    """Every port of the generated module: name, direction, width (+ payload fields)."""
    lay = port_layouts(cfg)
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for name in ("cmd", "cb", "act", "w", "res"):
        inward = name != "res"
        payload = lay[name]
        width = payload.size if isinstance(payload, data.Layout) else Shape.cast(payload).width
        p = {"name": f"{name}__payload", "dir": "in" if inward else "out", "width": width}
        fields = _fields(payload)
        if fields:
            p["fields"] = fields
        ports += [p,
                  {"name": f"{name}__valid", "dir": "in" if inward else "out", "width": 1},
                  {"name": f"{name}__ready", "dir": "out" if inward else "in", "width": 1}]
    ports += [{"name": "err", "dir": "out", "width": 1}, {"name": "busy", "dir": "out", "width": 1}]
    return ports


def _versions() -> dict:
    out = {}
    for pkg in ("amaranth", "tritforge"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def sidecar(cfg: HwConfig, decoder_style: str = "nibble", top: str = TOP,
            primitives: str = "generic") -> dict:
    derived = cfg.derived()
    derived.update(pipeline_stages=cfg.pipeline_stages, tiles_max=cfg.tiles_max,
                   lanes=cfg.rows * 16 * cfg.depth, macs_per_cycle=cfg.macs_per_cycle,
                   stream_bytes_per_cycle=cfg.stream_bytes_per_cycle)
    return {"format": FORMAT, "version": VERSION, "top": top, "decoder_style": decoder_style,
            "primitives": primitives, "hwconfig": cfg.to_dict(), "derived": derived, "ports": port_map(cfg),
            "tools": _versions()}


def convert(cfg: HwConfig, decoder_style: str = "nibble", top: str = TOP,
            primitives: str = "generic") -> str:
    engine = GemvEngine(cfg, decoder_style=decoder_style, primitives=primitives)
    return verilog.convert(engine, name=top, emit_src=False)


def write(cfg: HwConfig, out_dir: str, *, decoder_style: str = "nibble", top: str = TOP,
          primitives: str = "generic", overwrite: bool = True) -> dict:
    """Write ``out_dir/<top>.v`` and ``out_dir/<top>.json``; returns the paths and sizes."""
    if not top.isidentifier():
        raise TritforgeError(f"top module name {top!r}: expected a Verilog identifier")
    text = convert(cfg, decoder_style, top, primitives)
    meta = sidecar(cfg, decoder_style, top, primitives)
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise TritforgeError(f"{out_dir}: exists and is not a folder")
    files = {"v": text, "json": json.dumps(meta, indent=1) + "\n"}
    paths = {ext: os.path.join(out_dir, f"{top}.{ext}") for ext in files}
    for dst in paths.values():
        if os.path.exists(dst) and not overwrite:
            raise TritforgeError(f"{dst}: exists (pass overwrite)")
    for ext, body in files.items():         # both are complete before either is written
        with atomic_file(paths[ext]) as tmp:
            with open(tmp, "w") as f:
                f.write(body)
    return {"verilog": paths["v"], "sidecar": paths["json"], "verilog_bytes": len(text)}
