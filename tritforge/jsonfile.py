"""Reading a JSON input file with errors that name the file and what was wrong.

Every JSON input goes through ``read_json``: the file is read as UTF-8 and parsed within
the limits of ``tritforge.documents.limits``; ``read_document`` also checks it against its
document model (``tritforge.documents``).
"""
from __future__ import annotations

import os

from .documents.limits import MAX_BYTES, parse_json
from .errors import TritforgeError


def read_text(path: str, what: str) -> str:
    """The UTF-8 text of ``path``, at most ``MAX_BYTES`` long."""
    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            raise TritforgeError(f"{path}: a folder; expected {what} as a JSON file")
        if size > MAX_BYTES:
            raise TritforgeError(f"{path}: {size:,} bytes; expected {what} of at most {MAX_BYTES:,} bytes")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TritforgeError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TritforgeError(f"{path}: not UTF-8 text; expected {what} as JSON") from None


def read_json(path: str, what: str) -> dict:
    """The JSON object in ``path``; ``what`` names the input in errors ("hardware config", ...)."""
    data = parse_json(read_text(path, what), path)
    if not isinstance(data, dict):
        raise TritforgeError(f"{path}: expected a JSON object ({what})")
    return data


def read_document(path: str, model, what: str):
    """The document in ``path`` checked as ``model`` (a ``tritforge.documents`` model)."""
    from .documents.validation import validate

    return validate(model, read_json(path, what), path)
