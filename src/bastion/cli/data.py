"""``bastion data``: integrity manifests, validation, anomalies, PII, encryption, poisoning.

Exit codes: 0 clean · 1 differences / violations / findings · 2 bad input · 3 nothing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import data_app
from bastion.cli.output import EXIT_FINDINGS, OutputFormat, console, print_json, stdout

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format: text or json.")]


def _split_cols(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


# ----------------------------------------------------------------------------- integrity
@data_app.command("manifest")
def manifest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to record.")],
    out: Annotated[Path, typer.Option("--out", help="Manifest JSON to write.")],
    key: Annotated[Path | None, typer.Option("--key", help="Private key PREFIX (bastion keys generate).")] = None,
    key_columns: Annotated[
        str | None, typer.Option("--key-columns", help="Comma-separated key columns of tabular files.")
    ] = None,
    no_rows: Annotated[bool, typer.Option("--no-rows", help="File digests only, no per-row digests.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record sha256 of every file and per-row Merkle trees of CSV/Parquet/npz files; sign it."""
    from bastion.data.integrity import build_manifest, manifest_summary, write_manifest

    m = build_manifest(paths, key_columns=_split_cols(key_columns), rows=not no_rows)
    write_manifest(m, out, key=str(key) if key else None)
    info = {"manifest": str(out), **manifest_summary(m)}
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        stdout.print(
            f"manifest {out}: {info['files']} files, {info['bytes']} bytes, {info['rows']} rows in "
            f"{info['tables']} tables\nmerkle root {info['merkle_root']}\n"
            + (f"signed by key {info['key_id']}" if info["signed"] else "UNSIGNED (pass --key to sign)")
        )


@data_app.command("verify")
def verify(
    paths: Annotated[list[Path], typer.Argument(help="The same files or directories as at manifest time.")],
    manifest_path: Annotated[Path, typer.Option("--manifest", help="Manifest JSON to check against.")],
    pub: Annotated[Path | None, typer.Option("--pub", help="Public key that must have signed it.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Report added/removed/modified files and exactly which rows were inserted, deleted or modified."""
    from bastion.data.integrity import verify_manifest

    report = verify_manifest(paths, manifest_path, pub=pub)
    if fmt == OutputFormat.json:
        print_json(report)
    else:
        _print_verify(report)
    if not report["ok"]:
        raise typer.Exit(EXIT_FINDINGS)


def _print_verify(r: dict[str, Any]) -> None:
    sig = r["signature"]
    stdout.print(f"signature: {sig['status']}" + (f" (key {sig['key_id']})" if sig.get("key_id") else ""))
    for p in r["added"]:
        stdout.print(f"[green]+ added[/]    {p}")
    for p in r["removed"]:
        stdout.print(f"[red]- removed[/]  {p}")
    for c in r["modified"]:
        stdout.print(f"[yellow]~ modified[/] {c['path']}")
        for t in c.get("tables", []):
            label = f" [{t['name']}]" if t["name"] else ""
            for row in t.get("inserted", []):
                stdout.print(f"    + row {row['row']}{label} {row.get('key', '')}")
            for row in t.get("deleted", []):
                stdout.print(f"    - row {row['old_row']}{label} {row.get('key', '')}")
            for row in t.get("modified", []):
                stdout.print(f"    ~ row {row['row']} (was {row['old_row']}){label} {row.get('key', '')}")
    stdout.print("[bold green]OK[/]: data matches the manifest" if r["ok"] else "[bold red]DIFFERENCES FOUND[/]")


# ----------------------------------------------------------------------------- encryption
@data_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Key file to write (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Create a 256-bit key-encryption key (KEK) for data encryption."""
    from bastion.data.privacy.encryption import generate_kek

    path, kid = generate_kek(out, overwrite=force)
    if fmt == OutputFormat.json:
        print_json({"key": str(path), "kek_id": kid})
    else:
        stdout.print(f"key-encryption key {path} (mode 0600), key id {kid}")


@data_app.command("encrypt")
def encrypt(
    path: Annotated[Path, typer.Argument(help="File to encrypt.")],
    key: Annotated[Path | None, typer.Option("--key", help="KEK file (default: $BASTION_DATA_KEK).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default PATH.enc).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Plaintext bytes per chunk.")] = 1 << 20,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """AES-256-GCM envelope encryption, streamed in authenticated chunks."""
    from bastion.data.privacy.encryption import encrypt_file, load_kek

    info = encrypt_file(path, out or path.with_name(path.name + ".enc"), load_kek(key), chunk_size=chunk_size)
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        stdout.print(f"encrypted {path} → {info['path']} ({info['bytes']} bytes, {info['chunks']} chunks, "
                     f"key id {info['kek_id']})")


@data_app.command("decrypt")
def decrypt(
    path: Annotated[Path, typer.Argument(help="Encrypted file.")],
    key: Annotated[Path | None, typer.Option("--key", help="KEK file (default: $BASTION_DATA_KEK).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output (default: PATH without .enc).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Decrypt and authenticate; a modified file fails with exit 2 and writes nothing."""
    from bastion.core.errors import ConfigError
    from bastion.data.privacy.encryption import decrypt_file, load_kek

    if out is None:
        if path.suffix != ".enc":
            raise ConfigError(f"{path} does not end in .enc; pass --out")
        out = path.with_suffix("")
    info = decrypt_file(path, out, load_kek(key))
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        stdout.print(f"decrypted and authenticated {path} → {info['path']} ({info['bytes']} bytes)")


@data_app.command("rekey")
def rekey(
    path: Annotated[Path, typer.Argument(help="Encrypted file.")],
    key: Annotated[Path, typer.Option("--key", help="Current KEK file.")],
    new_key: Annotated[Path, typer.Option("--new-key", help="New KEK file.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Rotate the KEK: re-wrap the file's data key; the ciphertext chunks are unchanged."""
    from bastion.data.privacy.encryption import rekey_file

    info = rekey_file(path, key, new_key)
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        stdout.print(f"re-wrapped {path}: key id {info['old_kek_id']} → {info['kek_id']}")


def _warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/] {msg}")
