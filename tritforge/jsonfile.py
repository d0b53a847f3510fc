"""Reading a JSON input file with errors that name the file and what was wrong."""
from __future__ import annotations

import json

from .errors import TritforgeError


def read_json(path: str, what: str) -> dict:
    """The JSON object in ``path``; ``what`` names the input in errors ("hardware config", ...)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise TritforgeError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise TritforgeError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise TritforgeError(f"{path}: not a text file; expected {what} as JSON") from None
    if not isinstance(data, dict):
        raise TritforgeError(f"{path}: expected a JSON object ({what})")
    return data
