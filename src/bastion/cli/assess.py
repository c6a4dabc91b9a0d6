"""``bastion assess``: assess a model and its data, write JSON / HTML / SARIF reports.

Exit codes: 0 no finding at or above ``--fail-on`` · 1 a finding reached ``--fail-on`` ·
2 error (bad input, unsafe model, bad options) · 3 nothing to do (no check applied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import app
from bastion.cli.options import (
    ClipMaxOpt,
    ClipMinOpt,
    DemoOpt,
    EndpointOpt,
    LabelOpt,
    ModelOpt,
    QueryBudgetOpt,
    SeedOpt,
    print_result,
)
from bastion.cli.output import (
    EXIT_FINDINGS,
    EXIT_NOTHING,
    OutputFormat,
    ThreadsOpt,
    console,
    print_table,
    stdout,
    use_threads,
)


@app.command("assess")
def assess(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory for assessment.json, report.html, assessment.sarif (required unless --dry-run).")] = None,
    demo: DemoOpt = None,
    model: ModelOpt = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Labelled data: .npz (x,y or x_train/…), CSV or Parquet.")] = None,
    label: LabelOpt = None,
    endpoint: EndpointOpt = None,
    query_budget: QueryBudgetOpt = None,
    clip_min: ClipMinOpt = None,
    clip_max: ClipMaxOpt = None,
    profile: Annotated[str, typer.Option("--profile", help="quick | standard | thorough.")] = "standard",
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only this check id or id prefix (repeatable).")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Exit 1 when a finding reaches this severity (info…critical).")] = "high",
    seed: SeedOpt = 0,
    compare: Annotated[Path | None, typer.Option("--compare", help="Earlier output directory to compare against, or 'last': the last stored run of this model (bastion history).")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="Check option KEY=VALUE (VALUE as JSON if it parses), repeatable, e.g. --option 'eps=[0.05,0.1]'.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="Where checks run: local or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (with --executor ray).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json (json: the summary on stdout).")] = OutputFormat.text,
    threads: ThreadsOpt = None,
    sensitive: Annotated[list[str] | None, typer.Option("--sensitive", help="Sensitive feature column(s) for fairness.group_metrics and explain.sensitive_features (repeatable or comma-separated).")] = None,
    reference: Annotated[Path | None, typer.Option("--reference", help="Reference population table (CSV/Parquet) for data.representativeness of the training split.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve the target, its input range (and where it came from), "
                                          "threads and each check's settings; print them and stop (nothing is attacked or written).")] = False,
) -> None:
    """Assess a model and its data for security weaknesses and write the reports."""
    use_threads(threads)
    from bastion.assess.registry import PROFILES
    from bastion.assess.runner import run_assessment
    from bastion.assess.target import build_target
    from bastion.core.errors import ConfigError
    from bastion.core.severity import Severity
    from bastion.report import load_assessment, write_reports

    if profile not in PROFILES:
        raise ConfigError(f"unknown --profile {profile!r}; choose one of {', '.join(PROFILES)}")
    threshold = Severity.parse(fail_on)
    compare_last = compare is not None and str(compare) == "last"
    before = load_assessment(compare) if compare is not None and not compare_last else None
    if out is None and not dry_run:
        raise ConfigError("--out DIR is required (where assessment.json, report.html and assessment.sarif go)")
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    target = build_target(
        model=model, data=data, demo=demo, endpoint=endpoint, query_budget=query_budget, label=label,
        clip_min=clip_min, clip_max=clip_max, seed=seed,
    )
    declare_groups(target, sensitive, reference, label)
    text = fmt == OutputFormat.text
    if dry_run:
        from bastion.assess.runner import plan_assessment

        plan = plan_assessment(target, profile=profile, seed=seed, only=only,  # type: ignore[arg-type]
                               options=parse_options(option or []))
        print_result(fmt, plan, lambda: _print_plan(plan))
        return
    assert out is not None
    if text:
        console.print(f"[bold]Assessing[/] {target.name} ({target.model_format}, "
                      f"{'white-box' if target.is_white_box else 'black-box'}) · profile {profile} · seed {seed} · "
                      f"{target.input_range().describe()}")
    assessment = run_assessment(
        target, profile=profile, seed=seed, out_dir=out, only=only,  # type: ignore[arg-type]
        executor=_executor(executor, ray_address),
        options=parse_options(option or []), progress=text and console.is_terminal,
    )
    stored_id, last_id = _store(assessment, target.name, compare_last)
    if compare_last:
        from bastion.assess.history import load_run

        if last_id is None:
            raise ConfigError(f"--compare last: no earlier stored assessment of {target.name} "
                              "(bastion history lists them)")
        before = load_run(last_id)
    paths = write_reports(assessment, out, compare_with=before)
    summary = assessment.summary()
    summary["stored_run"] = stored_id
    summary["reports"] = {k: str(v) for k, v in paths.items()}
    print_result(fmt, summary, lambda: _print_table(assessment, paths["html"]))
    if not assessment.results:
        raise typer.Exit(EXIT_NOTHING)
    worst = assessment.max_severity
    if worst is not None and worst >= threshold:
        raise typer.Exit(EXIT_FINDINGS)


def _store(assessment: Any, model_key: str, need_last: bool) -> tuple[int | None, int | None]:
    """Store the run (``bastion history`` lists it); returns (its id, the previous run's id). A store that
    cannot be written is a warning, not a failed assessment — unless ``--compare last`` needs it."""
    from bastion.assess.history import last, record
    from bastion.core.errors import ConfigError
    from bastion.store.db import upgrade

    try:
        upgrade()
        prev = last(model_key)
        from bastion.govern.watch import catalog_version

        return record(assessment, model_key, catalog_version=catalog_version()), (prev.id if prev else None)
    except Exception as exc:
        if need_last:
            raise ConfigError(f"--compare last: the store is not available: {exc}") from None
        console.print(f"[yellow]warning:[/] the run was not stored ({type(exc).__name__}: {exc})")
        return None, None


def declare_groups(target: Any, sensitive: list[str] | None, reference: Path | None, label: str | None) -> None:
    """``--sensitive`` columns onto the target's metadata; ``--reference`` (and the label column) for
    ``data.representativeness``."""
    from bastion.core.errors import InvalidInputError

    cols = [c.strip() for item in (sensitive or []) for c in item.split(",") if c.strip()]
    if cols:
        target.metadata.sensitive_features = list(dict.fromkeys([*target.metadata.sensitive_features, *cols]))
    if reference is not None:
        if not reference.is_file():
            raise InvalidInputError(f"--reference {reference} not found")
        target.metadata.extra["reference_population"] = str(reference)
        target.metadata.extra["label_column"] = label


def parse_options(items: list[str]) -> dict[str, object]:
    """``["eps=[0.1,0.2]", "attack=pgd"]`` → ``{"eps": [0.1, 0.2], "attack": "pgd"}`` (JSON values where they parse)."""
    import json

    from bastion.core.errors import ConfigError

    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r} must look like KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _executor(name: str, ray_address: str | None) -> Any:
    """The executor object for ``--executor`` (``--ray-address`` only applies to ray)."""
    from bastion.assess.executors import get_executor
    from bastion.core.errors import ConfigError

    if ray_address and name != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    return get_executor(name, **({"address": ray_address} if ray_address else {}))


def _print_plan(plan: dict[str, Any]) -> None:
    from bastion.cli.output import dumps, stdout

    t = plan["target"]
    stdout.print(f"target       {t['name']} ({t['model_format']}, {'white-box' if t['white_box'] else 'black-box'}, "
                 f"{t['n_classes']} classes, input shape {tuple(t['input_spec']['shape'])})")
    stdout.print(f"input range  {plan['input_range_text'].removeprefix('input range ')}", highlight=False)
    if plan["input_range"].get("detail"):
        stdout.print(f"             {plan['input_range']['detail']}", highlight=False)
    stdout.print(f"profile      {plan['profile']} · seed {plan['seed']} · torch threads {plan['threads']}")
    for c in plan["checks"]:
        stdout.print(f"check        {c['id']}", highlight=False)
        for k, v in (c.get("settings") or {}).items():
            stdout.print(f"               {k}: {dumps(v, indent=None)}", highlight=False, soft_wrap=True)


def _print_table(assessment: object, html: Path) -> None:
    from rich.table import Table

    from bastion.core.progress import STATUS_STYLE as styles
    from bastion.core.results import Assessment

    assert isinstance(assessment, Assessment)
    table = Table(title=f"Bastion assessment · {assessment.target.get('name')}", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("worst finding")
    table.add_column("summary", overflow="fold")
    for r in assessment.results:
        worst = r.max_severity
        table.add_row(r.check_id, f"[{styles.get(r.status.value, 'white')}]{r.status.value}[/]",
                      worst.value if worst else "-", r.summary or (r.error or ""))
    print_table(table)  # results on stdout: one line per check when piped (never wrapped), fitted in a terminal
    s = assessment.summary()
    stdout.print(f"[bold]Verdict:[/] {s['verdict']} (worst finding: {s['max_severity']}; {s['duration_s']:.1f} s)",
                 highlight=False, soft_wrap=True)
    typer.echo(f"Report: {html.resolve()}")
