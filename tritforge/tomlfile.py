"""Reading a TOML input file (board descriptions, energy tables) with one-line errors that
name the file and what was wrong."""
from __future__ import annotations

import tomllib

from .errors import TritforgeError


def read_bytes(path: str, what: str) -> bytes:
    """The raw bytes of ``path``; ``what`` names the input in errors ("board file", ...)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TritforgeError(f"{what} {path}: cannot read ({exc.strerror})") from None


def read_toml(path: str, what: str) -> tuple[dict, bytes]:
    """The TOML document in ``path`` and its raw bytes (for a content hash)."""
    raw = read_bytes(path, what)
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TritforgeError(f"{what} {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise TritforgeError(f"{what} {path}: nested too deeply") from None
