"""``bastion data register|list|show|grant|revoke|access|rotate`` and the data-set mode of ``data encrypt|decrypt``.

Exit codes: 0 done · 2 bad input or access refused (the refusal is in the audit log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import data_app
from bastion.cli.options import FormatOpt, print_result, print_rows, rows_table
from bastion.cli.output import OutputFormat, print_table, stdout
from bastion.cli.principals import store_url


@data_app.command("register")
def register(
    path: Annotated[Path, typer.Argument(help="Data file or directory.")],
    name: Annotated[str, typer.Option("--name", help="Registry name of the data set.")],
    owner: Annotated[str, typer.Option("--owner", help="Owning team (default: you).")] = "",
    classification: Annotated[str, typer.Option(
        "--classification", help="public, internal, confidential or restricted (restricted: every grant needs "
                                 "--purpose).")] = "internal",
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="Integrity manifest (bastion data manifest); the files must still match it.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Register a data set: manifest digest, owner, classification (audited)."""
    from bastion.gateway.datasets import register_dataset

    info = register_dataset(path, name, owner=owner, classification=classification, manifest=manifest,
                            db_url=store_url())
    print_result(fmt, info.to_dict(), f"registered data set {info.name} ({info.classification}, owner {info.owner}): "
                                      f"{len(info.files)} files, {info.size} bytes, manifest sha256 "
                                      f"{info.manifest_sha256[:16]}…", highlight=False, soft_wrap=True)


@data_app.command("list")
def list_cmd(fmt: FormatOpt = OutputFormat.text) -> None:
    """Registered data sets."""
    from bastion.gateway.datasets import list_datasets

    print_rows(fmt, list_datasets(store_url()),
               ("name", "classification", "owner", "files", "bytes", "encrypted", "manifest"),
               lambda r: (r.name, r.classification, r.owner, str(len(r.files)), str(r.size),
                          f"epoch {r.key_epoch}" if r.encrypted else "no", r.manifest_sha256[:12]))


@data_app.command("show")
def show(name: Annotated[str, typer.Argument()], fmt: FormatOpt = OutputFormat.text) -> None:
    """One data set: files, digests, encryption, current grants."""
    from bastion.gateway.datasets import access, show_dataset

    url = store_url()
    info = show_dataset(name, url)
    grants = access(name, url)
    print_result(fmt, {**info.to_dict(), "grants": [g.to_dict() for g in grants]}, lambda: _print_dataset(info, grants))


def _print_dataset(info: Any, grants: list[Any]) -> None:
    stdout.print(f"{info.name}: {info.classification}, owner {info.owner}, registered {info.created_at[:19]} by "
                 f"{info.created_by}\npath {info.path}\nmanifest sha256 {info.manifest_sha256}", highlight=False)
    stdout.print(f"encrypted: key epoch {info.key_epoch} in {info.encrypted_dir}" if info.encrypted
                 else "encrypted: no", highlight=False)
    for f in info.files:
        stdout.print(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256'][:16]}…", highlight=False)
    print_table(rows_table(_GRANT_COLUMNS, grants, _grant_cells))


_GRANT_COLUMNS = ("principal", "role", "purpose", "until", "status", "granted by", "key")


def _grant_cells(g: Any) -> tuple[str, ...]:
    return (g.principal, g.role, g.purpose or "-", (g.expires_at or "no expiry")[:19], g.status(),
            g.granted_by, (g.key_fingerprint or "none (cannot decrypt)")[:16])


@data_app.command("grant")
def grant_cmd(
    name: Annotated[str, typer.Argument(help="Data set.")],
    to: Annotated[str, typer.Option("--to", help="Principal (bastion principals list) or gateway client.")],
    role: Annotated[str, typer.Option("--role", help="reader, writer or owner (each may read).")] = "reader",
    purpose: Annotated[str, typer.Option("--purpose", help="What the data is used for (required if restricted).")] = "",
    expires: Annotated[str | None, typer.Option("--expires", help="ISO date or date-time the grant ends.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Grant a role on a data set (audited; an encrypted set gets a key wrap for the reader, no re-encryption)."""
    from bastion.gateway.datasets import grant

    g = grant(name, to, role, purpose=purpose, expires=expires, db_url=store_url())
    print_result(fmt, g.to_dict(), f"granted {g.role} on {name} to {g.principal} (grant {g.id}; purpose "
                                   f"{g.purpose or '-'}; until {g.expires_at or 'no expiry'})",
                 highlight=False, soft_wrap=True)


@data_app.command("revoke")
def revoke_cmd(
    name: Annotated[str, typer.Argument(help="Data set.")],
    from_: Annotated[str, typer.Option("--from", help="Principal whose grants end.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Revoke a principal's grants; an encrypted data set is re-keyed for the remaining readers."""
    from bastion.gateway.datasets import revoke

    out = revoke(name, from_, reason=reason, db_url=store_url())
    print_result(fmt, out, lambda: _print_revoked(out, from_, name))


def _print_revoked(out: dict[str, Any], from_: str, name: str) -> None:
    stdout.print(f"revoked grants {out['revoked_grants']} of {from_} on {name}", highlight=False)
    if out["rekey"]:
        _print_rekey(out["rekey"])


def _print_rekey(r: dict[str, Any]) -> None:
    stdout.print(f"re-keyed {r['dataset']}: key epoch {r['old_epoch']} → {r['epoch']}, {r['bytes_reencrypted']} bytes "
                 f"re-encrypted in {r['seconds']} s, key wrapped for {', '.join(r['readers']) or 'nobody'} "
                 "(+ custodian)", highlight=False, soft_wrap=True)


@data_app.command("rotate")
def rotate(name: Annotated[str, typer.Argument()], fmt: FormatOpt = OutputFormat.text) -> None:
    """Re-key an encrypted data set now (e.g. after grants expired): new key, re-encrypted, current readers only."""
    from bastion.gateway.dataset_keys import rekey_dataset

    r = rekey_dataset(name, reason="rotate", db_url=store_url())
    print_result(fmt, r, lambda: _print_rekey(r))


@data_app.command("access")
def access_cmd(
    name: Annotated[str, typer.Argument()],
    all_: Annotated[bool, typer.Option("--all", help="Also revoked and expired grants.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Who can read a data set, why (purpose) and until when."""
    from bastion.gateway.datasets import access

    print_rows(fmt, access(name, store_url(), include_inactive=all_), _GRANT_COLUMNS, _grant_cells)


# ------------------------------------------------------------------------------ data encrypt/decrypt NAME
def is_dataset_name(arg: Path) -> bool:
    """``data encrypt|decrypt ARG``: a registered data-set name (and not a file) selects the data-set mode."""
    if arg.is_file():
        return False
    from bastion.gateway.datasets import list_datasets

    return any(d.name == str(arg) for d in list_datasets(store_url()))


def encrypt_dataset_cmd(name: str, out: Path | None, chunk_size: int, fmt: OutputFormat) -> None:
    from bastion.gateway.dataset_keys import encrypt_dataset

    r = encrypt_dataset(name, out, chunk_size=chunk_size, db_url=store_url())
    print_result(fmt, r, lambda: _print_encrypted(r, name))


def _print_encrypted(r: dict[str, Any], name: str) -> None:
    stdout.print(f"encrypted data set {name} once → {r['encrypted_dir']} ({r['files']} files, {r['bytes']} bytes, "
                 f"key epoch 1); data key wrapped for {', '.join(r['readers'])} (+ custodian)", highlight=False,
                 soft_wrap=True)
    if r["readers_without_key"]:
        stdout.print(f"[yellow]readers without a public key cannot decrypt:[/] {', '.join(r['readers_without_key'])}")


def decrypt_dataset_cmd(name: str, key: Path | None, out: Path | None, fmt: OutputFormat) -> None:
    from bastion.core.errors import ConfigError
    from bastion.gateway.dataset_keys import decrypt_dataset

    if key is None:
        raise ConfigError(f"decrypting data set {name!r} needs your private key: --key MY.key")
    r = decrypt_dataset(name, key, out or Path(name), db_url=store_url())
    print_result(fmt, r, f"decrypted data set {name} (key epoch {r['epoch']}) for {r['principal']} → {r['out']} "
                         f"({r['files']} files, {r['bytes']} bytes, digests match the registry)", highlight=False,
                 soft_wrap=True)
