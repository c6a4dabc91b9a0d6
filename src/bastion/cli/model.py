"""``bastion model``: scan model files, sign and verify them, emit an ML-BOM and a model card.

Exit codes: 0 clean/verified · 1 findings at or above ``--fail-on`` · 2 error (bad input,
signature mismatch, unsafe model, a file not read to its end) · 3 nothing scannable.
``model scan`` prints a verdict of ``safe``, ``unsafe``, ``error`` or ``unscanned`` with its reason.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import model_app
from bastion.cli.options import FormatOpt, print_result
from bastion.cli.output import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_NOTHING,
    OutputFormat,
    TrustedKeyOpt,
    print_json,
    stdout,
    trusted_keys,
)
from bastion.core.severity import Severity


class ScanFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


_COLORS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim", "none": "green"}


@model_app.command("scan")
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Model files, directories or archives.")],
    fmt: Annotated[ScanFormat, typer.Option("--format", help="text, json or sarif.")] = ScanFormat.text,
    fail_on: Annotated[Severity, typer.Option("--fail-on", help="Exit 1 at or above this severity.")] = Severity.HIGH,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Extra allowlist entry module:name.")] = None,
) -> None:
    """Scan model files for code execution, tampering and malformed structure (allowlist first)."""
    from bastion.artifacts.scan import scan_path

    report = scan_path(list(paths), allow=allow)  # type: ignore[arg-type]
    if fmt == ScanFormat.json:
        print_json(report.to_dict())
    elif fmt == ScanFormat.sarif:
        print_json(report.to_sarif())
    else:
        skipped = [f for f in report.files if not f.scanned and not f.error and not f.findings and not f.blocking]
        for f in report.files:
            if f in skipped and len(report.files) > 1:
                continue
            ms = f.max_severity.value if f.max_severity else "none"
            status = f"not scanned: {f.reason or f.format}" if not f.scanned else ms
            stdout.print(f"[bold]{f.path}[/]  format={f.format}  [{_COLORS.get(ms, 'white')}]{status}[/]",
                         highlight=False)
            if f.error:
                stdout.print(f"  [red]error:[/] {f.error}", highlight=False, soft_wrap=True)
            for x in f.findings:
                times = f" (x{x.count})" if x.count > 1 else ""
                where = x.location if x.member else (f"offset {x.offset}" if x.offset is not None else "file")
                stdout.print(f"  [{_COLORS[x.severity.value]}]{x.severity.value:8}[/] {x.code}{times} "
                             f"{x.global_name or ''} at {where}\n           {x.message}", highlight=False, soft_wrap=True)
        if skipped and len(report.files) > 1:
            stdout.print(f"({len(skipped)} other file(s) are text or SavedModel tensor data, read and skipped)",
                         highlight=False)
        ms = report.max_severity.value if report.max_severity else "none"
        verdict, reason = report.verdict_and_reason
        color = {"safe": "green", "unsafe": "bold red"}.get(verdict, "yellow")
        stdout.print(f"verdict: [{color}]{verdict}[/] — {reason} (max severity {ms}, "
                     f"{len(report.scanned_files)} file(s) scanned in {report.duration_s:.3f}s)", highlight=False, soft_wrap=True)
    if report.worst(fail_on):
        raise typer.Exit(EXIT_FINDINGS)
    if report.verdict == "error":
        raise typer.Exit(EXIT_ERROR)
    if report.verdict == "unscanned":
        raise typer.Exit(EXIT_NOTHING)


@model_app.command("sign")
def sign(
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    key: Annotated[Path, typer.Option("--key", help="Private key PREFIX (from bastion keys generate).")],
    attest: Annotated[Path | None, typer.Option(
        "--attest", help="Assessment JSON of THIS model to attest (refused when it assessed another digest).")] = None,
    incremental: Annotated[bool, typer.Option("--incremental", help="Re-hash only changed files.")] = False,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Extra allowlist entry module:name.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Sign a model (OpenSSF model-signing bundle PATH.sig) and attest its evidence (PATH.att.json)."""
    from bastion.artifacts.signing import attestation_path_for, sign_model, verify_model

    bundle = sign_model(path, key, attest=attest, incremental=incremental, allow=allow)
    from bastion.artifacts.keys import public_path_for

    res = verify_model(path, public_path_for(key))
    scan_info: dict[str, object] = dict(res.attested_scan or {})
    info = {"model": str(path), "bundle": str(bundle), "attestation": str(attestation_path_for(path)),
            "model_digest": res.model_digest, "files": len(res.files), "key_id": res.key_id,
            "scan": scan_info}
    print_result(fmt, info, f"signed {path} ({info['files']} file(s))\n  bundle:      {bundle}\n  attestation: "
                            f"{info['attestation']}\n  digest:      {res.model_digest}\n  scan:        "
                            f"{scan_info.get('verdict')}", highlight=False, soft_wrap=True)


@model_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    trusted_key: TrustedKeyOpt = None,
    key: Annotated[list[Path] | None, typer.Option("--key", hidden=True, help="Deprecated: --trusted-key.")] = None,
    require_attestation: Annotated[bool, typer.Option("--require-attestation")] = False,
    max_severity: Annotated[Severity | None, typer.Option(
        "--max-severity", help="Refuse when any attested finding (assessment or scan) or the current scan is worse."
    )] = None,
    max_attestation_age: Annotated[str | None, typer.Option(
        "--max-attestation-age", help="Refuse an attested assessment older than this (e.g. 30d, 12h).")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="Bundle path (default PATH.sig).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Verify a model's signature (every file's digest) and, if present or required, its attestation:
    its binding to these files is recomputed, and --max-severity applies to every attested finding."""
    from bastion.artifacts.keys import public_path_for
    from bastion.artifacts.signing import parse_age, verify_model
    from bastion.core.errors import ConfigError, SignatureError

    keys = trusted_keys(trusted_key, key, "--key (a public key)")
    if not keys:
        raise ConfigError("pass --trusted-key KEY.pub (the public half of the signing key; repeatable)")
    age = parse_age(max_attestation_age) if max_attestation_age else None
    problems: list[str] = []
    for k in keys:
        try:
            res = verify_model(path, public_path_for(k), require_attestation=require_attestation,
                               max_severity=max_severity,
                               bundle=signature, max_attestation_age=age)
            break
        except SignatureError as exc:
            if len(keys) == 1:
                raise
            problems.append(f"{k}: {exc}")
    else:
        raise SignatureError(f"{path} does not verify with any of the {len(keys)} trusted keys: " + "; ".join(problems))
    att = res.attested_scan or {}
    print_result(fmt, res.to_dict(), f"[green]verified[/] {path}: {len(res.files)} file(s), digest {res.model_digest}\n"
                                     f"  key id: {res.key_id}\n  attested scan: {att.get('verdict', 'no attestation')}"
                                     f" (max severity {att.get('max_severity', '-')})", highlight=False, soft_wrap=True)


class BomFormat(str, Enum):
    cyclonedx_json = "cyclonedx-json"
    text = "text"


@model_app.command("bom")
def bom(
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    assessment: Annotated[Path | None, typer.Option("--assessment", help="Assessment JSON (metrics, datasets).")] = None,
    fmt: Annotated[BomFormat, typer.Option("--format", help="cyclonedx-json or text.")] = BomFormat.cyclonedx_json,
    out: Annotated[Path | None, typer.Option("--out", help="Write the BOM here instead of stdout.")] = None,
) -> None:
    """Emit a CycloneDX 1.6 ML-BOM (model, datasets, libraries, modelCard), schema-validated."""
    from bastion.artifacts.bom import build_bom
    from bastion.cli.output import dumps
    from bastion.core.paths import atomic_write_text

    doc = build_bom(path, assessment=assessment)
    if out is not None:
        atomic_write_text(out, dumps(doc) + "\n")
    if fmt == BomFormat.cyclonedx_json and out is None:
        print_json(doc)
    elif fmt == BomFormat.text or out is not None:
        comps = doc.get("components", [])
        model_card: dict[str, Any] = next((c.get("modelCard", {}) for c in comps if c.get("bom-ref") == "model"), {})
        n_metrics = len((model_card.get("quantitativeAnalysis") or {}).get("performanceMetrics", []))
        kinds = {t: sum(1 for c in comps if c["type"] == t) for t in ("machine-learning-model", "data", "library")}
        stdout.print(f"CycloneDX {doc['specVersion']} ML-BOM for {path} (valid): {kinds['machine-learning-model']} "
                     f"model, {kinds['data']} dataset(s), {kinds['library']} librar(ies), {n_metrics} metric(s) "
                     f"in modelCard{f' -> {out}' if out else ''}", highlight=False, soft_wrap=True)


@model_app.command("card")
def card(
    path: Annotated[Path | None, typer.Argument(help="Model file or directory (optional).")] = None,
    assessment: Annotated[Path | None, typer.Option("--assessment", help="Assessment JSON.")] = None,
    info: Annotated[Path | None, typer.Option("--info", help="YAML with the human-written sections.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory for model_card.md/.html.")] = Path(
        "model-card"),
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Write a model card (Mitchell et al. sections) as Markdown and HTML."""
    from bastion.artifacts.card import render_card
    from bastion.core.paths import atomic_write_text

    md, html = render_card(model=path, assessment=assessment, info=info)
    md_path, html_path = out / "model_card.md", out / "model_card.html"
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, html)
    print_result(fmt, {"markdown": str(md_path), "html": str(html_path)}, f"model card: {md_path} and {html_path}",
                 highlight=False, soft_wrap=True)
