"""Length-prefixed frames over pipes: ``>I`` header length, JSON header, ``>Q`` payload length, payload."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 31


class FrameError(Exception):
    """The peer closed the pipe or sent a malformed frame."""


class FrameTimeout(Exception):
    """No complete frame arrived before the deadline."""


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(h)) + h + struct.pack(">Q", len(payload)) + payload


def write_frame(fd: int, header: dict[str, Any], payload: bytes = b"") -> None:
    data = memoryview(encode_frame(header, payload))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise FrameTimeout()
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise FrameError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
    deadline = None if timeout is None else time.monotonic() + timeout
    (hlen,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if hlen > MAX_HEADER:
        raise FrameError(f"header of {hlen} bytes is too large")
    try:
        header = json.loads(_read_exact(fd, hlen, deadline))
    except ValueError as exc:
        raise FrameError(f"malformed header: {exc}") from None
    (plen,) = struct.unpack(">Q", _read_exact(fd, 8, deadline))
    if plen > MAX_PAYLOAD:
        raise FrameError(f"payload of {plen} bytes is too large")
    payload = _read_exact(fd, plen, deadline) if plen else b""
    if not isinstance(header, dict):
        raise FrameError("header is not an object")
    return header, payload
