"""``bastion govern``: control coverage, EU AI Act tiering, the risk register, reports, Annex IV, DPIA, ethics."""

from __future__ import annotations

import getpass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import govern_app
from bastion.cli.options import FormatOpt, print_result
from bastion.cli.output import OutputFormat, console, print_json, print_table, stdout

risks_app = typer.Typer(name="risks", help="The AI risk register: list, add, update, seed, history.",
                        no_args_is_help=True, pretty_exceptions_enable=False)
govern_app.add_typer(risks_app)


class DocFormat(str, Enum):
    text = "text"
    json = "json"
    html = "html"


class TierOpt(str, Enum):
    high = "high"
    limited = "limited"
    minimal = "minimal"


AssessmentOpt = Annotated[list[Path] | None, typer.Option("--assessment", "-a",
                                                           help="assessment.json, its run directory, or a directory "
                                                           "of runs (*/assessment.json); repeatable.")]


def _runs(paths: list[Path] | None) -> list[Path]:
    from bastion.govern.evidence import expand_assessment_paths

    return expand_assessment_paths(paths)
EvidenceOpt = Annotated[list[str] | None, typer.Option("--evidence", help="Attach a file to a control: "
                                                       "CONTROL_ID=PATH (repeatable).")]
ManifestOpt = Annotated[list[str] | None, typer.Option("--manifest", help="Data manifest JSON, or MANIFEST=DATA_PATH "
                                                        "to re-verify the data now (repeatable).")]
ManifestKeyOpt = Annotated[Path | None, typer.Option("--manifest-key", help="Public key the manifests must be "
                                                     "signed with.")]
SignedOpt = Annotated[list[str] | None, typer.Option("--signed-model", help="Verify a signed model now: "
                                                     "MODEL_PATH=PUBLIC_KEY (repeatable).")]


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _tier_for(model: str | None, tier: TierOpt | None) -> str:
    if tier is not None:
        return tier.value
    if model:
        from bastion.govern.aiact import latest_classification

        found = latest_classification(model)
        if found and found["tier"] in ("high", "limited", "minimal"):
            return str(found["tier"])
    return "high"


def _write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text)
        return
    from bastion.core.paths import atomic_write_text

    atomic_write_text(out, text)
    console.print(f"wrote {out}")


@govern_app.command("coverage")
def coverage(
    assessment: AssessmentOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Restrict store evidence to this model/system.")] = None,
    framework: Annotated[list[str] | None, typer.Option("--framework", help="mitre-atlas, owasp-ml, nist-ai-rmf, "
                                                        "eu-ai-act, gdpr (repeatable; default all).")] = None,
    tier: Annotated[TierOpt | None, typer.Option("--tier", help="Thresholds to judge metrics by (default: the "
                                                 "model's stored AI Act tier, else high).")] = None,
    evidence: EvidenceOpt = None,
    manifest: ManifestOpt = None,
    signed_model: SignedOpt = None,
    manifest_key: ManifestKeyOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the HTML/JSON here instead of stdout.")] = None,
    fmt: Annotated[DocFormat, typer.Option("--format")] = DocFormat.text,
) -> None:
    """Framework items × controls × latest result (pass/warn/fail/no evidence): where the gaps are."""
    from bastion.core.errors import ConfigError
    from bastion.govern.catalog import FRAMEWORKS
    from bastion.govern.coverage import coverage_matrix, render_coverage_html
    from bastion.govern.evidence import collect_evidence

    for fw in framework or []:
        if fw not in FRAMEWORKS:
            raise ConfigError(f"--framework {fw!r}: expected one of {', '.join(FRAMEWORKS)}")
    ev = collect_evidence(_runs(assessment), model, tier=_tier_for(model, tier), attached=evidence,  # type: ignore[arg-type]
                          manifests=manifest, signed_models=signed_model, manifest_key=manifest_key)
    matrix = coverage_matrix(ev, framework)
    if fmt == DocFormat.json:
        if out:
            from bastion.cli.output import dumps

            _write_or_print(dumps(matrix), out)
        else:
            print_json(matrix)
        return
    if fmt == DocFormat.html:
        _write_or_print(render_coverage_html(matrix), out)
        return
    from rich.table import Table

    table = Table(title=f"Control coverage (tier thresholds: {matrix['tier']}) — evidence toward, not compliance")
    for col in ("framework", "items", "fail", "warn", "pass", "no evidence", "not covered"):
        table.add_column(col, justify="left" if col == "framework" else "right")
    for s in matrix["summary"].values():
        table.add_row(f"{s['name']} {s['version']}", *(str(s[k]) for k in ("items", "fail", "warn", "pass",
                                                                           "no evidence", "not covered")))
    print_table(table)
    ctl_table = Table(title="Controls")
    for col in ("control", "status", "latest evidence"):
        ctl_table.add_column(col)
    for c in matrix["controls"]:
        latest = c["evidence"][-1]["summary"] if c["evidence"] else "produce with: " + ", ".join(c["commands"])
        ctl_table.add_row(c["control_id"], c["status"], latest[:110])
    stdout.print(ctl_table)


@govern_app.command("classify")
def classify_cmd(
    answers: Annotated[Path | None, typer.Option("--answers", help="Questionnaire YAML (see --template).")] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Record the result in the store.")] = True,
    show_template: Annotated[bool, typer.Option("--template", help="Print a blank questionnaire and exit.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """EU AI Act tiering from a questionnaire: tier, reasoning per answer, obligations with dates."""
    from bastion.core.errors import ConfigError
    from bastion.govern.aiact import TEMPLATE, classify, load_questionnaire, save_classification

    if show_template:
        typer.echo(TEMPLATE, nl=False)
        return
    if answers is None:
        raise ConfigError("give the questionnaire with --answers FILE (a blank one: bastion govern classify --template)")
    q, digest = load_questionnaire(answers)
    result = classify(q, digest)
    doc: dict[str, Any] = result.to_dict()
    if save:
        doc["id"] = save_classification(result)
    print_result(fmt, doc, lambda: _print_classification(result))


def _print_classification(result: Any) -> None:
    stdout.print(f"[bold]{result.system}[/]: tier [bold]{result.tier}[/] — {result.summary}")
    for r in result.reasons:
        if r.answer not in (False, "none"):
            stdout.print(f"  • {r.question} = {r.answer} → {r.article}: {r.effect}"
                         + (f" [dim]({r.rationale})[/]" if r.rationale else ""))
    stdout.print("[bold]Obligations[/]")
    for o in result.obligations:
        stdout.print(f"  {o.article:<8} from {o.applies_from} ({o.applies_to}): {o.title}")
    stdout.print(f"[dim]{result.dates_note}\n{result.disclaimer}[/]")


def _statuses(assessment: list[Path] | None, system: str | None) -> dict[str, str]:
    from bastion.govern.evidence import collect_evidence

    ev = collect_evidence(_runs(assessment), system, tier=_tier_for(system, None))  # type: ignore[arg-type]
    return dict(ev.statuses())


def _print_risks(views: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Risk register (inherent → residual after controls with passing evidence)")
    for col in ("id", "risk", "L×I", "inherent", "residual", "owner", "status", "review", "controls"):
        table.add_column(col)
    for v in views:
        table.add_row(str(v.id), v.title[:60], f"{v.likelihood}×{v.impact}", f"{v.inherent} {v.inherent_band}",
                      f"{v.residual} {v.residual_band}", v.owner or "—", v.status,
                      (v.review_date or "—") + (" OVERDUE" if v.review_overdue else ""),
                      ",".join(v.control_ids))
    print_table(table)


@risks_app.command("list")
def risks_list(
    system: Annotated[str | None, typer.Option("--system", "--model", help="Only this system's risks.")] = None,
    assessment: AssessmentOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List risks with inherent and residual scores (residual uses the latest evidence)."""
    from bastion.govern.risk import list_risks

    views = list_risks(system, _statuses(assessment, system))
    print_result(fmt, {"risks": [v.to_dict() for v in views]}, lambda: _print_risks(views))


@risks_app.command("add")
def risks_add(
    title: Annotated[str, typer.Option("--title")],
    likelihood: Annotated[int, typer.Option("--likelihood", "-l", min=1, max=5)],
    impact: Annotated[int, typer.Option("--impact", "-i", min=1, max=5)],
    control: Annotated[list[str] | None, typer.Option("--control", help="Treating control id (repeatable).")] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    system: Annotated[str | None, typer.Option("--system", "--model")] = None,
    review_date: Annotated[str | None, typer.Option("--review-date", help="YYYY-MM-DD")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Add a risk to the register."""
    from bastion.govern.risk import add_risk, get_risk

    rid = add_risk(title, likelihood, impact, controls=control, owner=owner, system=system,
                   review_date=review_date, description=description, actor=_actor())
    view = get_risk(rid)
    print_result(fmt, view.to_dict(), f"risk {rid} added: {view.title} ({view.inherent} {view.inherent_band})")


@risks_app.command("update")
def risks_update(
    risk: Annotated[str, typer.Argument(help="Risk id or key.")],
    likelihood: Annotated[int | None, typer.Option("--likelihood", "-l", min=1, max=5)] = None,
    impact: Annotated[int | None, typer.Option("--impact", "-i", min=1, max=5)] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    status: Annotated[str | None, typer.Option("--status", help="open|mitigated|accepted|closed")] = None,
    review_date: Annotated[str | None, typer.Option("--review-date", help="YYYY-MM-DD")] = None,
    treatment: Annotated[str | None, typer.Option("--treatment")] = None,
    control: Annotated[list[str] | None, typer.Option("--control", help="Replace treating controls.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Update a risk; the change is kept in its history."""
    from bastion.govern.risk import update_risk

    diff = update_risk(risk, actor=_actor(), likelihood=likelihood, impact=impact, owner=owner, status=status,
                       review_date=review_date, treatment=treatment, control_ids=control)
    print_result(fmt, {"risk": risk, "changes": diff},
                 f"risk {risk}: " + (", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in diff.items()) or "no change"))


@risks_app.command("seed")
def risks_seed(
    system: Annotated[str | None, typer.Option("--system", "--model")] = None,
    assessment: AssessmentOpt = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Owner for the seeded risks.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Seed the register from the catalog and from assessment findings (medium and above)."""
    from bastion.govern.risk import seed_risks
    from bastion.report import load_assessment

    counts = seed_risks(system, [load_assessment(p) for p in _runs(assessment)], owner=owner, actor=_actor())
    print_result(fmt, counts, f"{counts['created']} risk(s) created, {counts['existing']} already in the register")


@risks_app.command("history")
def risks_history(
    risk: Annotated[str, typer.Argument(help="Risk id or key.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Every recorded change of a risk."""
    from bastion.govern.risk import risk_history

    hist = risk_history(risk)
    print_result(fmt, {"risk": risk, "history": hist}, lambda: _print_history(hist))


def _print_history(hist: list[dict[str, Any]]) -> None:
    for h in hist:
        stdout.print(f"{h['changed_at']} {h['changed_by']} {h['action']} {h['changes'] or ''}")


class ReportFormat(str, Enum):
    json = "json"
    html = "html"
    pdf = "pdf"


@govern_app.command("report")
def report_cmd(
    model: Annotated[str, typer.Option("--model", help="Model / system name (as registered or classified).")],
    version: Annotated[str | None, typer.Option("--version", help="Model version in the registry.")] = None,
    assessment: AssessmentOpt = None,
    evidence: EvidenceOpt = None,
    manifest: ManifestOpt = None,
    signed_model: SignedOpt = None,
    manifest_key: ManifestKeyOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: governance-report.<fmt>; "
                                             "json goes to stdout when not given).")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.html,
) -> None:
    """Audit-ready report: summary, tier, risk register, control evidence, NIST view, training, open actions."""
    from bastion.core.paths import atomic_write_bytes
    from bastion.govern.report import build_report, render_report_html, render_report_pdf

    report = build_report(model, version, _runs(assessment), manifests=manifest, attached=evidence,
                          signed_models=signed_model, manifest_key=manifest_key)
    if fmt == ReportFormat.json:
        if out is None:
            print_json(report)
            return
        from bastion.cli.output import dumps

        data = dumps(report).encode()
    elif fmt == ReportFormat.html:
        data = render_report_html(report).encode()
    else:
        data = render_report_pdf(report)
    target = out or Path(f"governance-report.{fmt.value}")
    atomic_write_bytes(target, data, mode=0o644)
    es = report["executive_summary"]
    console.print(f"wrote {target}: tier {es['tier']}, controls pass {es['controls']['pass']}/"
                  f"{es['controls_total']}, {es['open_actions']} open actions (evidence toward, not compliance)")
