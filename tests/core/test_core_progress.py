"""One Rich progress set-up: the assessment's per-check bars and the CLI's ``progress_bar`` are both
``bastion.core.progress``."""

from __future__ import annotations

import io
from dataclasses import dataclass

from rich.console import Console

from bastion.core.progress import CheckProgress, progress_bar
from bastion.core.results import CheckResult
from bastion.core.severity import Status


@dataclass
class _Check:
    id: str


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=100, force_terminal=False), buf


def test_one_bar_per_check_ends_full_with_the_status() -> None:
    console, buf = _console()
    with CheckProgress(console) as bars:
        bars.started(_Check("evasion.robustness_curve"))
        bars.progress("evasion.robustness_curve", 1, 4)
        assert bars.progress_ui.tasks[0].completed == 1 and bars.progress_ui.tasks[0].total == 4
        bars.progress("evasion.robustness_curve", 9, 4)  # never past the end
        assert bars.progress_ui.tasks[0].completed == 4
        bars.finished(CheckResult("evasion.robustness_curve", "curve", Status.FAIL))
        bars.finished(CheckResult("data.pii", "pii", Status.ERROR))  # a result whose start was not reported

    tasks = {t.description: t for t in bars.progress_ui.tasks}
    assert tasks["evasion.robustness_curve"].fields["status"] == "[red]fail[/]"
    assert tasks["data.pii"].fields["status"] == "[magenta]error[/]" and tasks["data.pii"].finished
    lines = buf.getvalue().splitlines()
    assert any(ln.startswith("evasion.robustness_curve") and "100%" in ln and ln.rstrip().endswith("fail") for ln in lines)


def test_the_cli_progress_bar_is_the_same_implementation() -> None:
    from bastion.cli import output

    console, buf = _console()
    with progress_bar(True, console) as prog:
        task = prog.add_task("adversarial training", total=2)
        prog.update(task, completed=2)
    assert "adversarial training" in buf.getvalue() and "100%" in buf.getvalue()

    with output.progress_bar(enabled=False) as prog:  # json mode: nothing is drawn
        assert prog.disable and prog.console is output.console
