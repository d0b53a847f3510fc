"""``TritLinear``: a linear layer that keeps its weights as packed trits and computes from them.

The module holds exactly the two tensors of the packed format (``codec.packfile``):

* buffer ``trits`` uint8 (n_bytes,): the matrix's file stream (``layout.pack_matrix``);
* buffer ``codebook`` uint16 (27,): the codebook words;
* ``bias`` (a parameter, as in ``nn.Linear``) when the source layer has one.

So its resident size is the packed size (plus 27 float32 scales). Each ``forward`` rebuilds
the weights, vectorized in torch with no Python loop over groups:

1. a 256 x 5 lookup table turns every byte into its five trits (one embedding gather,
   float32);
2. the first ``rows * groups * (16d + 3)`` trits are viewed as ``(rows, groups, 16d + 3)``;
   trits 0..2 give the codebook index ``k = t0 + 3 t1 + 9 t2 + 13``, the rest the levels
   ``q = sum_i t_i 3**i`` (two small matrix products, exact in float32);
3. ``w = q * scale[k]`` in float32 (the same float32 products the FP16 export rounds), the
   zero padding cut off, cast to the input's dtype, then ``F.linear``.

A variable-depth matrix (``layout.pack_var_matrix``: groups of 4 + 16 k trits, k each
group's own depth) is decoded by ``layout.unpack_var_matrix`` in numpy on the first call
and its levels kept (as :func:`cache_levels` does), since its group starts depend on the
depths before them.

That costs a full unpack per call. :func:`cache_levels` trades memory for speed: it keeps
the decoded int8 levels and uint8 indices, 1 + 1/16 bytes per padded weight (2.4 x the
packed 3.5 bits at d = 2), and then a call only does step 3.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import layout, packfile
from .codebook import Codebook
from .quantize import TritTensor

_LUT: dict = {}


def _byte_table(device) -> torch.Tensor:
    """(256, 5) float32: the trits of every byte (rows 243..255 are never indexed: the
    reader refuses such bytes)."""
    key = str(device)
    if key not in _LUT:
        table = np.zeros((256, layout.TRITS_PER_BYTE), dtype=np.float32)
        for b in range(layout.BYTE_LIMIT):
            table[b] = layout.byte_trits(b)
        _LUT[key] = torch.from_numpy(table).to(device)
    return _LUT[key]


def unpack_levels(trits: torch.Tensor, rows: int, in_padded: int, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """File stream -> q float32 (rows, in_padded / 16, 16) and k int64 (rows, in_padded / 16).

    The trits come out of one embedding lookup (byte -> 5 trits) as float32, so the digit
    sums are small matrix products (exact: every value is an integer below 2**24)."""
    gt = layout.group_trits(depth)
    ng = in_padded // layout.GROUP
    t = F.embedding(trits.to(torch.int64), _byte_table(trits.device))
    t = t.view(-1)[: rows * ng * gt].view(rows, ng, gt)
    dev = trits.device
    k = t[..., : layout.SCALE_TRITS] @ torch.tensor([1.0, 3.0, 9.0], device=dev) + layout.SCALE_OFFSET
    pow3 = torch.tensor([3.0 ** i for i in range(depth)], device=dev)
    q = t[..., layout.SCALE_TRITS:].reshape(rows, ng, layout.GROUP, depth) @ pow3
    return q, k.to(torch.int64)


class TritLinear(nn.Module):
    """A linear layer whose weights are packed balanced-ternary groups (module docstring)."""

    def __init__(self, in_features: int, out_features: int, entry: dict, bias: bool = False,
                 device=None, dtype=None, name: str = "TritLinear"):
        super().__init__()
        depth, shape, in_padded, mode, cb = packfile.entry_geometry(name, entry)
        if shape != (out_features, in_features):
            from ..errors import TritforgeError
            raise TritforgeError(f"{name}: packed shape {shape}, the model's layer is "
                                 f"{(out_features, in_features)}")
        self.in_features, self.out_features = in_features, out_features
        self.depth, self.in_padded, self.mode = depth, in_padded, mode
        self.codebook_meta = cb.to_meta()
        self.variable_depth = entry.get("variable_depth")     # checked by entry_geometry
        n = packfile.stream_bytes(depth, shape, in_padded, packfile.entry_trits(entry))
        self.trits = nn.Buffer(torch.zeros(n, dtype=torch.uint8, device=device))
        self.codebook = nn.Buffer(torch.zeros(layout.CODEBOOK_SIZE, dtype=torch.uint16, device=device))
        self.bias = (nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device), requires_grad=False)
                     if bias else None)
        # plain attributes (not buffers): rebuilt from the metadata, never loaded or saved
        self._scales = torch.tensor(cb.values, dtype=torch.float32, device="cpu")
        self._levels = None

    @classmethod
    def from_trit_tensor(cls, t: TritTensor, bias: torch.Tensor | None = None) -> "TritLinear":
        trits, words = packfile.matrix_arrays(t)
        entry = packfile.matrix_entry(t, trits, words)
        m = cls(t.shape[1], t.shape[0], entry, bias is not None,
                dtype=bias.dtype if bias is not None else None)
        m.trits.copy_(torch.from_numpy(trits))
        m.codebook.copy_(torch.from_numpy(words.view(np.int16)).view(torch.uint16))
        if bias is not None:
            m.bias.data.copy_(bias.detach())
        return m

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, d={self.depth}, "
                f"bias={self.bias is not None}, packed_bytes={self.trits.numel()}")

    def entry(self) -> dict:
        """The metadata entry of the matrix as stored now (with fresh checksums)."""
        words = self.codebook.cpu().view(torch.int16).numpy().view(np.uint16)
        trits = self.trits.cpu().numpy()
        cb = Codebook.from_meta(self.codebook_meta)
        t = TritTensor(np.zeros((1, self.in_padded), np.int8), np.zeros((1, self.in_padded // layout.GROUP), np.uint8),
                       cb, self.depth, (self.out_features, self.in_features), self.mode)
        e = packfile.matrix_entry(t, trits, words)
        e["shape"] = [self.out_features, self.in_features]
        if self.variable_depth is not None:
            e["variable_depth"] = dict(self.variable_depth)
        return e

    def trit_tensor(self, where: str = "TritLinear") -> TritTensor:
        """The matrix as a checked numpy TritTensor (what the hardware simulation takes)."""
        words = self.codebook.cpu().view(torch.int16).numpy().view(np.uint16)
        return packfile.decode_matrix(where, self.entry(), self.trits.cpu().numpy(), words, checked=True)

    def levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._levels is not None:
            return self._levels
        if self.variable_depth is not None:
            t = self.trit_tensor()
            dev = self.trits.device
            q = torch.from_numpy(t.q.reshape(self.out_features, -1, layout.GROUP)).to(dev)
            self._levels = (q, torch.from_numpy(t.k).to(dev))
            return self._levels
        return unpack_levels(self.trits, self.out_features, self.in_padded, self.depth)

    def weight_fp32(self) -> torch.Tensor:
        """The dequantized weights (out, in) in float32: ``q * scale[k]``."""
        q, k = self.levels()
        if self._scales.device != q.device:
            self._scales = self._scales.to(q.device)
        w = q.to(torch.float32) * self._scales[k.long()].unsqueeze(-1)
        return w.view(self.out_features, self.in_padded)[:, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_fp32().to(x.dtype)
        bias = self.bias.to(x.dtype) if self.bias is not None and self.bias.dtype != x.dtype else self.bias
        return F.linear(x, w, bias)

    def to_linear(self, dtype=torch.float32) -> nn.Linear:
        """An ``nn.Linear`` holding the dequantized weights (float32 products, then ``dtype``)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(self.weight_fp32().to(dtype))
            if self.bias is not None:
                lin.bias.copy_(self.bias.to(dtype))
        return lin.requires_grad_(False)


def trit_modules(model: nn.Module) -> dict[str, TritLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, TritLinear)}


def cache_levels(model: nn.Module, on: bool = True) -> int:
    """Keep (``on``) or drop the decoded levels of every TritLinear; returns the bytes the
    cache holds (1 + 1/16 byte per padded weight)."""
    total = 0
    for m in trit_modules(model).values():
        if on:
            m._levels = None
            q, k = m.levels()
            m._levels = (q.to(torch.int8), k.to(torch.uint8))
            total += q.numel() + k.numel()
        else:
            m._levels = None
    return total


def packed_bytes(model: nn.Module) -> int:
    """Bytes the TritLinear modules keep resident: trits, codebook words and float32 scales."""
    return sum(m.trits.numel() + 2 * m.codebook.numel() + 4 * m._scales.numel()
               for m in trit_modules(model).values())
