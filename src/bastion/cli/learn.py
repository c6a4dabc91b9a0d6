"""``bastion learn``: hands-on security labs on the demo models, quizzes, and completion records."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import app
from bastion.cli.output import EXIT_FINDINGS, OutputFormat, console, print_json, print_table, stdout

learn_app = typer.Typer(name="learn", help="Security training: hands-on labs, quizzes and completion records.",
                        no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(learn_app)

LearnerOpt = Annotated[str | None, typer.Option("--learner", help="Who (default: $USER).")]
TeamOpt = Annotated[str | None, typer.Option("--team", help="Team (default: $BASTION_TEAM or 'unassigned').")]
DirOpt = Annotated[Path | None, typer.Option("--dir", help="Lab workspace (default: ./bastion-labs/labN).")]
LabArg = Annotated[int, typer.Argument(help="Lab number 1–6.")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format")]


def _learner(learner: str | None) -> str:
    if learner:
        return learner
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _team(team: str | None) -> str:
    return team or os.environ.get("BASTION_TEAM", "unassigned")


def _workdir(number: int, d: Path | None) -> Path:
    return d if d is not None else Path("bastion-labs") / f"lab{number}"


@learn_app.command("list")
def list_labs(
    learner: LearnerOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """The six labs and the learner's progress."""
    from bastion.govern.training import LABS
    from bastion.govern.training.records import list_records

    who = _learner(learner)
    recs = list_records(learner=who)
    rows: list[dict[str, Any]] = []
    for n, lab in sorted(LABS.items()):
        done = {r.kind for r in recs if r.lab == n and r.passed}
        # every lab ships with Bastion: "available"/"availability" stay in the JSON for existing readers
        rows.append({"lab": n, "slug": lab.slug, "title": lab.title, "goal": lab.goal, "available": True,
                     "availability": "available", "goal_passed": "lab" in done, "quiz_passed": "quiz" in done})
    if fmt == OutputFormat.json:
        print_json({"learner": who, "labs": rows})
        return
    from rich.table import Table

    table = Table(title=f"Bastion security labs — progress of {who}")
    for col in ("#", "lab", "goal", "quiz"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["lab"]), r["title"], "✓" if r["goal_passed"] else "·", "✓" if r["quiz_passed"] else "·")
    print_table(table)


@learn_app.command("start")
def start(
    number: LabArg,
    workdir: DirOpt = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Set up a lab workspace and show its instructions."""
    from bastion.govern.training import lab

    d = _workdir(number, workdir)
    d.mkdir(parents=True, exist_ok=True)
    setup = lab(number).start(d, seed=seed)
    if fmt == OutputFormat.json:
        print_json(setup.to_dict())
    else:
        from rich.markdown import Markdown

        stdout.print(Markdown(setup.instructions))
        console.print(f"workspace: {d}")


@learn_app.command("check")
def check(
    number: LabArg,
    workdir: DirOpt = None,
    learner: LearnerOpt = None,
    team: TeamOpt = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Store the result.")] = True,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Check the lab's goal automatically; exit 1 while it is not reached."""
    from bastion.govern.training import lab
    from bastion.govern.training.records import record_completion

    result = lab(number).check(_workdir(number, workdir))
    out = result.to_dict()
    if record:
        rec = record_completion(_learner(learner), _team(team), number, "lab", result.score, result.passed,
                                {"message": result.message, **result.details})
        out["record_id"] = rec.id
    if fmt == OutputFormat.json:
        print_json(out)
    else:
        stdout.print(("[bold green]PASSED[/] " if result.passed else "[bold yellow]not yet[/] ") + result.message)
    if not result.passed:
        raise typer.Exit(EXIT_FINDINGS)


@learn_app.command("quiz")
def quiz_cmd(
    number: LabArg,
    answers: Annotated[str | None, typer.Option("--answers", help="Comma-separated letters, e.g. b,b,a "
                                                "(asked interactively when omitted).")] = None,
    learner: LearnerOpt = None,
    team: TeamOpt = None,
    record: Annotated[bool, typer.Option("--record/--no-record")] = True,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Take the lab's short quiz; exit 1 when below the pass mark (2 of 3)."""
    from bastion.govern.training import grade_quiz, quiz
    from bastion.govern.training.records import record_completion

    questions = quiz(number)
    if answers is None:
        picked = []
        for i, q in enumerate(questions, 1):
            stdout.print(f"[bold]{i}. {q.q}[/]")
            for j, c in enumerate(q.choices):
                stdout.print(f"   {chr(ord('a') + j)}) {c}")
            picked.append(typer.prompt("answer"))
    else:
        picked = answers.split(",")
    graded = grade_quiz(number, picked)
    if record:
        rec = record_completion(_learner(learner), _team(team), number, "quiz", graded["score"], graded["passed"],
                                {"correct": graded["correct"]})
        graded["record_id"] = rec.id
    if fmt == OutputFormat.json:
        print_json(graded)
    else:
        for line in graded["feedback"]:
            stdout.print(line)
        stdout.print(f"score {graded['score']:.0%} — " + ("passed" if graded["passed"] else "not passed"))
    if not graded["passed"]:
        raise typer.Exit(EXIT_FINDINGS)


@learn_app.command("record")
def record_cmd(
    lab_number: Annotated[int, typer.Option("--lab", help="Lab number 1–6.")],
    score: Annotated[float, typer.Option("--score", help="0..1")],
    learner: Annotated[str, typer.Option("--learner")],
    team: Annotated[str, typer.Option("--team")],
    kind: Annotated[str, typer.Option("--kind", help="lab or quiz")] = "lab",
    passed: Annotated[bool, typer.Option("--passed/--failed")] = True,
    note: Annotated[str, typer.Option("--note", help="e.g. 'instructor-led session 2026-03-02'")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record a completion by hand (e.g. an instructor-led session); marked as manual in the record."""
    from bastion.govern.training.records import record_completion

    rec = record_completion(learner, team, lab_number, kind, score, passed,  # type: ignore[arg-type]
                            {"manual": True, "recorded_by": _learner(None), "note": note})
    if fmt == OutputFormat.json:
        print_json(rec.to_dict())
    else:
        stdout.print(f"recorded #{rec.id}: {rec.learner} ({rec.team}) lab {rec.lab} {rec.kind} "
                     f"score {rec.score:.2f} {'passed' if rec.passed else 'failed'}")


@learn_app.command("records")
def records_cmd(
    team: Annotated[str | None, typer.Option("--team")] = None,
    learner: Annotated[str | None, typer.Option("--learner")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Completion records and coverage per team (AI-literacy evidence)."""
    from bastion.govern.training.records import list_records, team_coverage

    recs = list_records(learner=learner, team=team)
    cov = [c for c in team_coverage() if team is None or c["team"] == team]
    if fmt == OutputFormat.json:
        print_json({"records": [r.to_dict() for r in recs], "coverage": cov})
        return
    from rich.table import Table

    table = Table(title="Training coverage per team (lab goal + quiz passed)")
    for col in ("team", "learners", *(f"lab {i}" for i in range(1, 7)), "coverage"):
        table.add_column(col)
    for c in cov:
        table.add_row(c["team"], str(c["learners"]), *(str(c["completed_per_lab"][i]) for i in range(1, 7)),
                      f"{c['coverage']:.0%}")
    print_table(table)
    for r in recs[-20:]:
        stdout.print(f"{r.completed_at[:19]} {r.learner} ({r.team}) lab {r.lab} {r.kind} {r.score:.2f} "
                     f"{'passed' if r.passed else 'failed'}")
