"""Atomic outputs: a file or folder appears complete or not at all.

Every writer of tritforge (packed files, FP16 exports, reports, JSON results, Verilog,
synthesis and board builds) goes through these, so that no input ever leaves a
half-written output behind, and outputs get the mode a plain write would give them
(``tempfile`` creates 0600 files and 0700 folders).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from .errors import TritforgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _parent(path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise TritforgeError(f"{parent}: cannot create output folder ({exc.strerror})") from None
    return parent


@contextlib.contextmanager
def atomic_file(path: str):
    """Yield a temporary path next to ``path``; on success it becomes ``path``."""
    parent = _parent(path)
    if os.path.isdir(path):
        raise TritforgeError(f"{path}: exists and is a folder, expected a file path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
    except OSError as exc:
        raise TritforgeError(f"{path}: cannot write ({exc.strerror})") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str):
    """Yield a temporary folder next to ``path``; on success it replaces ``path``.

    On any error the temporary folder is removed and ``path`` is left as it was.
    """
    path = os.path.abspath(path)
    parent = _parent(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise TritforgeError(f"{path}: exists and is not a folder")
    try:
        tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
    except OSError as exc:
        raise TritforgeError(f"{path}: cannot write ({exc.strerror})") from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(path)}-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str, data) -> None:
    """Write ``data`` as indented JSON to ``path``, atomically."""
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
