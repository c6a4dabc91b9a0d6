"""Reading and writing tables (CSV/TSV, Parquet) for the data commands, atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from bastion.core.errors import InvalidInputError, UnsupportedFormatError
from bastion.core.paths import atomic_write_bytes


def read_table(path: str | os.PathLike[str], text: bool = False) -> pd.DataFrame:
    """A CSV/TSV/Parquet table; ``text=True`` keeps CSV cells as written (``+4915…``, ``0770…``: no int parse)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p} not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str if text else None)
        if suffix == ".parquet":
            return pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInputError(f"{p} cannot be read as a table: {exc}") from None
    raise UnsupportedFormatError(f"{p}: unsupported table format {suffix!r} (use .csv, .tsv or .parquet)")


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        data = buf.getvalue()
    elif suffix in (".csv", ".tsv", ".txt"):
        data = df.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",").encode("utf-8")
    else:
        raise UnsupportedFormatError(f"{p}: write .csv, .tsv or .parquet")
    atomic_write_bytes(p, data, mode=0o600)
    return p
