"""The fields of an HF ``config.json`` that tritforge reads: the model's shape.

Read by the estimator (``sim.estimate.load_shape``: a bundled shape or any config.json)
and by the checkpoint loader (``codec.checkpoint``, before transformers sees the file).
Each field, where present, is a positive integer no larger than its bound below (far above
any published model: hidden 16,384, 126 layers, vocabulary 256 K); other fields are the
model family's and are left to transformers. The estimator needs the first four.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .validation import Int, OpenDoc

REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def _size(hi: int):
    return Annotated[Int, Field(ge=1, le=hi)] | None


class ModelShape(OpenDoc):
    hidden_size: _size(1 << 17) = None
    intermediate_size: _size(1 << 20) = None
    num_hidden_layers: _size(1 << 12) = None
    num_attention_heads: _size(1 << 12) = None
    num_key_value_heads: _size(1 << 12) = None
    head_dim: _size(1 << 12) = None
    vocab_size: _size(1 << 23) = None
    max_position_embeddings: _size(1 << 24) = None
