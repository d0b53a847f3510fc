"""HwLinear: an ``nn.Linear`` stand-in that computes through the simulated hardware.

The model driver (``sim.driver``) swaps every quantized ``nn.Linear`` of a stock
transformers model for one of these and keeps the rest of the model as it is.

The hardware path of one call, for input x (..., in_features) — docs/NUMERIC.md:

1. every token vector is quantized to int8 on its own (``golden.quantize_activations``:
   s_x = max|x| / 127, zero-padded to the matrix's ``in_padded``);
2. the vectors go through the vectorized cycle model (``sim.fastmodel.run_matrix``; a
   variable-depth matrix, ``TritTensor.variable``: ``sim.varmodel.run_matrix``, the
   variable-depth engine fed at the recorder's ``rate``) in
   commands of T vectors: one weight fetch per T vectors (prefill reuses each weight beat
   for T prompt tokens; decode sends one vector per command). It returns the exact
   integer row accumulators (bit-exact with ``golden.accumulators``), the cycle count and
   the action counts;
3. the host rescales, ``y = A * s_x * codebook.host_scale`` (``golden.rescale``), and adds
   the bias (Qwen2's q/k/v biases) in floating point.

The activation buffer of the engine keeps its contents between commands: when a matrix
gets exactly the int8 vectors the buffer already holds (q/k/v of one input, gate/up of one
input) the command is sent with ``load_act = 0`` — the hardware does not reload them, and
the cycle model counts neither the LOAD cycles nor the buffer writes.

The same module also computes the two floating-point references the driver compares
against, selected by :attr:`HwRecorder.mode`:

``"hw"``      the hardware path above;
``"layer"``   the whole-layer hardware path (``sim/hwlayer.py``): the decoder layers call
              :meth:`HwLinear.accumulate` with the int8 vectors the vector unit produced;
              a call of the module itself computes as in ``"hw"``;
``"dequant"`` ``x @ W_deq.T + b`` with the dequantized weights in float32 (the values the
              codec's FP16 export holds, before its rounding to FP16);
``"source"``  ``x @ W.T + b`` with the original (unquantized) weights.

In ``"hw"`` mode a call also measures the error of the integer path against the
floating-point dequantized product of the same input, per layer (sums of squares kept
in :class:`LayerStats`), when its phase is in ``HwRecorder.error_phases`` (by default
prefill and eval, not decode: the decode wall time then measures the simulation alone).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..codec import golden
from ..errors import TritforgeError
from ..codec.quantize import TritTensor
from ..hwconfig import HwConfig
from .actions import Actions
from .fastmodel import run_matrix
from . import varmodel

MODES = ("hw", "layer", "dequant", "source")


@dataclass
class LayerStats:
    """What one layer did in one phase (summed over its calls)."""

    calls: int = 0
    vectors: int = 0
    cycles: int = 0
    actions: Actions = field(default_factory=Actions)
    err_sq: float = 0.0     #: sum of (y_hw - y_dequant)^2 (without bias)
    ref_sq: float = 0.0     #: sum of y_dequant^2
    last_xq: np.ndarray | None = None   #: int8 inputs of the last call (decode phase only)
    last_acc: np.ndarray | None = None  #: its exact accumulators (decode phase only)

    @property
    def rel_err(self) -> float:
        """Relative error of the integer path against the float dequantized product."""
        return float(np.sqrt(self.err_sq / self.ref_sq)) if self.ref_sq > 0 else 0.0


class HwRecorder:
    """Shared state of the simulated device and the figures every HwLinear reports.

    ``phase`` names what the model is doing ("prefill", "decode", "eval", ...); figures
    are kept per (layer name, phase). ``mode`` selects the computation (see module doc).
    """

    def __init__(self, cfg: HwConfig, error_phases=("prefill", "eval"), rate=None):
        self.cfg = cfg
        #: W, the bytes per cycle the memory delivers to the variable-depth engine
        #: (``sim.varmodel``; the driver gives the board's); default: the uniform engine's
        #: full beat rate
        self.rate = varmodel.stream_rate(cfg.stream_bytes_per_cycle if rate is None else rate)
        self.mode = "hw"
        self.phase = "idle"
        self.error_phases = set(error_phases)
        self.stats: dict[tuple[str, str], LayerStats] = {}
        self._buffer: np.ndarray | None = None     # int8 vectors the activation buffer holds

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise TritforgeError(f"HwLinear mode {mode!r}: expected one of {MODES}")
        self.mode = mode

    def layer(self, name: str, phase: str | None = None) -> LayerStats:
        key = (name, self.phase if phase is None else phase)
        if key not in self.stats:
            self.stats[key] = LayerStats()
        return self.stats[key]

    def phase_stats(self, phase: str) -> dict[str, LayerStats]:
        """Figures of one phase by layer name, in the order the layers first ran."""
        return {n: s for (n, p), s in self.stats.items() if p == phase}

    def reset(self, phase: str | None = None) -> None:
        """Forget the figures (of one phase, or all) and the activation buffer contents."""
        if phase is None:
            self.stats.clear()
        else:
            self.stats = {k: v for k, v in self.stats.items() if k[1] != phase}
        self._buffer = None

    def needs_load(self, xq: np.ndarray) -> bool:
        """True unless the activation buffer already holds exactly these vectors.

        The buffer holds the last command's T vectors, so only inputs of at most T vectors
        can be reused. Records ``xq`` as the new buffer contents.
        """
        same = (self._buffer is not None and xq.shape[0] <= self.cfg.vectors
                and self._buffer.shape == xq.shape and np.array_equal(self._buffer, xq))
        tail = xq.shape[0] % self.cfg.vectors or self.cfg.vectors
        self._buffer = xq if xq.shape[0] <= self.cfg.vectors else xq[-tail:]
        return not same


class HwLinear(nn.Module):
    """One quantized linear layer run through the simulated GEMV engine."""

    def __init__(self, name: str, t: TritTensor, bias: torch.Tensor | None,
                 source_weight: torch.Tensor | None, recorder: HwRecorder):
        super().__init__()
        out_f, in_f = t.shape
        recorder.cfg.check_shape(out_f, in_f, what=name)
        if t.depth != recorder.cfg.depth:
            raise TritforgeError(f"{name}: quantized at depth {t.depth}, the hardware config has "
                                 f"depth {recorder.cfg.depth}")
        self.name = name
        self.in_features, self.out_features = in_f, out_f
        self.t = t
        self.recorder = recorder
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(),
                                                           requires_grad=False)
        self.w_deq = torch.from_numpy(t.dequantize(np.float32))
        self.w_src = None if source_weight is None else source_weight.detach().float().clone()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"depth={self.t.depth}, bias={self.bias is not None}")

    @property
    def weight_bytes(self) -> int:
        """Packed weight-stream bytes of one pass over the matrix (``layout.stream_beats``,
        or ``layout.var_stream_columns`` for a variable-depth matrix)."""
        cfg = self.recorder.cfg
        if self.t.variable:
            return int(varmodel.column_bytes(cfg, self.t.group_depth).sum())
        return cfg.tiles(self.out_features) * self.t.groups * cfg.beat_bytes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise TritforgeError(f"{self.name}: input has {x.shape[-1]} features, "
                                 f"expected {self.in_features}")
        mode = self.recorder.mode
        if mode == "source":
            if self.w_src is None:
                raise TritforgeError(f"{self.name}: the source weights were not kept")
            return nn.functional.linear(x, self.w_src.to(x.dtype), self._bias(x))
        if mode == "dequant":
            return nn.functional.linear(x, self.w_deq.to(x.dtype), self._bias(x))
        flat = x.detach().reshape(-1, self.in_features).to(torch.float64).numpy()
        y = self.hardware(flat)
        out = torch.from_numpy(y).to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out

    def _bias(self, x: torch.Tensor):
        return None if self.bias is None else self.bias.to(x.dtype)

    def accumulate(self, xq: np.ndarray) -> np.ndarray:
        """The engine's exact accumulators for int8 vectors xq (n, in_features or in_padded):
        (n, out) int64, through the cycle model, with the layer's figures recorded."""
        rec = self.recorder
        xq = np.asarray(xq)
        if xq.ndim != 2 or xq.shape[1] not in (self.in_features, self.t.in_padded):
            raise TritforgeError(f"{self.name}: int8 input of shape {xq.shape}, expected "
                                 f"(n, {self.in_features})")
        if xq.size and (int(xq.min()) < -128 or int(xq.max()) > 127):
            raise TritforgeError(f"{self.name}: int8 input outside -128..127")
        xq = xq.astype(np.int8)
        if xq.shape[1] < self.t.in_padded:
            xq = np.concatenate([xq, np.zeros((xq.shape[0], self.t.in_padded - xq.shape[1]), np.int8)], 1)
        if self.t.variable:        # the variable-depth engine (hw/ENGINE.md "Variable-depth stream")
            run = varmodel.run_matrix(rec.cfg, self.t, xq, rec.rate, load_act=rec.needs_load(xq))
        else:
            run = run_matrix(rec.cfg, self.t, xq, load_act=rec.needs_load(xq))
        st = rec.layer(self.name)
        st.calls += 1
        st.vectors += xq.shape[0]
        st.cycles += int(run.cycles)
        st.actions = st.actions + run.actions
        if rec.phase == "decode":          # one token: small; kept for the RTL sample
            st.last_xq, st.last_acc = xq, run.acc
        return run.acc

    def hardware(self, x: np.ndarray) -> np.ndarray:
        """The hardware path for n token vectors x (n, in_features) float -> y (n, out) float64."""
        rec = self.recorder
        xq, s_x = golden.quantize_activations(x, self.t.in_padded)
        y = golden.rescale(self.accumulate(xq), s_x, self.t)
        st = rec.layer(self.name)
        if rec.phase in rec.error_phases:
            ref = (torch.from_numpy(x).float() @ self.w_deq.T).double().numpy()
            st.err_sq += float(np.square(y - ref).sum())
            st.ref_sq += float(np.square(ref).sum())
        return y
