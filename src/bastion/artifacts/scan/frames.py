"""Pickle FRAMEs read the way ``_pickle.c`` reads them, so the static walk sees what ``pickle.load`` runs.

Protocol 4+ pickles group opcodes in frames (``FRAME n``). A well-formed frame holds whole opcodes:
every read that starts inside a frame ends inside it. When a read straddles the frame's end,
CPython's loaders disagree:

* ``pickle.loads(data)`` and a ``pickletools``-style walk read the bytes contiguously;
* ``pickle.load(file)`` (the C unpickler over a buffered file) keeps a frame it had to *read* as
  its whole buffer; a longer read then discards the rest of the frame and continues at the frame's
  end (``_Unpickler_ReadFromFile`` after ``_Unpickler_SkipConsumed``), so bytes hidden after the
  frame become opcodes (CPython issue 154848);
* the pure-Python unpickler raises ``pickle exhausted before end of frame``.

``FramedReader`` wraps the stream for the walk: it records every framing violation (a straddling
read or seek, a frame opened inside another, a frame longer than the data) while still reading
contiguously. The walker then reports the file as malformed-high and walks the other reading too
(``SkippedStream``: the same bytes with the unread rest of the frame cut out).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

LARGE_PAYLOAD = 64 * 1024  # pickle._FRAME_SIZE_TARGET


@dataclass(frozen=True)
class FrameViolation:
    """A read at ``start`` that the frame ending at ``frame_end`` does not contain."""

    kind: str
    start: int
    frame_end: int


class FramedReader(io.RawIOBase):
    """Contiguous reads over ``inner`` that note where they break the framing ``_pickle.c`` follows."""

    def __init__(self, inner: IO[bytes], ended_at: frozenset[int] = frozenset()) -> None:
        self.inner = inner
        self.frame_end: int | None = None
        self.violations: list[FrameViolation] = []
        self.ended_at = ended_at  # positions where this reading already left its frame (an earlier skip)
        self._fast()

    def _fast(self) -> None:
        """Outside a frame reads go straight to the inner stream (no per-read Python overhead)."""
        self.frame_end = None
        self.read = self.inner.read  # type: ignore[method-assign,assignment]
        self.readline = self.inner.readline  # type: ignore[method-assign,assignment]
        self.seek = self.inner.seek  # type: ignore[method-assign,assignment]

    def _checked(self) -> None:
        for name in ("read", "readline", "seek"):
            self.__dict__.pop(name, None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def _check(self, start: int, n: int, kind: str) -> None:
        end = self.frame_end
        if end is None:
            return
        if start in self.ended_at and start <= end:
            self._fast()
            return
        if start >= end:
            self._fast()  # the frame was used up; what follows is unframed (large objects)
            if start == end and kind == "read" and 1 < n < LARGE_PAYLOAD:
                # CPython writes an argument after its opcode's frame only for payloads of 64 KiB or more
                self.violations.append(FrameViolation("argument split from its opcode", start, end))
            return
        if start + n > end:
            self.violations.append(FrameViolation(kind, start, end))
            self._fast()

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        start = self.inner.tell()
        data = self.inner.read(n)
        self._check(start, len(data) if n is None or n < 0 else n, "read")
        return data

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        start = self.inner.tell()
        data = self.inner.readline(-1 if size is None else size)
        self._check(start, len(data), "line")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        start = self.inner.tell()
        pos = self.inner.seek(offset, whence)
        if pos > start:
            self._check(start, pos - start, "skip")
        return pos

    def start_frame(self, length: int, size: int | None) -> None:
        """A FRAME opcode was read; its ``length`` bytes start at the current position."""
        here = self.inner.tell()
        if self.frame_end is not None and here - 9 < self.frame_end:
            self.violations.append(FrameViolation("frame inside a frame", here - 9, self.frame_end))
        if size is not None and here + length > size:
            self.violations.append(FrameViolation("frame longer than the data", here, here + length))
        self.frame_end = here + length
        self._checked()


class SkippedStream(io.RawIOBase):
    """``inner`` with the bytes ``[cut_start, cut_end)`` removed: the C unpickler's reading of a straddle."""

    def __init__(self, inner: IO[bytes], cut_start: int, cut_end: int) -> None:
        self.inner, self.cut_start, self.cut_end = inner, cut_start, cut_end
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _real(self, pos: int) -> int:
        return pos if pos < self.cut_start else pos + (self.cut_end - self.cut_start)

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        out = b""
        want = n if n is not None and n >= 0 else 1 << 62
        if self.pos < self.cut_start:
            self.inner.seek(self.pos)
            out = self.inner.read(min(want, self.cut_start - self.pos))
            self.pos += len(out)
            want -= len(out)
            if self.pos < self.cut_start or want == 0:
                return out
        self.inner.seek(self._real(self.pos))
        rest = self.inner.read(want if want < 1 << 62 else -1)
        self.pos += len(rest)
        return out + rest

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = b""
        while True:
            c = self.read(1)
            line += c
            if not c or c == b"\n" or (size is not None and 0 <= size <= len(line)):
                return line

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            end = self.inner.seek(0, io.SEEK_END)
            self.pos = end - (self.cut_end - self.cut_start) + offset
        return self.pos
