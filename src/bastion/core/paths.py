"""Where Bastion keeps its state: ``$BASTION_HOME`` (default ``./.bastion``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def bastion_home() -> Path:
    """The state directory; created on first use (never at import time)."""
    # absolute: sandbox workers and other subprocesses may run in another working directory
    home = Path(os.environ.get("BASTION_HOME", ".bastion")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary stream that replaces ``path`` when the block ends, synced to disk; if the block raises,
    the temp file is removed and ``path`` is left as it was. Mode 0600 unless ``mode`` is given."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file and rename: never a half-written file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = 0o644) -> None:
    """Text version of :func:`atomic_write_bytes` (default mode 0644)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)
