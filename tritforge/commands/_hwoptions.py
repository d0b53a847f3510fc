"""HwConfig as command-line options, shared by every subcommand that builds an engine.

One option per ``HwConfig`` field (``--depth``, ``--rows``, ...), plus ``--config FILE``
(a HwConfig JSON or a ``tritforge generate`` sidecar) that the options override. A new
HwConfig field without an entry in ``FIELD_HELP`` fails ``tests/test_hw_generate.py``.
"""
from __future__ import annotations

import dataclasses

FIELD_HELP = {
    "depth": "D: trits per weight, 1..4",
    "rows": "R: output rows computed in parallel (1..256)",
    "vectors": "T: activation vectors per weight fetch (1 = decode, >1 = prefill), 1..64",
    "group": "weights per group sharing one scale (fixed by the format: 16)",
    "act_bits": "activation width in bits (fixed: 8)",
    "mant_bits": "F: codebook mantissa bits (fixed by the format: 12)",
    "shift_limit": "S: largest codebook shift, 0..15 (sizes the accumulator)",
    "max_in_features": "largest in_features (multiple of 16; sizes the activation buffer and accumulators)",
    "max_out_features": "largest out_features (sizes the row-tile counter)",
    "clock_mhz": "target clock in MHz (recorded in the sidecar for the synthesis flows)",
    "organisation": "above 4 rows: lockstep slices behind one port set, or an array of "
                    "engines of 4 rows with weight and result streams of their own (hw/ENGINE.md)",
    "weight_stream": "the weight stream the engine takes: uniform beats, or the variable-depth "
                     "column stream of a mixed config behind a word FIFO and a gearbox (hw/ENGINE.md)",
    "mem_bytes": "bytes per memory beat of the variable-depth stream (its mem port), 1..256",
}


def add_hw_arguments(p, defaults=None, skip=()) -> None:
    """One option per HwConfig field but ``skip``; ``defaults`` (a HwConfig) only shows in the help."""
    import typing

    from ..documents.hwconfig import HwConfigDoc
    from ..hwconfig import DEFAULT, HwConfig

    base = defaults or DEFAULT
    for f in dataclasses.fields(HwConfig):
        if f.name in skip:
            p.set_defaults(**{f.name: None})
            continue
        opt = "--" + f.name.replace("_", "-")
        value = getattr(base, f.name)
        if isinstance(value, str):
            choices = typing.get_args(HwConfigDoc.model_fields[f.name].annotation)
            p.add_argument(opt, dest=f.name, choices=choices, default=None,
                           help=f"{FIELD_HELP.get(f.name, f.name)} (default {value})")
            continue
        kind = float if isinstance(value, float) else int
        metavar = {"depth": "D", "rows": "R", "vectors": "T"}.get(f.name, "N" if kind is int else "X")
        p.add_argument(opt, dest=f.name, type=kind, metavar=metavar, default=None,
                       help=f"{FIELD_HELP.get(f.name, f.name)} (default {value})")
    p.add_argument("--config", metavar="FILE",
                   help="HwConfig JSON (a `tritforge generate` sidecar works too); options override it")


def hw_from_args(args, base=None):
    """The HwConfig of ``base`` (or ``--config``, or the defaults) with the given options applied."""
    from ..hwconfig import HwConfig

    data = HwConfig.from_json(args.config).to_dict() if args.config else (
        base.to_dict() if base is not None else {})
    for f in dataclasses.fields(HwConfig):
        value = getattr(args, f.name)
        if value is not None:
            data[f.name] = value
    return HwConfig.from_dict(data, "options")
