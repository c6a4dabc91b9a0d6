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


class FrameReader:
    """Buffered frame reader: usually one ``select`` + one ``read`` per frame instead of four."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _need(self, n: int, deadline: float | None) -> None:
        while len(self.buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FrameTimeout()
                ready, _, _ = select.select([self.fd], [], [], left)
                if not ready:
                    raise FrameTimeout()
            chunk = os.read(self.fd, max(n - len(self.buf), 1 << 16))
            if not chunk:
                raise FrameError("pipe closed")
            self.buf += chunk

    def _take(self, n: int, deadline: float | None) -> bytes:
        self._need(n, deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self, timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
        deadline = None if timeout is None else time.monotonic() + timeout
        (hlen,) = struct.unpack(">I", self._take(4, deadline))
        if hlen > MAX_HEADER:
            raise FrameError(f"header of {hlen} bytes is too large")
        try:
            header = json.loads(self._take(hlen, deadline))
        except ValueError as exc:
            raise FrameError(f"malformed header: {exc}") from None
        (plen,) = struct.unpack(">Q", self._take(8, deadline))
        if plen > MAX_PAYLOAD:
            raise FrameError(f"payload of {plen} bytes is too large")
        payload = self._take(plen, deadline) if plen else b""
        if not isinstance(header, dict):
            raise FrameError("header is not an object")
        return header, payload


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
