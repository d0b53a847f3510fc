"""The model's Linears on the simulated engine: which ones the hardware runs, their
quantized matrices (quantized here or read from a packed file or folder) and the
:class:`~.hwlinear.HwLinear` modules that replace them in place (the linear-only hardware
path; ``sim.hwlayer.patch_layers`` then replaces whole decoder layers)."""
from __future__ import annotations

import os

from torch import nn
from tqdm import tqdm

from ..codec import packfile
from ..codec.quantize import MODES, TritTensor, quantize_matrix
from ..errors import TritforgeError
from .hwlinear import HwLinear, HwRecorder


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear the hardware runs: all of them except the output embedding."""
    head = model.get_output_embeddings()
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not head}


def quantize_layers(layers: dict[str, nn.Linear], depth: int, mode: str,
                    progress: bool = True, mixed=None) -> dict[str, TritTensor]:
    """Every layer at ``depth``, or with ``mixed`` (a ``codec.mixeddepth.MixedConfig``) a
    depth per group by its rule over these layers (``codec.modelquant.quantize_mixed``,
    weighing the plain weight error: ``run`` has no calibration pass)."""
    if mode not in MODES:
        raise TritforgeError(f"mode {mode!r}: expected one of {MODES}")
    if mixed is not None:
        from ..codec.modelquant import quantize_mixed

        weights = {n: lin.weight for n, lin in layers.items()}
        return dict(quantize_mixed(weights, list(layers), [mixed], mode, None,
                                   progress=progress)[mixed.name].tensors)
    out = {}
    for name, lin in tqdm(layers.items(), desc=f"quantize d={depth}", unit="matrix",
                          disable=not progress, leave=False):
        out[name] = quantize_matrix(lin.weight, depth, mode, name=name)
    return out


def packed_layers(path: str, layers: dict[str, nn.Linear], depth: int,
                  tensors: dict[str, TritTensor] | None = None) -> dict[str, TritTensor]:
    """The model's matrices from a packed file or packed model folder (or their already
    read ``tensors``), checked against the model's layers."""
    if tensors is None:
        if os.path.isdir(path):
            from ..codec.packedmodel import read_packed_model

            tensors = read_packed_model(path).trit_tensors()
        else:
            tensors = packfile.read_packed(path)[0]
    out = {}
    for name, lin in layers.items():
        t = tensors.get(f"{name}.weight", tensors.get(name))
        if t is None:
            raise TritforgeError(f"{path}: no quantized matrix for layer {name}")
        if tuple(t.shape) != tuple(lin.weight.shape):
            raise TritforgeError(f"{path}: {name} has shape {tuple(t.shape)}, "
                                 f"the model's layer has {tuple(lin.weight.shape)}")
        if t.depth != depth:
            raise TritforgeError(f"{path}: {name} is quantized at d={t.depth}, the config asks for d={depth}")
        out[name] = t
    return out


def patch_model(model: nn.Module, tensors: dict[str, TritTensor], recorder: HwRecorder,
                keep_source: bool = True) -> dict[str, HwLinear]:
    """Replace each named nn.Linear by an HwLinear (in place); returns the new modules."""
    done = {}
    for name, t in tensors.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        lin = getattr(parent, attr)
        if not isinstance(lin, nn.Linear):
            raise TritforgeError(f"{name}: expected an nn.Linear, found {type(lin).__name__}")
        hw = HwLinear(name, t, lin.bias, lin.weight if keep_source else None, recorder)
        setattr(parent, attr, hw)
        done[name] = hw
    return done
