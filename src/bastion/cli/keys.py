"""``bastion keys``: signing keys shared by model signing, data manifests and audit checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import keys_app
from bastion.cli.output import OutputFormat, print_json, stdout


@keys_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Private key path; the public key goes to OUT.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
) -> None:
    """Generate an ECDSA P-256 key pair: OUT (mode 0600) and OUT.pub."""
    from bastion.artifacts.keys import generate_keypair, public_key_fingerprint

    priv, pub = generate_keypair(out, overwrite=force)
    info = {"private_key": str(priv), "public_key": str(pub), "key_id": public_key_fingerprint(pub)}
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        stdout.print(f"private key: {priv} (mode 0600)\npublic key:  {pub}\nkey id:      {info['key_id']}")
