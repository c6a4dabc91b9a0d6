"""``bastion govern annex-iv|dpia|ethics``: pre-filled compliance documents and the ethics checklist."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.govern import AssessmentOpt, _runs
from bastion.cli.groups import govern_app
from bastion.cli.options import FormatOpt, print_result, rows_table
from bastion.cli.output import OutputFormat, console, print_json, print_table


class DocOutFormat(str, Enum):
    md = "md"
    html = "html"
    json = "json"
    pdf = "pdf"


def _emit_document(doc: Any, fmt: DocOutFormat, out: Path | None) -> None:
    from bastion.core.paths import atomic_write_bytes

    if fmt == DocOutFormat.json and out is None:
        print_json(doc.to_dict())
        return
    if fmt == DocOutFormat.md and out is None:
        typer.echo(doc.to_markdown())
        return
    if fmt == DocOutFormat.json:
        from bastion.cli.output import dumps

        data = dumps(doc.to_dict()).encode()
    elif fmt == DocOutFormat.md:
        data = doc.to_markdown().encode()
    elif fmt == DocOutFormat.html:
        data = doc.to_html().encode()
    else:
        from bastion.govern.render import html_to_pdf

        data = html_to_pdf(doc.to_html())
    target = out or Path(f"{doc.kind}.{fmt.value}")
    atomic_write_bytes(target, data, mode=0o644)
    console.print(f"wrote {target}: {doc.filled_count} fields filled from evidence, {doc.todo_count} to write")


@govern_app.command("annex-iv")
def annex_iv_cmd(
    model: Annotated[str, typer.Option("--model", help="Model / system name.")],
    version: Annotated[str | None, typer.Option("--version")] = None,
    assessment: AssessmentOpt = None,
    info: Annotated[Path | None, typer.Option("--info", help="YAML with the human-written fields.")] = None,
    out: Annotated[Path | None, typer.Option("--out")] = None,
    fmt: Annotated[DocOutFormat, typer.Option("--format")] = DocOutFormat.md,
) -> None:
    """EU AI Act Annex IV technical documentation, filled from evidence; marks what a human must write."""
    from bastion.govern.annex_iv import build_annex_iv, load_info

    _emit_document(build_annex_iv(model, _runs(assessment), load_info(info), version), fmt, out)


@govern_app.command("dpia")
def dpia_cmd(
    model: Annotated[str, typer.Option("--model", help="Model / system name.")],
    assessment: AssessmentOpt = None,
    pii_report: Annotated[list[Path] | None, typer.Option("--pii-report", help="JSON of 'bastion data pii' "
                                                          "(repeatable).")] = None,
    info: Annotated[Path | None, typer.Option("--info", help="YAML: processing_description, purposes, …")] = None,
    out: Annotated[Path | None, typer.Option("--out")] = None,
    fmt: Annotated[DocOutFormat, typer.Option("--format")] = DocOutFormat.md,
) -> None:
    """DPIA helper with the GDPR Art. 35(7) sections, pre-filled from the PII scan and privacy assessment."""
    from bastion.core.errors import ConfigError
    from bastion.govern.dpia import DPIA_KEYS, build_dpia

    fields: dict[str, str] = {}
    if info is not None:
        import yaml

        if not info.is_file():
            raise ConfigError(f"info file {info} does not exist")
        doc = yaml.safe_load(info.read_text()) or {}
        if not isinstance(doc, dict) or set(doc) - set(DPIA_KEYS):
            raise ConfigError(f"{info}: expected a mapping with keys from {', '.join(DPIA_KEYS)}")
        fields = {k: str(v) for k, v in doc.items()}
    _emit_document(build_dpia(model, _runs(assessment), pii_report, fields), fmt, out)


@govern_app.command("ethics")
def ethics_cmd(
    system: Annotated[str | None, typer.Option("--system", "--model", help="System name.")] = None,
    answers: Annotated[Path | None, typer.Option("--answers", help="Answers YAML to record.")] = None,
    show_template: Annotated[bool, typer.Option("--template", help="Print an answers template and exit.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Ethics checklist (Asilomar principles, AI Act Arts. 4 and 14): record answers with owners, show status."""
    from bastion.core.errors import ConfigError
    from bastion.govern.ethics import checklist, load_answers, record_answers, template

    recorded = 0
    if answers is not None:
        system_in_file, parsed = load_answers(answers)
        if system and system != system_in_file:
            raise ConfigError(f"--system {system!r} differs from 'system: {system_in_file}' in {answers}")
        system = system_in_file
        recorded = record_answers(system, parsed)
    if system is None:
        raise ConfigError("name the system with --system (or give --answers with 'system:')")
    if show_template:
        typer.echo(template(system))
        return
    items = checklist(system)
    answered = sum(i.answer is not None for i in items)
    print_result(fmt, {"system": system, "recorded": recorded, "items": [i.to_dict() for i in items],
                       "answered": answered, "total": len(items)},
                 lambda: print_table(rows_table(("item", "principle", "answer", "owner", "notes"), items, _item_cells,
                                                title=f"Ethics review of {system} ({answered}/{len(items)} answered)")))


def _item_cells(i: Any) -> tuple[str, ...]:
    return i.item, i.principle, i.answer or "—", i.owner or "—", (i.notes or "")[:60]
