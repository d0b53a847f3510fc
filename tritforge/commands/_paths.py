"""How commands print the paths they wrote."""
from __future__ import annotations

import os


def shown(path: str) -> str:
    """``path`` relative to the working folder when it is inside it, else as it is."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
