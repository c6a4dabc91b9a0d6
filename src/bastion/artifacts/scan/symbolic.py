"""The symbolic values of the static pickle walk: what a stack slot holds instead of a real object.

A literal (``None``, numbers, ``str``, ``bytes``, and tuples/lists/dicts of literals) is kept as
the plain Python value. A ``find_class`` result is a ``SymGlobal``; the result of a call
(``REDUCE``/``NEWOBJ``/``INST``/``OBJ``) is a ``SymCall``; anything the walk cannot know
(persistent ids, out-of-band buffers, extension codes) is ``SymOpaque``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_LITERAL_DEPTH = 32


@dataclass(eq=False)
class SymGlobal:
    module: str
    name: str
    offset: int

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def entry(self) -> str:
        return f"{self.module}:{self.name}"


@dataclass(eq=False)
class SymCall:
    func: Any
    args: Any
    offset: int
    state: Any = None


@dataclass(eq=False)
class SymOpaque:
    what: str


_SCALARS = (str, bytes, bytearray, int, float, bool, type(None))


def is_literal(v: Any, depth: int = 0) -> bool:
    """True when ``v`` holds no global, call result or unknown value (only constants and containers of them)."""
    if isinstance(v, _SCALARS):
        return True
    if depth >= MAX_LITERAL_DEPTH:
        return False
    if isinstance(v, tuple | list):
        return all(is_literal(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(is_literal(k, depth + 1) and is_literal(x, depth + 1) for k, x in v.items())
    return False


def literal(v: Any, depth: int = 0) -> Any:
    """Best-effort plain value of a symbolic value (None where a part is not a literal)."""
    if depth > 8:
        return None
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, tuple | list):
        return type(v)(literal(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return {literal(k, depth + 1): literal(x, depth + 1) for k, x in v.items() if isinstance(k, str)}
    return None
