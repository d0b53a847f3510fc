"""The shared field types of the documents and the one-line form of their errors.

Documents are pydantic models (``Doc``: unknown fields refused, instances frozen) whose
fields take exactly the JSON type they name: an integer field refuses ``true``, ``4.0`` and
``"4"``; a number field takes integers and finite floats, no ``true``; a string field no
number. ``validate(model, data, where)`` checks a parsed document and raises
``TritforgeError`` with the first error as one line:
``<where>: <field path>: expected <what>, got <the value, abridged>``.
"""
from __future__ import annotations

import json
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..errors import TritforgeError

#: an integer (no bool, no float, no string)
Int = Annotated[int, Field(strict=True)]
#: a finite number (integer or float; no bool, no string)
Num = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: a string
Str = Annotated[str, Field(strict=True)]
#: a string with something besides white space in it
Text = Annotated[str, Field(strict=True), AfterValidator(lambda v: _nonblank(v))]
#: true or false
Bool = Annotated[bool, Field(strict=True)]
#: a figure of a report: finite and at most 1e30 in size, so that scaling it (s to us, J
#: to mJ) or summing a few thousand of them stays finite
Figure = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e30, le=1e30)]
#: a figure >= 0
Amount = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1e30)]
#: a count >= 0 that fits 63 bits
Count = Annotated[int, Field(strict=True, ge=0, le=(1 << 63) - 1)]
#: a SHA-256 in hex
Sha256 = Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")]


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


class Doc(BaseModel):
    """A document or a part of one: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenDoc(BaseModel):
    """A part of a document that may hold more fields than the ones typed here (they are
    kept, and not used)."""

    model_config = ConfigDict(extra="allow", frozen=True)


M = TypeVar("M", bound=BaseModel)

_EXPECTED = {
    "int_type": "expected an integer", "int_parsing": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected a string", "bool_type": "expected true or false",
    "dict_type": "expected an object", "model_type": "expected an object", "model_attributes_type":
    "expected an object", "list_type": "expected a list", "tuple_type": "expected a list",
    "none_required": "expected null",
}


def _shown(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(model: type[BaseModel], loc) -> list[str] | None:
    """The field names of the (nested) model at ``loc``, if it is one."""
    for part in loc:
        if isinstance(part, int) or model is None:
            return None
        info = model.model_fields.get(part)
        ann = getattr(info, "annotation", None)
        candidates = [ann] + list(getattr(ann, "__args__", ()) or ())
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return sorted(model.model_fields) if model is not None else None


def _message(model: type[BaseModel], err: dict) -> str:
    kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
    got = f", got {_shown(err.get('input'))}"
    if kind == "missing":
        return "missing (a required field)"
    if kind == "extra_forbidden":
        names = _fields_at(model, loc[:-1])
        return "unknown field" + (f"; expected some of {names}" if names is not None else "")
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in _EXPECTED:
        return _EXPECTED[kind] + got
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"expected a value {op} {bound}{got}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} entries{got}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} entries{got}"
    if kind == "literal_error":
        return "expected " + str(ctx.get("expected", "")) + got
    if kind == "string_pattern_mismatch":
        return f"expected a string matching {ctx.get('pattern')}{got}"
    msg = err["msg"]
    return ("expected " + msg[len("Input should be "):] if msg.startswith("Input should be ") else msg) + got


def error_line(model: type[BaseModel], exc: ValidationError, where: str) -> str:
    """The first error of ``exc`` as one line naming ``where`` and the field path."""
    err = exc.errors(include_url=False)[0]
    path = _path(err["loc"])
    return f"{where}: {path + ': ' if path else ''}{_message(model, err)}"


def validate(model: type[M], data, where: str) -> M:
    """``data`` (a parsed document) checked as ``model``; TritforgeError naming ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise TritforgeError(error_line(model, exc, where)) from None
