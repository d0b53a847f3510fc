"""Reading a TOML input file (board descriptions, energy tables) with one-line errors that
name the file and what was wrong. A file may be at most ``limits.MAX_BYTES`` long; the
parser's own refusals (a syntax error, an integer literal past Python's 4,300 digits, nesting
past the recursion limit) become such errors. The document models check the rest."""
from __future__ import annotations

import tomllib

from .documents.limits import MAX_BYTES
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
    if len(raw) > MAX_BYTES:
        raise TritforgeError(f"{what} {path}: {len(raw):,} bytes of TOML (at most {MAX_BYTES:,})")
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TritforgeError(f"{what} {path}: not valid TOML ({exc})") from None
    except ValueError as exc:      # an integer literal too long to convert
        raise TritforgeError(f"{what} {path}: not accepted TOML ({str(exc).split(';')[0]})") from None
    except RecursionError:
        raise TritforgeError(f"{what} {path}: nested too deeply") from None
