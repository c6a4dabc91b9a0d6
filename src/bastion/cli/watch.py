"""``bastion history MODEL`` and ``bastion watch add|list|remove|run|serve``: continuous re-assessment.

``watch run`` exit codes: 0 nothing regressed · 1 a run found a new or worse finding (an incident
was opened) · 2 a watched model could not be re-assessed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.groups import app, watch_app
from bastion.cli.options import FormatOpt, print_result, print_rows
from bastion.cli.output import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_NOTHING,
    OutputFormat,
    ThreadsOpt,
    console,
    stdout,
    use_threads,
)


def _store() -> None:
    from bastion.store.db import upgrade

    upgrade()


@app.command("history")
def history(
    model: Annotated[str, typer.Argument(help="Model key: the registered name (watch runs) or the assessed file's name.")],
    limit: Annotated[int, typer.Option("--limit", help="Newest runs to show.")] = 20,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Stored assessments of a model, newest first, with the verdict trend against the run before each."""
    from bastion.assess.history import runs, trend

    _store()
    rows = runs(model, limit=limit + 1)
    shown = rows[:limit]
    trends = [trend(rows[i + 1] if i + 1 < len(rows) else None, r) for i, r in enumerate(shown)]
    if not shown and fmt == OutputFormat.text:
        stdout.print(f"no stored assessment of {model} (bastion assess and bastion watch run store every run)")
        raise typer.Exit(EXIT_NOTHING)
    print_rows(fmt, [{**r.to_dict(), "trend": t} for r, t in zip(shown, trends, strict=True)],
               ("run", "when (UTC)", "source", "model sha256", "bastion", "catalog", "profile", "findings", "worst",
                "trend", "verdict"), _history_cells, title=f"history · {model}", title_justify="left")


def _history_cells(r: dict[str, Any]) -> tuple[str, ...]:
    color = {"worse": "red", "better": "green"}.get(r["trend"], "white")
    return (str(r["id"]), r["created_at"].replace("T", " ")[:19], r["source"], r["model_sha256"][:12],
            r["bastion_version"], r["catalog_version"] or "-", r["profile"], str(r["n_findings"]),
            r["max_severity"] or "none", f"[{color}]{r['trend']}[/]", r["verdict"])


@watch_app.command("add")
def add(
    model: Annotated[str, typer.Argument(help="Registered model name (its production alias is re-assessed).")],
    data: Annotated[str, typer.Option("--data", "-d", help="Labelled data: a file, demo:NAME or dataset:NAME.")],
    profile: Annotated[str, typer.Option("--profile", help="quick | standard | thorough.")] = "standard",
    every: Annotated[str, typer.Option("--every", help="Re-assess at least this often: 90s, 30m, 12h, 7d, 2w.")] = "7d",
    on: Annotated[str, typer.Option("--on", help="Also re-assess on: model-change, bastion-upgrade, catalog-change "
                                                 "(comma-separated).")] = "model-change,bastion-upgrade,catalog-change",
    only: Annotated[list[str] | None, typer.Option("--only", help="Check id or prefix (repeatable).")] = None,
    demote: Annotated[bool, typer.Option("--demote", help="Roll production back to the previous verified version "
                                                          "when a run finds a new or worse finding at --demote-at.")] = False,
    demote_at: Annotated[str, typer.Option("--demote-at", help="Severity that demotes (with --demote).")] = "high",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Watch a registered model: re-assess it on a schedule and on changes; incidents on regressions."""
    from bastion.govern.watch import add_watch

    _store()
    pol = add_watch(model, data, profile=profile, every=every, on=on, only=only, demote=demote, demote_at=demote_at)
    print_result(fmt, pol, f"watching {model}: profile {profile}, every {every}, on {', '.join(pol['on']) or '-'}"
                           f"{', demote at ' + pol['demote_at'] if demote else ''}; next run: {pol['next_due_at']}",
                 highlight=False, soft_wrap=True)


@watch_app.command("list")
def list_(fmt: FormatOpt = OutputFormat.text) -> None:
    """Watched models, their policies and when each is next due."""
    from bastion.govern.watch import list_watches

    _store()
    print_rows(fmt, list_watches(), ("model", "profile", "every (s)", "on", "demote", "last run", "next due"),
               lambda r: (r["model"], r["profile"], f"{r['every_s']:g}", ",".join(r["on"]) or "-",
                          r["demote_at"] if r["demote"] else "no", str(r["last_run_id"] or "-"), r["next_due_at"]),
               title="watched models", title_justify="left")


@watch_app.command("remove")
def remove(model: Annotated[str, typer.Argument()]) -> None:
    """Stop watching a model (its stored runs stay)."""
    from bastion.core.errors import ConfigError
    from bastion.govern.watch import remove_watch

    _store()
    if not remove_watch(model):
        raise ConfigError(f"{model} is not watched")
    stdout.print(f"no longer watching {model}")


@watch_app.command("run")
def run(
    model: Annotated[str | None, typer.Argument(help="Only this model (default: every watched model).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-assess even when nothing is due.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="Where checks run: local or ray.")] = "local",
    fmt: FormatOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """One pass (for cron or CI): re-assess what is due, store the runs, open incidents on regressions."""
    use_threads(threads)
    from bastion.govern.watch import run_due

    _store()
    outcomes = run_due(model, force=force, executor=executor, log=lambda m: console.print(m))
    print_result(fmt, [o.to_dict() for o in outcomes], lambda: _print_outcomes(outcomes))
    if any(o.status == "error" for o in outcomes):
        raise typer.Exit(EXIT_ERROR)
    if any(o.incident_id for o in outcomes):
        raise typer.Exit(EXIT_FINDINGS)


def _print_outcomes(outcomes: list[Any]) -> None:
    for o in outcomes:
        line = f"{o.model}: {o.status}"
        if o.reasons:
            line += f" ({'; '.join(o.reasons)})"
        if o.run_id is not None:
            d = o.diff
            line += (f" → run {o.run_id}: {len(d.get('new', []))} new, {len(d.get('worse', []))} worse, "
                     f"{len(d.get('better', []))} better, {len(d.get('gone', []))} gone")
        if o.incident_id:
            line += f"; incident {o.incident_id} opened"
        if o.demoted:
            line += f"; production demoted: {o.demoted}"
        if o.error:
            line += f": {o.error}"
        stdout.print(line, highlight=False, soft_wrap=True)


@watch_app.command("serve")
def serve(
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes.")] = 60.0,
    passes: Annotated[int | None, typer.Option("--passes", help="Stop after this many passes (default: run on).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="Where checks run: local or ray.")] = "local",
    threads: ThreadsOpt = None,
) -> None:
    """The scheduler loop: a `watch run` pass every --interval seconds (safe beside other runners: leases)."""
    use_threads(threads)
    from bastion.govern.watch import serve as loop

    _store()
    n = loop(interval_s=interval, max_passes=passes, executor=executor, log=lambda m: stdout.print(m, highlight=False))
    console.print(f"{n} pass(es)")
