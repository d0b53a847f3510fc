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

from ..atomic import atomic_file
from ..errors import TritforgeError
from ..hwconfig import HwConfig
from ..ports import IN, OUT, ports_of
from .decoder import DEFAULT_STYLE
from .engine_array import broadcast_cycles, build_engine

TOP = "tritforge_engine"
FORMAT = "tritforge-engine-sidecar"
VERSION = 1


def _fields(port) -> list[dict]:
    """The payload's fields with their bit offset and width (arrays: ``count`` elements of
    ``stride`` bits)."""
    out = []
    for f, at in zip(port.fields, port.offsets().values()):
        entry = {"name": f.name, "offset": at, "width": f.bits,
                 "signed": f.signed and not f.count}
        if f.count:
            entry.update(count=f.count, stride=f.width, elem_signed=f.signed)
        out.append(entry)
    return out


def port_map(cfg: HwConfig) -> list[dict]:
    """Every port of the generated engine or array of engines (``tritforge.ports``)."""
    return ports_map(ports_of(cfg))


def ports_map(port_set) -> list[dict]:
    """Every port of a generated module from its port set: name, direction, width, and a
    struct payload's fields (clk and rst first)."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for port in port_set:
        if not port.stream:
            ports.append({"name": port.name, "dir": port.dir, "width": port.width})
            continue
        back = OUT if port.dir == IN else IN
        p = {"name": f"{port.name}__payload", "dir": port.dir, "width": port.width}
        if not port.word:
            p["fields"] = _fields(port)
        ports += [p, {"name": f"{port.name}__valid", "dir": port.dir, "width": 1},
                  {"name": f"{port.name}__ready", "dir": back, "width": 1}]
    return ports


def _versions() -> dict:
    out = {}
    for pkg in ("amaranth", "tritforge"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def sidecar(cfg: HwConfig, decoder_style: str = DEFAULT_STYLE, top: str = TOP,
            primitives: str = "generic") -> dict:
    """The sidecar document: parameters, every derived figure an integrator needs, ports.

    ``derived`` adds to ``HwConfig.derived()``: the pipeline and its timing
    (``pipeline_stages``, ``fifo_depth``, ``err_latency``), the command costs of
    hw/ENGINE.md "Sequence" as ``sim.fastmodel`` counts them (``cmd_accept_cycles``: the
    accept and start cycles, ``load_open_cycles``: after a LOAD, ``end_cycles``: after the
    last result, ``command_overhead_cycles``: accept, start and end), the host's value
    ranges (``act_min``/``act_max``: int8 activations, ``shift_limit``, ``codebook_entries``,
    ``byte_limit``: weight bytes at or above it set ``err``) and sizes (``tiles_max``,
    ``lanes``, ``macs_per_cycle``, ``stream_bytes_per_cycle``, ``act_stride``); for an
    array of engines, ``broadcast_cycles`` (hw/engine_array.py: from a port to the engines);
    for a variable-depth engine, its gearbox (hw/ENGINE.md "Variable-depth stream"):
    ``gearbox_cycles`` (a column's last memory beat in to its beat offered),
    ``gearbox_queue``, ``window_words`` (the word FIFO's slots; ``mem`` is ready while one is
    free), ``column_span`` (beats a column can touch), ``column_bytes_max``,
    ``column_header_bytes`` (``mem_bytes`` is at least this).
    """
    from ..codec import layout
    from ..hwconfig import FIFO_DEPTH
    from ..hwconfig import CMD_ACCEPT_CYCLES, END_CYCLES, LOAD_OPEN_CYCLES

    derived = cfg.derived()
    derived.update(pipeline_stages=cfg.pipeline_stages, tiles_max=cfg.tiles_max,
                   lanes=cfg.rows * 16 * cfg.depth, macs_per_cycle=cfg.macs_per_cycle,
                   stream_bytes_per_cycle=cfg.stream_bytes_per_cycle,
                   fifo_depth=FIFO_DEPTH, err_latency=cfg.err_latency,
                   cmd_accept_cycles=CMD_ACCEPT_CYCLES, load_open_cycles=LOAD_OPEN_CYCLES,
                   end_cycles=END_CYCLES, command_overhead_cycles=CMD_ACCEPT_CYCLES + END_CYCLES,
                   act_min=-(1 << (cfg.act_bits - 1)), act_max=(1 << (cfg.act_bits - 1)) - 1,
                   shift_limit=cfg.shift_limit, shift_bits=cfg.shift_bits,
                   codebook_entries=layout.CODEBOOK_SIZE, byte_limit=layout.BYTE_LIMIT,
                   act_stride=cfg.act_stride)
    if cfg.organisation == "array":
        derived.update(broadcast_cycles=broadcast_cycles(cfg))
    if cfg.variable:
        from ..hwconfig import GEARBOX_QUEUE
        derived.update(gearbox_cycles=cfg.gearbox_cycles, gearbox_queue=GEARBOX_QUEUE,
                       window_words=cfg.window_words, column_span=cfg.column_span,
                       column_bytes_max=cfg.column_bytes_max,
                       column_header_bytes=layout.var_header_bytes(cfg.rows))
    return {"format": FORMAT, "version": VERSION, "top": top, "decoder_style": decoder_style,
            "primitives": primitives, "hwconfig": cfg.to_dict(), "derived": derived, "ports": port_map(cfg),
            "tools": _versions()}


def convert(cfg: HwConfig, decoder_style: str = DEFAULT_STYLE, top: str = TOP,
            primitives: str = "generic") -> str:
    engine = build_engine(cfg, decoder_style=decoder_style, primitives=primitives)
    return verilog.convert(engine, name=top, emit_src=False)


def write(cfg: HwConfig, out_dir: str, *, decoder_style: str = DEFAULT_STYLE, top: str = TOP,
          primitives: str = "generic", overwrite: bool = True) -> dict:
    """Write ``out_dir/<top>.v`` and ``out_dir/<top>.json``; returns the paths and sizes."""
    if not top.isidentifier():
        raise TritforgeError(f"top module name {top!r}: expected a Verilog identifier")
    text = convert(cfg, decoder_style, top, primitives)
    meta = sidecar(cfg, decoder_style, top, primitives)
    return write_module(out_dir, top, text, meta, overwrite)


def write_module(out_dir: str, top: str, text: str, meta: dict, overwrite: bool = True) -> dict:
    """``out_dir/<top>.v`` and its sidecar ``out_dir/<top>.json``, both or neither."""
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
