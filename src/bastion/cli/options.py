"""Options several commands share, and the one way a command honours ``--format``.

- ``FormatOpt``: ``--format text|json`` (json: one JSON document on stdout, nothing else); ``SeedOpt``: ``--seed``.
- The target options of a command that loads a model and its data (``--model``, ``--demo``, ``--label``,
  ``--endpoint``, ``--query-budget``, ``--clip-min``, ``--clip-max``): the same flag means the same thing
  everywhere, so it is declared once.
- :func:`print_result`: a command's result as JSON or as text; :func:`print_rows`: a list as JSON or as a
  table. A command then only says *what* it shows, never repeats how ``--format`` is honoured.

Flags, defaults and help texts are the command-line contract (users script against them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bastion.cli.output import OutputFormat, print_json, print_table, stdout

if TYPE_CHECKING:
    from rich.table import Table

T = TypeVar("T")

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="text or json.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random process.")]

# ------------------------------------------------------------------------------------------------ target
ModelOpt = Annotated[Path | None, typer.Option(
    "--model", "-m", help="Model file: TorchScript .pt, torch.export .pt2, ONNX, .skops.")]
DemoOpt = Annotated[str | None, typer.Option(
    "--demo", help="Built-in demo target: digits, mnist, breast-cancer (or breast-cancer-sklearn).")]
LabelOpt = Annotated[str | None, typer.Option("--label", help="Label column of a CSV/Parquet table.")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", help="Remote predict URL (black-box) instead of --model.")]
QueryBudgetOpt = Annotated[int | None, typer.Option("--query-budget", help="Most samples the endpoint may be sent.")]
ClipMinOpt = Annotated[float | None, typer.Option(
    "--clip-min", help="Lowest valid input value (default: sidecar, model metadata, else inferred from the data).")]
ClipMaxOpt = Annotated[float | None, typer.Option(
    "--clip-max", help="Highest valid input value (default: sidecar, model metadata, else inferred from the data).")]


# ------------------------------------------------------------------------------------------------ output
def print_result(fmt: OutputFormat, doc: Any, text: str | Callable[[], object], **print_kw: Any) -> None:
    """A command's result: ``--format json`` prints DOC as the one JSON document on stdout; text mode prints
    TEXT on stdout (``stdout.print(TEXT, **PRINT_KW)``), or calls it when it is a function that prints the
    text view itself (for views that are more than a line, or that only make sense in text mode)."""
    if fmt == OutputFormat.json:
        print_json(doc)
    elif callable(text):
        text()
    else:
        stdout.print(text, **print_kw)


def rows_table(columns: Sequence[str], rows: Iterable[T], cells: Callable[[T], Sequence[str]],
               **table_kw: Any) -> Table:
    """A rich ``Table`` with COLUMNS and one row of ``CELLS(row)`` per row (TABLE_KW: title and the like)."""
    from rich.table import Table

    table = Table(*columns, **table_kw)
    for row in rows:
        table.add_row(*cells(row))
    return table


def print_rows(fmt: OutputFormat, rows: Sequence[T], columns: Sequence[str], cells: Callable[[T], Sequence[str]],
               **table_kw: Any) -> None:
    """A list a command shows: ``--format json`` prints it as one JSON list (each row's ``to_dict()``, or the
    row itself when it is already a mapping); text mode prints it as a table (:func:`rows_table`)."""
    if fmt == OutputFormat.json:
        print_json([r.to_dict() if hasattr(r, "to_dict") else r for r in rows])
        return
    print_table(rows_table(columns, rows, cells, **table_kw))
