"""What fits in this machine's memory: sizes a user gives are checked here before anything
is allocated for them.

``available_bytes()`` is the kernel's estimate of the memory a new allocation can get
without swapping (``MemAvailable`` in /proc/meminfo; elsewhere the physical pages, times
one half). ``check_fits(nbytes, what)`` refuses a request that needs more, with the
figures in the one-line error; ``check_matrix`` and ``check_context`` size the two requests
a user controls (a drawn matrix, a generation's KV caches) before they are made.
"""
from __future__ import annotations

import os

from .errors import TritforgeError


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError):
        return 1 << 32


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(nbytes: float, what: str) -> None:
    """Refuse ``what`` when its ``nbytes`` exceed the memory available now."""
    have = available_bytes()
    if nbytes > have:
        raise TritforgeError(f"{what}: needs about {_gib(nbytes)} of memory; this machine has "
                             f"{_gib(have)} available")


#: bytes per weight of a matrix a command draws and quantizes: the float64 draw, its
#: float32 copy, the quantizer's levels, indices, per-group temporaries and packed stream
BYTES_PER_WEIGHT = 48
#: bytes per activation element (vector x in) and per accumulator (vector x out): the
#: float64 draw, the int8 activations, the int64 accumulators of the golden reference and
#: of each cycle model
BYTES_PER_VECTOR_ELEMENT = 32


def check_matrix(out: int, n_in: int, vectors: int, what: str) -> None:
    """Refuse a matrix of ``out`` x ``n_in`` with ``vectors`` activation vectors that does
    not fit the available memory."""
    need = out * n_in * BYTES_PER_WEIGHT + vectors * (n_in + out) * BYTES_PER_VECTOR_ELEMENT
    check_fits(need, what)


#: bytes per element of a K or V row a generation keeps per layer and position: the
#: transformers float32 cache, the layer path's int8 cache with its per-token scales and
#: float copy, and the attention scores over the context
BYTES_PER_KV_ELEMENT = 16


def check_context(layers: int, kv_width: int, tokens: int, what: str) -> None:
    """Refuse a generation of ``tokens`` positions (prompt and new tokens) whose K and V
    caches (``layers`` x 2 x ``kv_width`` elements per position) do not fit the memory."""
    check_fits(layers * 2 * kv_width * tokens * BYTES_PER_KV_ELEMENT, what)
