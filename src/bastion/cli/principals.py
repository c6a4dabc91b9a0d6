"""``bastion principals``: people, teams and gateway clients that data sets are granted to.

Exit codes: 0 done · 2 bad input (unknown client, key that is not X25519, name in use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import principals_app
from bastion.cli.options import FormatOpt, print_result, print_rows
from bastion.cli.output import OutputFormat


def store_url() -> str | None:
    """Bring the store to the latest schema; the URL in force (``BASTION_DB_URL`` or SQLite)."""
    from bastion.store.db import upgrade

    upgrade()
    return None


@principals_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="PREFIX: writes PREFIX.key (0600) and PREFIX.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Create an X25519 key pair: the .pub goes to `principals add`, the .key stays with its owner."""
    from bastion.data.privacy.recipients import fingerprint, generate_identity, load_identity

    key, pub = generate_identity(out, overwrite=force)
    fp = fingerprint(load_identity(key).public_key())
    print_result(fmt, {"private_key": str(key), "public_key": str(pub), "fingerprint": fp},
                 f"private key: {key} (mode 0600)\npublic key:  {pub}\nfingerprint: {fp}", highlight=False)


@principals_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Principal name (person or team), or a new name for a gateway client.")],
    key: Annotated[str | None, typer.Option("--key", help="X25519 public key: a .pub file, PEM text or base64.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="person or team.")] = "person",
    client: Annotated[str | None, typer.Option("--client", help="Link to this gateway client (id or name).")] = None,
    note: Annotated[str, typer.Option("--note", help="Who this is (recorded).")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Register a principal with its public key (recorded in the audit log)."""
    from bastion.gateway.datasets import add_principal

    info = add_principal(name, key, kind=kind, client=client, note=note, db_url=store_url())
    fp = f"key {info.key_fingerprint[:16]}…" if info.key_fingerprint else "no key (cannot decrypt)"
    link = f", gateway client {info.client_id}" if info.client_id else ""
    print_result(fmt, info.to_dict(), f"principal {info.name} ({info.kind}{link}): {fp}", highlight=False)


@principals_app.command("list")
def list_cmd(fmt: FormatOpt = OutputFormat.text) -> None:
    """Principals and the gateway clients that can be granted data."""
    from bastion.gateway.datasets import list_principals

    print_rows(fmt, list_principals(store_url()), ("name", "kind", "key fingerprint", "gateway client", "note"),
               lambda r: (r.name, r.kind, (r.key_fingerprint or "-")[:16], r.client_id or "-", r.note))
