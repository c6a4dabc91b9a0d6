"""Opcode-level pickle writers for the peer corpus: payloads are assembled, never produced by calling them.

A case names the peer test suite it comes from and what that suite expects of it:

* ``malicious`` — the peer flags it; Bastion must report high or critical;
* ``benign`` — the peer passes it; Bastion must report ``safe`` with nothing at high or above;
* ``unreadable`` — encrypted, truncated or not a model (the peer reports an error or skips it);
  Bastion must say ``error`` or ``unscanned``, never ``safe`` and never high;
* ``policy`` — the peer flags a reference an allowlist does not know, with no call (``ast.parse``):
  Bastion must report at least medium.

Every payload only touches the marker file, and the tests assert that the marker never appears.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPECTATIONS = ("malicious", "benign", "unreadable", "policy")


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    peer: str  # picklescan | modelscan | fickling
    expect: str  # one of EXPECTATIONS
    source: str  # the peer's test or data file this case reproduces


class Writer:
    """Collects cases of one peer suite in one directory."""

    def __init__(self, d: Path, peer: str, marker: Path) -> None:
        self.d, self.peer, self.marker = d, peer, marker
        self.cmd = f"touch {marker}"
        self.py = f"__import__('os').system('touch {marker}')"
        self.cases: list[Case] = []
        d.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.d / name

    def add(self, name: str, data: bytes | None, expect: str, source: str = "") -> Path:
        assert expect in EXPECTATIONS
        p = self.d / name
        if data is not None:
            p.write_bytes(data)
        self.cases.append(Case(f"{self.peer}/{name}", p, self.peer, expect, source or name))
        return p


def u(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


def header(proto: int) -> bytes:
    return b"\x80" + bytes([proto]) if proto >= 2 else b""


def glob(module: str, name: str, proto: int = 4) -> bytes:
    """Push ``module.name`` the way ``pickle`` would write it at ``proto`` (dotted names via getattr below 4)."""
    if proto >= 4:
        return u(module) + u(name) + b"\x93"
    if proto < 3:
        module = _compat_pickle.REVERSE_IMPORT_MAPPING.get(module, module)
    first, _, rest = name.partition(".")
    head = b"c" + f"{module}\n{first}\n".encode()
    for attr in rest.split(".") if rest else []:
        head = glob("builtins", "getattr", proto) + b"(" + head + b"V" + attr.encode() + b"\ntR"
    return head


def args(values: tuple[Any, ...], proto: int) -> bytes:
    """A tuple of literals as opcodes (memo indices start at 0; the globals above are not memoized)."""
    if proto == 0:
        return pickle.dumps(values, 0)[:-1]
    return pickle.dumps(values, min(proto, 3))[2:-1]


def call(module: str, name: str, values: tuple[Any, ...] = (), proto: int = 4) -> bytes:
    """``module.name(*values)`` as a complete pickle."""
    return header(proto) + glob(module, name, proto) + args(values, proto) + b"R."


def frame(body: bytes, declared: int) -> bytes:
    return b"\x80\x05\x95" + struct.pack("<Q", declared) + body
