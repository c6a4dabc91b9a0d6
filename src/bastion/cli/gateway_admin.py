"""Gateway administration: ``bastion registry``, ``bastion clients``, ``bastion audit``, ``bastion db``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import audit_app, clients_app, db_app, registry_app
from bastion.cli.options import FormatOpt, print_result, print_rows
from bastion.cli.output import EXIT_FINDINGS, OutputFormat, console, print_json, stdout, trusted_keys

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Gateway config (bastion.yaml).")]


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from bastion.gateway.config import load_config
    from bastion.store.db import upgrade

    cfg = load_config(path)
    upgrade(cfg.db_url)
    return cfg


def _registry(config: Path | None):  # type: ignore[no-untyped-def]
    """The model registry of the gateway that CONFIG describes (its store brought up to date)."""
    from bastion.gateway.registry import Registry

    return Registry(_config(config))


# ------------------------------------------------------------------------------------------ registry


@registry_app.command("push")
def push(
    model: Annotated[Path, typer.Argument(help="Model file (signed with `bastion model sign`).")],
    name: Annotated[str, typer.Option("--name", help="Registry name.")],
    version: Annotated[str | None, typer.Option("--version", help="Version (default: next integer).")] = None,
    trusted_key: Annotated[list[Path] | None, typer.Option(
        "--trusted-key", help="Verify with this key only (repeatable); it must be a trusted key "
                              "(registry.trusted_keys or trust-key).")] = None,
    key: Annotated[list[Path] | None, typer.Option("--key", hidden=True, help="Deprecated: --trusted-key.")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Admin override: register an unsigned/unverified model (audited).")] = False,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="e.g. 1,8,8 (else the sidecar).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Data file or demo:NAME the model takes: its sample "
                                             "shape and input range (inferred) when there is no sidecar.")] = None,
    clip_min: Annotated[float | None, typer.Option("--clip-min")] = None,
    clip_max: Annotated[float | None, typer.Option("--clip-max")] = None,
    promote: Annotated[bool | None, typer.Option(
        "--promote/--no-promote", help="Point the production alias at it (default: when it is the first).")] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Scan, verify the signature, probe in the sandbox and register a model version."""
    import numpy as np

    from bastion.core.errors import InvalidInputError

    shape = None
    if input_shape:
        try:
            shape = tuple(int(s) for s in input_shape.split(","))
        except ValueError:
            raise InvalidInputError(f"--input-shape {input_shape!r}: expected integers like 1,8,8") from None
    if data is not None and shape is None:
        from bastion.core.domain import resolve_range
        from bastion.datasets import load

        d = load(data)
        shape = d.sample_shape
        xs = [x for x in (d.splits.x_train, d.splits.x_test) if x is not None]
        rng = resolve_range(flag=(clip_min, clip_max), data=xs[0] if len(xs) == 1 else np.concatenate(xs),
                            image=len(shape) >= 2)
        clip_min, clip_max = rng.clip_min, rng.clip_max
        console.print(f"input {list(shape)} from {data}; {rng.describe()}", highlight=False)
    info = _registry(config).push(model, name, version, keys=trusted_keys(trusted_key, key, "--key (a public key)"),
                                  allow_unsigned=allow_unsigned, input_shape=shape,
                                  clip_min=clip_min, clip_max=clip_max, promote=promote)
    print_result(fmt, info.to_dict(), lambda: _print_pushed(info))


def _print_pushed(info) -> None:  # type: ignore[no-untyped-def]
    flag = "[green]verified[/]" if info.verified else "[yellow]UNSIGNED (admin override)[/]"
    stdout.print(f"registered {info.name} v{info.version} ({info.format}, sha256 {info.sha256[:16]}…) {flag}; "
                 f"scan {info.scan_verdict}; input {info.input_spec['shape']}; aliases {', '.join(info.aliases) or '-'}",
                 soft_wrap=True, highlight=False)


@registry_app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List registered model versions and their aliases."""
    print_rows(fmt, _registry(config).list(name),
               ("model", "version", "format", "sha256", "verified", "scan", "serving spec", "aliases", "pushed"),
               lambda r: (r.name, r.version, r.format, r.sha256[:12], "yes" if r.verified else "NO", r.scan_verdict,
                          _spec_text(r), ",".join(r.aliases), r.created_at[:19]))


def _spec_text(r) -> str:  # type: ignore[no-untyped-def]
    """The input spec in force, and whether a signed sidecar set it."""
    spec = r.input_spec or {}
    lo, hi = spec.get("clip_min"), spec.get("clip_max")
    rng = f" [{lo}, {hi}]" if lo is not None or hi is not None else ""
    batch = f" batch<={spec['max_batch']}" if spec.get("max_batch") is not None else ""
    signed = (r.details or {}).get("serving_specs")
    origin = f" (signed {signed[0]['file']})" if signed else ""
    return f"{spec.get('shape')} {spec.get('dtype', '')}{rng}{batch}{origin}".replace("  ", " ").strip()


@registry_app.command("trust-key")
def trust_key(
    public_key: Annotated[Path, typer.Argument(help="Public key (PREFIX.pub) that may sign pushed models.")],
    note: Annotated[str, typer.Option("--note", help="Whose key this is and why it is trusted (audited).")],
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Add a signer's public key to the registry's trusted keys (admins only; recorded in the audit log)."""
    out = _registry(config).trust_key(public_key, note)
    print_result(fmt, out, f"trusted key {out['fingerprint'][:16]}… ({out['note']}); registry pushes may now be "
                           "signed with it", highlight=False, soft_wrap=True)


@registry_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    alias: Annotated[str, typer.Option("--alias")] = "production",
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Point an alias (default production) at a version, atomically."""
    out = _registry(config).promote(name, version, alias)
    print_result(fmt, out, f"{name}@{alias} → v{version} (was {out['previous_version'] or '-'})")


@registry_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument()],
    alias: Annotated[str, typer.Option("--alias")] = "production",
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Move the alias back to the previous verified version."""
    out = _registry(config).rollback(name, alias)
    print_result(fmt, out, f"{name}@{alias} rolled back: v{out['rolled_back_from']} → v{out['version']}")


# ------------------------------------------------------------------------------------------ clients


@clients_app.command("create")
def create(
    name: Annotated[str, typer.Argument()],
    models: Annotated[str, typer.Option(
        "--models", help="Comma-separated model names the client may call, or '*' for all (required, every role).")],
    role: Annotated[str, typer.Option("--role", help="admin, operator, auditor or client.")] = "client",
    scopes: Annotated[str | None, typer.Option(
        "--scopes", help="Comma-separated scopes (≤ the role's; default: the role's defaults, for a client "
                         "'predict' — add 'predict:versions' to call non-production versions).")] = None,
    expires_in_days: Annotated[float | None, typer.Option("--expires-in-days")] = None,
    requests: Annotated[str | None, typer.Option("--requests", help="Own request budget, e.g. 100/minute.")] = None,
    samples: Annotated[str | None, typer.Option("--samples", help="Own sample budget, e.g. 5000/hour.")] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
    key_only: Annotated[bool, typer.Option(
        "--key-only", help="Print only the API key, for scripts: KEY=$(bastion clients create … --key-only).")] = False,
) -> None:
    """Create a client identity and print its API key (shown once)."""
    from bastion.gateway.clients import create_client

    cfg = _config(config)
    budget = {k: v for k, v in (("requests", requests), ("samples", samples)) if v}
    info, key = create_client(name, role, [m for m in models.split(",") if m.strip()],
                              [s for s in (scopes or "").split(",") if s] or None,
                              expires_in_days=expires_in_days, budget=budget or None, db_url=cfg.db_url)
    if key_only:
        print(key)
        return
    print_result(fmt, {**info.to_dict(), "api_key": key}, lambda: _print_created(info, key))


def _print_created(info, key: str) -> None:  # type: ignore[no-untyped-def]
    stdout.print(f"client {info.id} ({info.name}, role {info.role}, models {','.join(info.models)}, "
                 f"scopes {','.join(info.scopes)})")
    stdout.print(f"API key (shown once, store it now): {key}", highlight=False, soft_wrap=True)


@clients_app.command("list")
def list_clients(config: ConfigOpt = None, fmt: FormatOpt = OutputFormat.text) -> None:
    """List clients (never their keys)."""
    from bastion.gateway.clients import list_clients as _list

    print_rows(fmt, _list(_config(config).db_url), ("id", "name", "role", "models", "scopes", "expires", "status"),
               lambda r: (r.id, r.name, r.role, ",".join(r.models), ",".join(r.scopes), (r.expires_at or "-")[:19],
                          "revoked" if r.revoked_at else ("active" if r.active else "expired")))


@clients_app.command("revoke")
def revoke(
    client: Annotated[str, typer.Argument(help="Client id or unique name.")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Revoke a client's key (effective within auth.cache_ttl_s on running gateways)."""
    from bastion.gateway.clients import revoke_client

    info = revoke_client(client, db_url=_config(config).db_url, reason=reason)
    print_result(fmt, info.to_dict(), f"revoked {info.id} ({info.name}) at {info.revoked_at}")


# ------------------------------------------------------------------------------------------ audit


def _when(value: str | None) -> tuple[int | None, float | None]:
    if value is None:
        return None, None
    if value.isdigit():
        return int(value), None
    from bastion.core.errors import InvalidInputError

    try:
        return None, datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise InvalidInputError(f"{value!r} is neither a record number nor an ISO date/time") from None


@audit_app.command("verify")
def verify(
    trusted_key: Annotated[list[Path] | None, typer.Option(
        "--trusted-key", help="Checkpoint public key (default: the gateway's); repeatable: any one may have signed.")]
    = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", hidden=True, help="Deprecated: --trusted-key.")]
    = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Recompute the hash chain and checkpoints; exit 1 and name the first broken or missing record."""
    from bastion.artifacts.keys import public_path_for
    from bastion.gateway.audit import verify_chain

    cfg = _config(config)
    keys = trusted_keys(trusted_key, public_key, "--public-key") or [public_path_for(cfg.audit_key_path())]
    for pub in keys:  # the first key the checkpoints verify with (else the last key's report)
        rep = verify_chain(cfg.db_url, pub if pub.exists() else None)
        if rep.ok:
            break
    print_result(fmt, rep.to_dict(), lambda: _print_chain(rep))
    if not rep.ok:
        raise typer.Exit(EXIT_FINDINGS)


def _print_chain(rep) -> None:  # type: ignore[no-untyped-def]
    if rep.ok:
        stdout.print(f"[green]audit log OK[/]: {rep.records} records, {rep.checkpoints} signed checkpoints, "
                     f"{rep.unchecked_tail} records after the last checkpoint; head {rep.last_hash[:16]}…",
                     soft_wrap=True)
    else:
        console.print(f"[bold red]audit log BROKEN[/] at record {rep.first_bad_seq}: {rep.problem}")


@audit_app.command("checkpoint")
def checkpoint(config: ConfigOpt = None, fmt: FormatOpt = OutputFormat.text) -> None:
    """Sign a Merkle checkpoint over the records not yet covered (the gateway also does this itself)."""
    from bastion.gateway.audit import ensure_audit_key, write_checkpoint
    from bastion.store.db import get_engine

    cfg = _config(config)
    cp = write_checkpoint(get_engine(cfg.db_url), ensure_audit_key(cfg.audit_key_path()))
    print_result(fmt, cp, "nothing to checkpoint: every record is already under a signed checkpoint" if cp is None
                 else f"checkpoint over records {cp['first_seq']}..{cp['last_seq']}: Merkle root "
                      f"{cp['merkle_root'][:16]}…, signed by key {cp['key_id'][:16]}…")


@audit_app.command("export")
def export(
    from_: Annotated[str | None, typer.Option("--from", help="First record number or ISO time.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last record number or ISO time.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write JSON here (default stdout).")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Only the records about this data set: grants, revocations, re-keys, reads, refusals.")] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = OutputFormat.json,
) -> None:
    """Export records with Merkle inclusion proofs against signed checkpoints."""
    from bastion.artifacts.keys import public_path_for
    from bastion.cli.output import dumps
    from bastion.core.paths import atomic_write_text
    from bastion.gateway.audit import export_records

    cfg = _config(config)
    s_from, t_from = _when(from_)
    s_to, t_to = _when(to)
    recs = export_records(cfg.db_url, s_from, s_to, t_from, t_to)
    if dataset is not None:
        from bastion.gateway.datasets import about_dataset, show_dataset

        show_dataset(dataset, cfg.db_url)  # an unknown name is an error, not an empty answer
        recs = [r for r in recs if about_dataset(r, dataset)]
    pub = public_path_for(cfg.audit_key_path())
    doc = {"log": "bastion-gateway-audit/v1", "public_key": pub.read_text() if pub.exists() else None,
           "records": recs}
    if out is not None:
        atomic_write_text(out, dumps(doc))
        console.print(f"exported {len(recs)} records to {out}")
    elif fmt == OutputFormat.json:
        print_json(doc)
    else:
        for r in recs:
            when = datetime.fromtimestamp(r["ts"]).astimezone().isoformat(timespec="seconds")
            stdout.print(f"{r['seq']:>8} {when} {r['kind']:<8} {r['actor']:<28} {r['action']:<24} "
                         f"{'proof' if r['proof'] else 'no proof yet'}", soft_wrap=True, highlight=False)


# ------------------------------------------------------------------------------------------ db


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str | None, typer.Option("--url", help="Database URL (default BASTION_DB_URL or SQLite).")]
    = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Apply every capability's Alembic migrations (idempotent)."""
    from bastion.store.db import database_url, upgrade

    upgrade(url)
    safe = database_url(url).split("@")[-1]
    print_result(fmt, {"upgraded": True, "database": safe}, f"database at {safe} is at the latest revision")
