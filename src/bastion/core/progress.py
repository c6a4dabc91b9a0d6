"""Rich progress bars on stderr: the one set-up behind the CLI's long jobs and the assessment's per-check bars.

``progress_bar(enabled, console)`` is a context manager yielding a ``rich.progress.Progress`` (one task per
training run, federated round …); ``CheckProgress`` is the assessment runner's ``ProgressReporter``: one bar
per check, advanced by ``ctx.progress(done, total)`` and closed with the check's status in colour. Rich is
imported when a bar is made, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from bastion.core.results import CheckResult

STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "error": "magenta", "skipped": "dim"}


def progress_display(console: Console | None = None, *, enabled: bool = True, status: bool = False,
                     description_width: int | None = None) -> Progress:
    """A ``Progress`` with description, bar, percentage and elapsed time (and a ``status`` field column)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

    width = f":<{description_width}" if description_width else ""
    columns: list[str | ProgressColumn] = [TextColumn(f"[bold]{{task.description{width}}}"), BarColumn(),
                                           TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    return Progress(*columns, console=console or Console(stderr=True), disable=not enabled, transient=False)


@contextmanager
def progress_bar(enabled: bool = True, console: Console | None = None) -> Iterator[Progress]:
    """A progress display on stderr (``enabled=False``: nothing is drawn) for as long as the block runs."""
    with progress_display(console, enabled=enabled) as prog:
        yield prog


class _Identified(Protocol):
    id: str


class CheckProgress:
    """One progress bar per check (a ``ProgressReporter`` for ``run_assessment``), on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress_ui = progress_display(console, status=True, description_width=28)
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> CheckProgress:
        self.progress_ui.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress_ui.stop()

    def started(self, check: _Identified) -> None:
        self._tasks[check.id] = self.progress_ui.add_task(check.id, total=None, status="")

    def progress(self, check_id: str, done: float, total: float) -> None:
        task = self._tasks.get(check_id)
        if task is not None and total > 0:
            self.progress_ui.update(task, completed=min(done, total), total=total)

    def finished(self, result: CheckResult) -> None:
        task = self._tasks.get(result.check_id)
        if task is None:
            task = self._tasks[result.check_id] = self.progress_ui.add_task(result.check_id, total=1, status="")
        total = self.progress_ui.tasks[task].total or 1
        style = STATUS_STYLE.get(result.status.value, "white")
        self.progress_ui.update(task, completed=total, total=total, status=f"[{style}]{result.status.value}[/]")
