"""Reading a file a command was pointed at (keys, contexts, fingerprints, truth files): one way, one set
of refusals, each naming the file and what to do about it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bastion.core.errors import BastionError, ConfigError, InvalidInputError

T = TypeVar("T")


def read_input_file(path: str | os.PathLike[str], what: str, parse: Callable[[bytes, str], T], *, hint: str = "",
                    private: bool = False, missing_error: type[BastionError] = InvalidInputError) -> T:
    """``parse(content, str(path))`` of the file at ``path``, after the checks every reader of such a file makes.

    Refusals: ``missing_error("{what} {path} not found; {hint}")`` when it is not a file (``hint`` says how to
    make one); for a ``private`` file (a secret key), ``ConfigError`` unless only its owner may read it (mode
    0600 or stricter). ``parse`` refuses content that is not what it should be, with its own error.
    """
    p = Path(path)
    if not p.is_file():
        raise missing_error(f"{what} {p} not found" + (f"; {hint}" if hint else ""))
    if private:
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{what} {p} has mode {oct(mode)}; it must be 0600 (chmod 600 {p})")
    return parse(p.read_bytes(), str(p))


def parse_json(data: bytes, where: str, error: type[BastionError] = InvalidInputError) -> Any:
    """``data`` (UTF-8) as JSON, or ``error("{where} is not JSON: {why}")``."""
    try:
        return json.loads(data.decode())
    except ValueError as exc:
        raise error(f"{where} is not JSON: {exc}") from None
