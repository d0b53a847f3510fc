"""Parameter checks of the components, made in ``__new__`` before anything is built (as
Amaranth's own library checks): a wrong type is a ``TypeError``, a value out of range a
``ValueError``."""
from __future__ import annotations

from ..hwconfig import HwConfig


def check_config(owner: str, cfg) -> HwConfig:
    if not isinstance(cfg, HwConfig):
        raise TypeError(f"{owner} cfg must be a HwConfig, not {cfg!r}")
    return cfg


def check_int(owner: str, name: str, value, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{owner} {name} must be at least {minimum}, not {value}")
    return value
