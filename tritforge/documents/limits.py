"""Limits on every JSON input, checked while it is parsed, before any field is read.

A JSON document may be at most ``MAX_BYTES`` long, nest at most ``MAX_DEPTH`` lists and
objects, hold strings of at most ``MAX_STRING`` characters, number literals of at most
``MAX_NUMBER_CHARS`` characters (finite: no NaN or Infinity), and lists and objects of at
most ``MAX_ITEMS`` entries. The figures are far above what any document tritforge writes
holds (the largest, a run result of a 7B model, nests 5 deep and has lists of a few
hundred entries) and far below what costs noticeable time or memory to parse.
"""
from __future__ import annotations

import json
import math
import re

from ..errors import TritforgeError

MAX_BYTES = 64 << 20
MAX_DEPTH = 32
MAX_STRING = 1 << 20
MAX_NUMBER_CHARS = 64
MAX_ITEMS = 1 << 20

_OPEN_CLOSE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str, where: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH (scanned before the parser recurses)."""
    depth = 0
    for m in _OPEN_CLOSE.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TritforgeError(f"{where}: nested deeper than {MAX_DEPTH} lists and objects")
        elif c in "]}":
            depth -= 1


def _number(kind):
    def parse(s: str):
        if len(s) > MAX_NUMBER_CHARS:
            raise _Refused(f"a number of {len(s):,} characters (at most {MAX_NUMBER_CHARS})")
        v = kind(s)
        if isinstance(v, float) and not math.isfinite(v):
            raise _Refused(f"the number {s} is out of range")
        return v
    return parse


def _constant(s: str):
    raise _Refused(f"{s} (expected a finite number)")


class _Refused(ValueError):
    pass


def _check_tree(data, where: str) -> None:
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                raise TritforgeError(f"{where}: a string of {len(v):,} characters (at most {MAX_STRING:,})")
        elif isinstance(v, (list, dict)):
            if len(v) > MAX_ITEMS:
                raise TritforgeError(f"{where}: a list or object of {len(v):,} entries (at most {MAX_ITEMS:,})")
            if isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                stack.extend(v)


def parse_json(text: str, where: str):
    """The JSON value of ``text`` within the limits; errors name ``where``."""
    if len(text) > MAX_BYTES:
        raise TritforgeError(f"{where}: {len(text):,} characters of JSON (at most {MAX_BYTES:,})")
    _depth(text, where)
    try:
        data = json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_constant)
    except _Refused as exc:
        raise TritforgeError(f"{where}: not accepted JSON ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TritforgeError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise TritforgeError(f"{where}: nested deeper than {MAX_DEPTH} lists and objects") from None
    _check_tree(data, where)
    return data
