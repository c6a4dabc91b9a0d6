"""``bastion monitor …``, ``bastion incident …`` and ``bastion demo attack-and-respond``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import demo_app, incident_app, monitor_app
from bastion.cli.output import (
    EXIT_FINDINGS,
    OutputFormat,
    TrustedKeyOpt,
    console,
    print_json,
    print_table,
    stdout,
    trusted_keys,
)

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="text or json")]


def _x(path: Path | None, demo: str | None, split: str = "test") -> Any:
    import numpy as np

    from bastion.core.errors import InvalidInputError

    if demo:
        from bastion.datasets import load_demo_data

        s = load_demo_data(demo).splits
        x = s.x_train if split == "train" else s.x_test
    elif path:
        from bastion.datasets import load

        s = load(path).splits
        x = s.x_train if split == "train" and s.x_train is not None else (s.x_test if s.x_test is not None else s.x_train)
    else:
        raise InvalidInputError("give a data file or --demo NAME")
    if x is None:
        raise InvalidInputError(f"{path}: no feature array found")
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


@monitor_app.command("drift")
def drift(
    reference: Annotated[Path, typer.Option("--reference", help="Reference data (.npz/CSV/Parquet).")],
    current: Annotated[Path, typer.Option("--current", help="Current data to compare.")],
    ert: Annotated[int, typer.Option("--ert", help="Expected samples between false alarms (sets α).")] = 20_000,
    test_every: Annotated[int, typer.Option("--test-every")] = 50,
    label: Annotated[str | None, typer.Option("--label", help="Label column to drop from tables.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the HTML report here (with --format html).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, text or html")] = "text",
) -> None:
    """Batch drift report: univariate KS/chi-square (PSI, Wasserstein) and MMD², calibrated thresholds."""
    from bastion.monitor.drift import DriftConfig, batch_drift, load_features

    drop = [label] if label else []
    report = batch_drift(load_features(reference, drop), load_features(current, drop),
                         DriftConfig(ert=ert, test_every=test_every))
    if fmt == "json":
        print_json(report)
    elif fmt == "html":
        from bastion.monitor.html import drift_html

        html = drift_html(report, str(reference), str(current))
        if out is None:
            stdout.print(html)
        else:
            from bastion.core.paths import atomic_write_text

            atomic_write_text(out, html)
            console.print(f"drift report written to {out}")
    else:
        verdict = "DRIFT" if report["drift"] else "no drift"
        stdout.print(f"{verdict}: min-p statistic {report['statistic']:.2f} (threshold {report['threshold']:.2f}), "
                     f"MMD² {report['mmd2']:.4f} (threshold {report['mmd_threshold']:.4f})")
        for f in report["features"]:
            stdout.print(f"  {f['feature']}: p={f['pvalue']:.2e} ({f['test']}), PSI {f['psi']:.3f}, "
                         f"W1 {f['wasserstein']:.3f}")
    if report["drift"]:
        raise typer.Exit(EXIT_FINDINGS)


@monitor_app.command("reference")
def reference(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    data: Annotated[Path | None, typer.Option("--data")] = None,
    demo: Annotated[str | None, typer.Option("--demo")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Capture the reference profile live traffic of MODEL is compared with (training data by default)."""
    from bastion.monitor.service import capture_reference

    x = _x(data, demo, split="train")
    path = capture_reference(model, x)
    info = {"model": model, "reference": str(path), "samples": len(x), "features": int(x.shape[1])}
    print_json(info) if fmt == OutputFormat.json else stdout.print(f"reference for {model}: {path} ({len(x)} samples)")


@incident_app.command("list")
def incident_list(
    status: Annotated[str | None, typer.Option("--status", help="open, acknowledged or resolved")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List incidents."""
    from rich.table import Table

    from bastion.respond.incidents import list_incidents
    from bastion.store.db import upgrade

    upgrade()
    rows = list_incidents(status)
    if fmt == OutputFormat.json:
        print_json(rows)
        return
    table = Table("id", "opened", "severity", "status", "type", "model", "version", "clients", "actions")
    for r in rows:
        table.add_row(str(r["id"]), r["opened_at"], r["severity"], r["status"], r["alert_type"], str(r["model"]),
                      str(r["version"]), ",".join(r["affected_clients"]), ",".join(r["actions_done"]))
    print_table(table)


@incident_app.command("show")
def incident_show(incident_id: Annotated[int, typer.Argument()], fmt: FormatOpt = OutputFormat.json) -> None:
    """Show one incident with its timeline and regulatory clocks."""
    from bastion.respond.incidents import get_incident

    inc = get_incident(incident_id)
    if fmt == OutputFormat.json:
        print_json(inc)
    else:
        stdout.print(json.dumps(inc, indent=2, default=str))


@incident_app.command("ack")
def incident_ack(incident_id: Annotated[int, typer.Argument()],
                 owner: Annotated[str, typer.Option("--owner", help="Who owns the response.")],
                 fmt: FormatOpt = OutputFormat.text) -> None:
    """Acknowledge an incident and take ownership."""
    from bastion.respond.incidents import acknowledge

    inc = acknowledge(incident_id, owner)
    print_json(inc) if fmt == OutputFormat.json else stdout.print(f"incident {incident_id} acknowledged by {owner}")


@incident_app.command("resolve")
def incident_resolve(incident_id: Annotated[int, typer.Argument()],
                     note: Annotated[str, typer.Option("--note")] = "",
                     actor: Annotated[str, typer.Option("--actor")] = "operator",
                     fmt: FormatOpt = OutputFormat.text) -> None:
    """Resolve an incident (with a closing note)."""
    from bastion.respond.incidents import resolve

    inc = resolve(incident_id, actor, note)
    print_json(inc) if fmt == OutputFormat.json else stdout.print(f"incident {incident_id} resolved")


@incident_app.command("export")
def incident_export(
    incident_id: Annotated[int, typer.Argument()],
    out: Annotated[Path, typer.Option("--out", help="bundle.tar.gz to write")],
    key: Annotated[Path | None, typer.Option("--key", help="Signing key (default: the gateway's audit key).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Export the signed forensic bundle of an incident."""
    from bastion.gateway.config import load_config
    from bastion.respond.forensics import export_bundle

    cfg = load_config(None)
    audit_key = cfg.audit_key_path()
    manifest = export_bundle(incident_id, out, key or audit_key, db_url=cfg.db_url,
                             audit_public_key=audit_key.with_name(audit_key.name + ".pub"))
    if fmt == OutputFormat.json:
        print_json({"bundle": str(out), **manifest})
    else:
        stdout.print(f"bundle {out}: {len(manifest['files'])} files, {manifest['audit_records']} audit records, "
                     f"signed by key {manifest['signing_key_id'][:16]}…")


@incident_app.command("verify")
def incident_verify(
    bundle: Annotated[Path, typer.Argument()],
    trusted_key: TrustedKeyOpt = None,
    pub: Annotated[Path | None, typer.Option("--pub", hidden=True, help="Deprecated: --trusted-key.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Verify a forensic bundle offline (digests, signature, audit chain and inclusion proofs); --trusted-key pins
    the signer (any of the keys given)."""
    from bastion.core.errors import SignatureError
    from bastion.respond.forensics import verify_bundle

    keys: list[Path | None] = list(trusted_keys(trusted_key, pub, "--pub")) or [None]
    for i, k in enumerate(keys):
        try:
            res = verify_bundle(bundle, k)
            break
        except SignatureError:
            if i == len(keys) - 1:
                raise
    if fmt == OutputFormat.json:
        print_json(res)
    else:
        stdout.print(f"valid: incident {res['incident_id']}, {res['files']} files, {res['audit_records']} audit "
                     f"records ({res['records_with_inclusion_proof']} with inclusion proofs), "
                     f"key {res['signing_key_id'][:16]}…{' (pinned)' if res['pinned_key'] else ' (embedded, not pinned)'}")


@demo_app.command("attack-and-respond")
def attack_and_respond_cmd(
    out: Annotated[Path, typer.Option("--out", help="Working directory (its own $BASTION_HOME).")] = Path(
        "bastion-demo-respond"),
    clean_requests: Annotated[int, typer.Option("--clean-requests")] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Serve the demo model, drift it, attack it, ship a bad release, and watch Bastion respond."""
    from bastion.demos.attack_and_respond import attack_and_respond

    report = attack_and_respond(out, clean_requests=clean_requests, seed=seed,
                                log=(lambda m: None) if fmt == OutputFormat.json else console.print)
    if fmt == OutputFormat.json:
        print_json(report)
