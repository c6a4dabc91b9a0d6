"""Shared CLI plumbing: output formats, JSON printing, progress bars, exit codes.

Exit codes (documented in docs/cli.md):
0 success / nothing found · 1 findings at or above ``--fail-on`` (or a verification difference)
· 2 error (bad input, bad config, unsafe artifact …) · 3 nothing to do (e.g. nothing scannable).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from bastion.core.progress import progress_bar as _progress_bar


def _console(stderr: bool = False) -> Console:
    """A terminal gets Rich's fitted layout; a pipe or file gets lines that are not wrapped at 80 columns
    (``$COLUMNS`` wide, 160 by default), so logs, ``grep`` and pasted transcripts keep one line per line."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    cols = os.environ.get("COLUMNS", "")
    return Console(stderr=stderr, width=int(cols) if cols.isdigit() and int(cols) > 0 else 160, soft_wrap=True)


console = _console(stderr=True)  # progress, notes, warnings (silenced by --quiet)
errors = _console(stderr=True)  # errors: never silenced
stdout = _console()

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_NOTHING = 3


ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for torch (default: every core torch uses by default; "
                      "OMP_NUM_THREADS is respected). Lower it to share a busy machine.")]


TrustedKeyOpt = Annotated[list[Path] | None, typer.Option(
    "--trusted-key", help="Public key (KEY.pub) that must have signed it; repeatable: any one of them may have.")]


def trusted_keys(new: list[Path] | None, old: Path | list[Path] | None, old_flag: str) -> list[Path]:
    """``--trusted-key`` values, plus a deprecated spelling (``--pub``, ``--key PUB``…) with a note on stderr."""
    keys = list(new or [])
    if old:
        console.print(f"[yellow]deprecated:[/] {old_flag} is now --trusted-key (the old spelling works until the "
                      "next release)", highlight=False)
        keys += list(old) if isinstance(old, list) else [old]
    return keys


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op threads for this command (``None``/0: leave torch's default); return them."""
    from bastion.core.errors import ConfigError

    if threads is not None and threads < 0:
        raise ConfigError(f"--threads must be >= 1 (or 0 for torch's default), got {threads}")
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return int(torch.get_num_threads())


def print_table(table: Any) -> None:
    """Print a rich ``Table`` on stdout: fitted to a terminal, never wrapped or cut when piped or redirected
    (scripts and ``grep`` see every column in full)."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    Console(width=100_000, soft_wrap=True, highlight=False).print(table)


def fmt_value(v: Any) -> str:
    """One value for text output: floats to 4 significant digits, lists comma-separated, mappings as
    ``k=v``, none as ``-`` (``--format json`` keeps full precision and structure)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt_value(x)}" for k, x in v.items()) or "-"
    if isinstance(v, list | tuple):
        return ", ".join(fmt_value(x) for x in v) or "-"
    return str(v)


def print_fields(info: dict[str, Any]) -> None:
    """``key: value`` lines on stdout, values through :func:`fmt_value`, never wrapped."""
    for k, v in info.items():
        stdout.print(f"{k}: {fmt_value(v)}", highlight=False, soft_wrap=True)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def dumps(obj: Any, indent: int | None = 2) -> str:
    """JSON with numpy/enum support."""
    return json.dumps(obj, indent=indent, default=_default, allow_nan=False)


def print_json(obj: Any) -> None:
    """Print one JSON document to stdout (nothing else goes to stdout in json mode)."""
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


def progress_bar(enabled: bool = True) -> AbstractContextManager[Progress]:
    """A rich progress bar on the CLI's stderr console (``bastion.core.progress``; disabled in json mode)."""
    return _progress_bar(enabled, console)
