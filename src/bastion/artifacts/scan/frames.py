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

The walk reads contiguously at full speed and compares each opcode's offset with the current
frame's end; only an opcode that reaches past the end is re-read read by read (``opcode_violations``)
to find the read that broke the frame. Every violation (a straddling read or skip, an argument split
from its opcode, a frame opened inside another) is reported as malformed-high, and the reading
``pickle.load(file)`` makes of it is walked too (``SkippedStream``: the same bytes with the unread
rest of the frame cut out).
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
    """Reads of ``inner`` that note where they break a frame ending at ``frame_end`` (used to re-read the
    one opcode that reaches past a frame's end, read by read, as ``_pickle.c`` would)."""

    def __init__(self, inner: IO[bytes], frame_end: int, ended_at: frozenset[int] = frozenset()) -> None:
        self.inner = inner
        self.frame_end: int | None = frame_end
        self.violations: list[FrameViolation] = []
        self.ended_at = ended_at  # positions where this reading already left its frame (an earlier skip)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def _check(self, start: int, n: int, kind: str) -> None:
        end = self.frame_end
        if end is None:
            return
        if start in self.ended_at and start <= end:
            self.frame_end = None
            return
        if start >= end:
            self.frame_end = None  # the frame was used up; what follows is unframed (large objects)
            if start == end and kind == "read" and 1 < n < LARGE_PAYLOAD:
                # CPython writes an argument after its opcode's frame only for payloads of 64 KiB or more
                self.violations.append(FrameViolation("argument split from its opcode", start, end))
            return
        if start + n > end:
            self.violations.append(FrameViolation(kind, start, end))
            self.frame_end = None

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


def opcode_violations(fh: IO[bytes], op_start: int, frame_end: int, ended_at: frozenset[int]) -> list[FrameViolation]:
    """Re-read the one opcode at ``op_start`` that reaches past ``frame_end`` and say which read broke the frame."""
    import pickletools

    saved = fh.tell()
    reader = FramedReader(fh, frame_end, ended_at)
    fh.seek(op_start)
    try:
        next(pickletools.genops(reader), None)  # type: ignore[arg-type]
    except (ValueError, EOFError, UnicodeDecodeError):
        pass
    finally:
        fh.seek(saved)
    return reader.violations


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
        limit = size if size is not None and size >= 0 else 1 << 62
        if self.pos < self.cut_start:
            self.inner.seek(self.pos)
            line = self.inner.readline(min(limit, self.cut_start - self.pos))
            self.pos += len(line)
            if line.endswith(b"\n") or len(line) >= limit or self.pos < self.cut_start:
                return line
            return line + self.readline(limit - len(line))
        self.inner.seek(self._real(self.pos))
        line = self.inner.readline(-1 if limit == 1 << 62 else limit)
        self.pos += len(line)
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
