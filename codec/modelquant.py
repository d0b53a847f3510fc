"""Quantize every linear matrix of a checkpoint, for several depths at once.

The loop runs matrix by matrix: each matrix is converted and checked once
(``codec.quantize.prepare``: fp32, zero padding to a multiple of 16, NaN/Inf check) and the
prepared groups are reused for every requested depth, so nothing depth-independent is
computed twice and at most one prepared matrix is held at a time.

Figures are over the quantized matrices only (embeddings, ``lm_head`` and norms stay in
floating point and are not counted), as in the published material:

* per matrix: relative MSE ``sum err^2 / sum w^2`` and SQNR in dB (``codec.quantize.weight_error``);
* totals: the same ratio over all matrices (so large matrices weigh more), the number of
  weights, information bpw ``(d + 3/16) log2 3`` and physical bpw of the packed file stream
  (``codec.packfile.info``: bytes * 8 / weights, padding included).

The ``calibrated`` mode (``codec.calibrate``) first runs the float model over calibration
text once (``codec.calibration.checkpoint_hessians``) and factors each matrix's input
Hessian once for all depths; its :class:`ModelQuant` carries a ``calibration`` record
(options, tokens, seconds of the forward pass and of the factorizations, peak resident
memory of the process from ``resource.getrusage``).
"""
from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field

from typing import NamedTuple

import numpy as np

from . import layout, mixeddepth, packfile
from ..errors import TritforgeError
from .calibrate import MODE as CALIBRATED, hessian_factor, quantize_calibrated
from .mixeddepth import MixedConfig
from .quantize import (MODES as _ROUNDING_MODES, TritTensor, mode_codebook, prepare, quantize_groups,
                       weight_error)

#: every mode the model quantizer takes: the two rounding modes and the calibrated one
MODES = _ROUNDING_MODES + (CALIBRATED,)


@dataclass
class MatrixStats:
    name: str
    shape: tuple[int, int]
    pad: int
    bytes: int
    trits: int
    sq_err: float
    sq_ref: float
    rel_mse: float
    sqnr_db: float

    @property
    def physical_bpw(self) -> float:
        return self.bytes * 8 / (self.shape[0] * self.shape[1])

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "pad": self.pad,
                "bytes": self.bytes, "physical_bpw": self.physical_bpw,
                "rel_mse": self.rel_mse, "sqnr_db": _finite(self.sqnr_db)}


@dataclass
class ModelQuant:
    """All quantized matrices of one model at one depth, with their error figures."""

    depth: int                    #: the depth, or a mixed configuration's base depth
    mode: str
    tensors: dict[str, TritTensor] = field(default_factory=dict)
    stats: dict[str, MatrixStats] = field(default_factory=dict)
    seconds: float = 0.0          #: time spent in quantize_groups + error for this depth
    calibration: dict | None = None   #: calibrated mode: options, timings, peak memory
    mixed: dict | None = None     #: a mixed configuration: its rule, lambda, sensitivities

    @property
    def weights(self) -> int:
        return sum(s.shape[0] * s.shape[1] for s in self.stats.values())

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.stats.values())

    @property
    def info_bpw(self) -> float:
        if self.mixed is None:
            return layout.info_bpw(self.depth)
        return sum(s.trits for s in self.stats.values()) * math.log2(3) / self.weights

    def depth_histogram(self) -> list[int]:
        """Groups per depth 0..depth over all matrices."""
        out = [0] * (self.depth + 1)
        for t in self.tensors.values():
            for k, n in enumerate(t.depth_histogram()):
                out[k] += n
        return out

    @property
    def physical_bpw(self) -> float:
        return self.bytes * 8 / self.weights

    @property
    def rel_mse(self) -> float:
        ref = sum(s.sq_ref for s in self.stats.values())
        return sum(s.sq_err for s in self.stats.values()) / ref if ref > 0 else 0.0

    @property
    def sqnr_db(self) -> float:
        r = self.rel_mse
        return -10 * math.log10(r) if r > 0 else math.inf

    def summary(self) -> dict:
        return {"depth": self.depth, "mode": self.mode, "matrices": len(self.stats),
                "weights": self.weights, "bytes": self.bytes,
                "info_bpw": self.info_bpw, "physical_bpw": self.physical_bpw,
                "rel_mse": self.rel_mse, "sqnr_db": _finite(self.sqnr_db),
                "quantize_seconds": self.seconds, "calibration": self.calibration,
                "depth_histogram": self.depth_histogram(), "mixed": self.mixed}


def _finite(x: float):
    return x if math.isfinite(x) else None


class Config(NamedTuple):
    """A quantizer configuration named on the command line."""

    name: str
    depth: int                         #: the depth, or a mixed configuration's base depth
    mixed: MixedConfig | None = None   #: None for uniform-dN


def parse_config(name: str) -> Config:
    """One configuration name: ``uniform-d1`` .. ``uniform-d4`` (one depth for every group),
    ``mixed-d<D>-bpw<B>`` or ``d<D>scale-sens<digits>`` (a depth per group,
    ``codec.mixeddepth``)."""
    if name.startswith("uniform-d") and name[len("uniform-d"):] in ("1", "2", "3", "4"):
        return Config(name, int(name[-1]))
    mixed = mixeddepth.parse_mixed(name)
    if mixed is None:
        raise TritforgeError(f"config {name!r}: expected uniform-d1 .. uniform-d4, mixed-d<D>-bpw<B> "
                             f"(e.g. mixed-d3-bpw4.2) or d<D>scale-sens<digits> (e.g. d3scale-sens002)")
    return Config(name, mixed.base, mixed)


def parse_configs(text: str) -> list[Config]:
    """``"uniform-d2,mixed-d3-bpw4.2"`` -> their :class:`Config` (duplicates dropped)."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item not in [c.name for c in out]:
            out.append(parse_config(item))
    if not out:
        raise TritforgeError(f"configs {text!r}: expected a comma-separated list such as uniform-d2")
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024


def quantize_model(tensors: dict, names: list[str], depths, mode: str = "tritllm-v2",
                   progress: bool = True, hessians: dict | None = None,
                   calib=None) -> dict[int, ModelQuant]:
    """Quantize ``tensors[name]`` for every name and depth; returns depth -> :class:`ModelQuant`.

    ``tensors`` maps names to 2-D weights (torch tensors or numpy arrays of any float dtype).
    The calibrated mode needs ``hessians`` (name -> H, ``codec.calibration``; a missing or
    ``None`` entry stands for the identity) and ``calib`` (``CalibOptions``: damping, order,
    group choice, codebook).
    """
    from tqdm import tqdm

    if mode not in MODES:
        raise TritforgeError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    depths = [layout.check_depth(d) for d in dict.fromkeys(depths)]
    if not depths:
        raise TritforgeError("depths: expected at least one of 1..4")
    if not names:
        raise TritforgeError("no linear matrices to quantize")
    if mode == CALIBRATED and (hessians is None or calib is None):
        raise TritforgeError("mode calibrated: needs calibration Hessians and options")
    results = {d: ModelQuant(d, mode) for d in depths}
    factor_seconds = 0.0
    cached, cached_layer = {}, None    # id(H) -> (H, factor) within the current layer
    notes = {"dead_channels": 0, "nonfinite_channels": 0, "extra_damping": 0, "identity": 0}
    bar = tqdm(names, desc=f"quantize d={','.join(map(str, depths))} {mode}", unit="matrix",
               disable=not progress, leave=False)
    for name in bar:
        wg, shape = prepare(tensors[name], name)      # depth-independent: once per matrix
        w = wg.reshape(shape[0], -1)[:, :shape[1]]     # fp32 view without the padding
        factor = None
        if mode == CALIBRATED:
            H = hessians.get(name)
            layer = name.split(".")[2] if name.count(".") >= 3 else ""
            if layer != cached_layer:       # keep one layer's factors at a time
                cached, cached_layer = {}, layer
            if H is not None and id(H) in cached:
                factor = cached[id(H)][1]   # q/k/v and gate/up share one H: factor it once
            else:
                t0 = time.perf_counter()
                factor = hessian_factor(H, wg.shape[1] * layout.GROUP, calib.damp, calib.order)
                factor_seconds += time.perf_counter() - t0
                if H is not None:
                    cached[id(H)] = (H, factor)
            for key in ("dead_channels", "nonfinite_channels"):
                notes[key] += factor.note[key]
            notes["extra_damping"] += int(factor.note["damp"] > calib.damp)
            notes["identity"] += int(factor.note["identity"])
        for d in depths:
            t0 = time.perf_counter()
            if factor is None:
                t = quantize_groups(wg, shape, d, mode)
            else:
                t = quantize_calibrated(wg, shape, d, factor, calib.codebook, calib.choice)
            r = results[d]
            r.seconds += time.perf_counter() - t0
            r.tensors[name] = t
            r.stats[name] = matrix_stats(name, w, t)
    if mode == CALIBRATED:
        for r in results.values():
            r.calibration = {**calib.describe(), "factor_seconds": factor_seconds,
                             "matrices_with": notes, "peak_rss_mib": peak_rss_mib()}
    return results


def matrix_stats(name: str, w, t: TritTensor) -> MatrixStats:
    """Size and error figures of one quantized matrix against its source ``w``."""
    err = weight_error(w, t)
    info = packfile.info(name, t)
    return MatrixStats(name, t.shape, t.pad, info.bytes, info.trits, err["sq_err"], err["sq_ref"],
                       err["rel_mse"], err["sqnr_db"])


#: what a mixed configuration's error weights are (``codec.mixeddepth``), by name
SENSITIVITY = {"fisher": "Fisher diagonal of the loss on the calibration text (per weight)",
               "diag-h": "diag(H) of the calibration text (per input channel)",
               "weight": "none (the plain weight error)"}


def quantize_mixed(tensors: dict, names: list[str], configs: list[MixedConfig], mode: str = "tritforge",
                   energy: dict | None = None, progress: bool = True,
                   sensitivity: str | None = None) -> dict[str, ModelQuant]:
    """Quantize ``tensors[name]`` for every mixed configuration; returns config name ->
    :class:`ModelQuant` (``codec.mixeddepth`` has the rules).

    ``energy`` maps names to sensitivities: per weight (out, in) (the Fisher diagonal,
    ``codec.calibration.weight_fisher``) or per input channel (in,) (``diag(H)``,
    ``codec.calibration.input_energy``); None (or a missing name) weighs every weight alike.
    ``sensitivity`` names which (a key of :data:`SENSITIVITY`, for the record; default
    ``weight`` without ``energy``, else ``fisher`` or ``diag-h`` by its shape).
    The per-group errors at every depth are computed once per base depth and shared by the
    configurations of that base; each matrix is prepared once per pass.
    """
    from tqdm import tqdm

    if mode not in _ROUNDING_MODES:
        raise TritforgeError(f"mode {mode!r}: the mixed configurations take {' or '.join(_ROUNDING_MODES)}")
    if not names:
        raise TritforgeError("no linear matrices to quantize")
    if not configs:
        raise TritforgeError("mixed configurations: expected at least one")
    search = (0,) if mode == "tritllm-v2" else (-1, 0, 1, 2)
    if sensitivity is None:
        sensitivity = "weight" if energy is None else (
            "fisher" if any(np.ndim(v) == 2 for v in energy.values()) else "diag-h")
    if sensitivity not in SENSITIVITY:
        raise TritforgeError(f"sensitivity {sensitivity!r}: expected one of {', '.join(SENSITIVITY)}")
    bases = sorted({c.base for c in configs})
    t_start = time.perf_counter()
    # pass 1: per base depth, every group's weighted error and index at every allowed depth
    cand = {b: {"errs": [], "idx": [], "energy": [], "cb": {}} for b in bases}
    sizes = {}
    for name in tqdm(names, desc=f"mixed depths: errors, base d={','.join(map(str, bases))}",
                     unit="matrix", disable=not progress, leave=False):
        wg, shape = prepare(tensors[name], name)
        sizes[name] = shape
        h = None if energy is None else energy.get(name)
        for b in bases:
            cb = mode_codebook(wg, b, mode)
            errs, idx, en = mixeddepth.depth_candidates(wg, cb, b, h, search)
            c = cand[b]
            c["errs"].append(errs)
            c["idx"].append(idx)
            c["energy"].append(en)
            c["cb"][name] = cb
    t_errors = time.perf_counter() - t_start
    weights = sum(r * c for r, c in sizes.values())
    # allocation: the depth column of every group, per configuration
    columns, notes = {}, {}
    for cfg in configs:
        c = cand[cfg.base]
        errs = np.concatenate(c["errs"])
        counts = [e.shape[0] for e in c["errs"]]
        bounds = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        if cfg.rule == "bpw":
            lam, cols = mixeddepth.lambda_for_bpw(errs, cfg.base, bounds, weights, cfg.value)
            notes[cfg.name] = {"lambda": lam}
        else:
            cols = mixeddepth.choose_by_threshold(errs, np.concatenate(c["energy"]), cfg.value)
            notes[cfg.name] = {}
        columns[cfg.name] = np.split(cols, np.cumsum(counts)[:-1])
    # pass 2: levels at the chosen depths, the tensors and their figures
    results = {c.name: ModelQuant(c.base, mode) for c in configs}
    for i, name in enumerate(tqdm(names, desc="mixed depths: levels", unit="matrix",
                                  disable=not progress, leave=False)):
        wg, shape = prepare(tensors[name], name)
        w = wg.reshape(shape[0], -1)[:, :shape[1]]
        for cfg in configs:
            t0 = time.perf_counter()
            c = cand[cfg.base]
            col = columns[cfg.name][i].astype(np.int64)
            depths = np.array(layout.var_depths(cfg.base), dtype=np.uint8)
            gd = depths[col].reshape(wg.shape[:2])
            k = c["idx"][i][np.arange(col.size), col].reshape(wg.shape[:2])
            cb = c["cb"][name]
            q = mixeddepth.levels_for(wg, cb, cfg.base, gd, k)
            t = TritTensor(q, k, cb, cfg.base, shape, mode, group_depth=gd)
            r = results[cfg.name]
            r.tensors[name] = t
            r.stats[name] = matrix_stats(name, w, t)
            r.seconds += time.perf_counter() - t0
    for cfg in configs:
        r = results[cfg.name]
        r.seconds += t_errors / len(configs)
        r.mixed = {**cfg.describe(), **notes[cfg.name],
                   "sensitivity": sensitivity, "sensitivity_is": SENSITIVITY[sensitivity],
                   "error_pass_seconds": t_errors}
    return results


def quantize_checkpoint(ckpt, depths, mode: str = "tritllm-v2", progress: bool = True,
                        calib=None) -> dict[int, ModelQuant]:
    """:func:`quantize_model` over a ``codec.checkpoint.Checkpoint``'s linear matrices.

    The calibrated mode runs the calibration pass first (``calib``: ``CalibOptions``,
    default the bundled text) and records its time in every depth's ``calibration``.
    """
    if mode != CALIBRATED:
        return quantize_model(ckpt.tensors, ckpt.linear_names, depths, mode, progress)
    from .calibration import checkpoint_hessians, make_options

    calib = calib or make_options()
    names = ckpt.linear_names
    if not names:
        raise TritforgeError("no linear matrices to quantize")
    if calib.inputs == "sequential":
        return _sequential(ckpt, names, depths, calib, progress)
    hessians, info = checkpoint_hessians(ckpt, names, calib, progress)
    results = quantize_model(ckpt.tensors, names, depths, mode, progress, hessians, calib)
    for r in results.values():
        r.calibration = {**r.calibration, "tokens": info["tokens"],
                         "forward_seconds": info["forward_seconds"]}
    return results


def _sequential(ckpt, names, depths, calib, progress) -> dict[int, ModelQuant]:
    """The calibrated mode with per-depth, layer-by-layer Hessians (``codec.calibration``)."""
    from .calibration import calibration_ids, float_model, sequential_pass

    depths = [layout.check_depth(d) for d in dict.fromkeys(depths)]
    if not depths:
        raise TritforgeError("depths: expected at least one of 1..4")
    ids = calibration_ids(ckpt.tokenizer(), calib)
    model = float_model(ckpt)
    results = {}
    for i, d in enumerate(depths):
        if i:                                  # the previous depth left its weights in place
            model.load_state_dict({n: ckpt.tensors[n].float() for n in names}, strict=False)
        mq = ModelQuant(d, CALIBRATED)
        notes: dict = {}
        factor_seconds = 0.0

        def quantize_layer(layer_names, hessians):
            nonlocal factor_seconds
            r = quantize_model(ckpt.tensors, layer_names, [d], CALIBRATED, False, hessians, calib)[d]
            mq.tensors.update(r.tensors)
            mq.stats.update(r.stats)
            mq.seconds += r.seconds
            factor_seconds += r.calibration["factor_seconds"]
            for key, v in r.calibration["matrices_with"].items():
                notes[key] = notes.get(key, 0) + v
            return r.tensors

        t0 = time.perf_counter()
        sequential_pass(model, ids, names, quantize_layer, progress)
        total = time.perf_counter() - t0
        mq.tensors = {n: mq.tensors[n] for n in names}
        mq.stats = {n: mq.stats[n] for n in names}
        mq.calibration = {**calib.describe(), "tokens": int(ids.numel()),
                          "forward_seconds": total - mq.seconds - factor_seconds,
                          "factor_seconds": factor_seconds, "matrices_with": notes,
                          "peak_rss_mib": peak_rss_mib()}
        results[d] = mq
    del model
    return results
