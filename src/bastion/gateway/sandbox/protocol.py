"""Length-prefixed frames over pipes: ``>I`` header length, header, ``>Q`` payload length, payload.

The header is a JSON object, except for the two frames of every request — ``predict`` and its ``ok``
answer, which only carry an array shape — whose header is packed: one op byte (1 predict, 2 ok), the
number of dimensions and each dimension as ``>I`` (a JSON header always starts with ``{``).

Array payloads are not copied on their way through: the writer hands the array's own buffer to
``writev`` next to the prefix, and a reader that knows the payload's shape from the header reads
the payload straight into a fresh array (``read_array``; ``AsyncFrameReader`` does the same from
the event loop). Only the bytes a read happened to take beyond the header are copied once.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

import numpy as np

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 31
_PREFIX = struct.Struct(">I")
_PLEN = struct.Struct(">Q")


class FrameError(Exception):
    """The peer closed the pipe or sent a malformed frame."""


class FrameTimeout(Exception):
    """No complete frame arrived before the deadline."""


_PACKED_OPS = {1: ("op", "predict"), 2: ("ok", True)}


def _encode_header(header: dict[str, Any]) -> bytes:
    shape = header.get("shape")
    if isinstance(shape, list) and len(header) == 2 and len(shape) <= 16:
        op = 1 if header.get("op") == "predict" else 2 if header.get("ok") is True else 0
        if op:
            return struct.pack(f">BB{len(shape)}I", op, len(shape), *shape)
    return json.dumps(header, separators=(",", ":")).encode()


def frame_parts(header: dict[str, Any], payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """The frame as buffers for ``writev``: the prefix, header and length in one, the payload as it is."""
    h = _encode_header(header)
    head = _PREFIX.pack(len(h)) + h + _PLEN.pack(len(payload))
    return [head, payload] if len(payload) else [head]


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    return b"".join(frame_parts(header, payload))


def array_payload(arr: np.ndarray) -> memoryview:
    """A C-contiguous array's own bytes (no copy)."""
    return np.ascontiguousarray(arr).data.cast("B")


def advance(views: list[memoryview], n: int) -> list[memoryview]:
    """What is left of ``views`` after a (partial) write of ``n`` bytes."""
    while n and views:
        if n >= len(views[0]):
            n -= len(views[0])
            views = views[1:]
        else:
            views = [views[0][n:], *views[1:]]
            n = 0
    return [v for v in views if len(v)]


def write_parts(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write every buffer (blocking fd), resuming after partial writes."""
    views = advance([memoryview(p).cast("B") for p in parts], 0)
    while views:
        views = advance(views, os.writev(fd, views))


def write_frame(fd: int, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    write_parts(fd, frame_parts(header, payload))


def _wait_readable(fd: int, deadline: float | None) -> None:
    """Wait for data until ``deadline``; without a deadline the (blocking) read itself waits."""
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise FrameTimeout()
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        raise FrameTimeout()


def _header(raw: bytes) -> dict[str, Any]:
    if raw[:1] in (b"\x01", b"\x02"):
        ndim = raw[1] if len(raw) > 1 else -1
        if len(raw) != 2 + 4 * ndim:
            raise FrameError("malformed packed header")
        key, value = _PACKED_OPS[raw[0]]
        return {key: value, "shape": list(struct.unpack_from(f">{ndim}I", raw, 2))}
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise FrameError(f"malformed header: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError("header is not an object")
    return header


class FrameReader:
    """Buffered frame reader: usually one ``select`` + one ``read`` per frame instead of four."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, n: int, deadline: float | None) -> None:
        while len(self.buf) < n:
            _wait_readable(self.fd, deadline)
            chunk = os.read(self.fd, max(n - len(self.buf), 1 << 16))
            if not chunk:
                raise FrameError("pipe closed")
            self.buf += chunk

    def _take(self, n: int, deadline: float | None) -> bytes:
        self._fill(n, deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_header(self, timeout: float | None = None) -> tuple[dict[str, Any], int, float | None]:
        """The next frame's header and payload length (the payload is still to be read)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        (hlen,) = _PREFIX.unpack(self._take(4, deadline))
        if hlen > MAX_HEADER:
            raise FrameError(f"header of {hlen} bytes is too large")
        header = _header(self._take(hlen, deadline))
        (plen,) = _PLEN.unpack(self._take(8, deadline))
        if plen > MAX_PAYLOAD:
            raise FrameError(f"payload of {plen} bytes is too large")
        return header, plen, deadline

    def read(self, timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
        header, plen, deadline = self.read_header(timeout)
        return header, (self._take(plen, deadline) if plen else b"")

    def read_into(self, out: memoryview, deadline: float | None) -> None:
        """Fill ``out`` (exactly the payload's length) with the payload: buffered bytes first, then ``readv``."""
        k = min(len(self.buf), len(out))
        out[:k] = self.buf[:k]
        del self.buf[:k]
        while k < len(out):
            _wait_readable(self.fd, deadline)
            n = os.readv(self.fd, [out[k:]])
            if n == 0:
                raise FrameError("pipe closed")
            k += n

    def skip(self, n: int, deadline: float | None) -> None:
        while n > 0:
            chunk = self._take(min(n, 1 << 20), deadline)
            n -= len(chunk)


def read_array(reader: FrameReader, plen: int, shape: list[int], dtype: Any, deadline: float | None) -> np.ndarray:
    """Read a payload of ``plen`` bytes into a new array of ``shape`` and ``dtype`` (no intermediate bytes)."""
    arr = np.empty(shape, dtype=dtype)
    if arr.nbytes != plen:
        reader.skip(plen, deadline)
        raise FrameError(f"payload of {plen} bytes does not hold an array {shape} of {np.dtype(dtype).name}")
    reader.read_into(arr.data.cast("B"), deadline)
    return arr


class AsyncFrameReader:
    """Incremental frame parser for a non-blocking fd watched by an event loop (``loop.add_reader``).

    ``feed()`` reads what is available and returns ``(header, payload array)`` once a whole frame is
    in; an array payload (``shape`` in the header) is read straight into its array."""

    def __init__(self, fd: int, dtype: Any = np.float64) -> None:
        self.fd = fd
        self.dtype = dtype
        self.buf = bytearray()
        self._header: dict[str, Any] | None = None
        self._plen = 0
        self._arr: np.ndarray | None = None
        self._view: memoryview | None = None
        self._got = 0

    def _read_some(self) -> bool:
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            raise FrameError("pipe closed")
        self.buf += chunk
        return True

    def _parse_header(self) -> bool:
        if len(self.buf) < 4:
            return False
        (hlen,) = _PREFIX.unpack_from(self.buf, 0)
        if hlen > MAX_HEADER:
            raise FrameError(f"header of {hlen} bytes is too large")
        if len(self.buf) < 12 + hlen:
            return False
        header = _header(bytes(self.buf[4:4 + hlen]))
        (plen,) = _PLEN.unpack_from(self.buf, 4 + hlen)
        if plen > MAX_PAYLOAD:
            raise FrameError(f"payload of {plen} bytes is too large")
        del self.buf[:12 + hlen]
        self._header, self._plen, self._got = header, plen, 0
        shape = header.get("shape")
        if plen and isinstance(shape, list):
            self._arr = np.empty(shape, dtype=self.dtype)
            if self._arr.nbytes != plen:
                raise FrameError(f"payload of {plen} bytes does not hold an array {shape}")
        else:
            self._arr = np.empty(plen, dtype=np.uint8)
        self._view = self._arr.data.cast("B")
        k = min(len(self.buf), plen)
        self._view[:k] = self.buf[:k]
        del self.buf[:k]
        self._got = k
        return True

    def feed(self) -> tuple[dict[str, Any], np.ndarray] | None:
        """Consume what the fd has; a complete frame, or ``None`` if more must arrive."""
        while True:
            if self._header is None:
                if not self._parse_header():
                    if not self._read_some():
                        return None
                    continue
            assert self._view is not None and self._arr is not None and self._header is not None
            while self._got < self._plen:
                try:
                    n = os.readv(self.fd, [self._view[self._got:]])
                except BlockingIOError:
                    return None
                if n == 0:
                    raise FrameError("pipe closed")
                self._got += n
            out = (self._header, self._arr)
            self._header, self._arr, self._view = None, None, None
            return out
