"""``bastion assess-many MANIFEST``: assess a fleet of models (locally or in parallel on Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import app
from bastion.cli.output import EXIT_ERROR, OutputFormat, ThreadsOpt, console, print_json, stdout, use_threads


@app.command("assess-many")
def assess_many_cmd(
    manifest: Annotated[Path, typer.Argument(help="YAML: defaults + a list of models (name, demo|model, data…).")],
    out: Annotated[Path, typer.Option("--out", help="Each model's reports go to OUT/<name>/.")] = Path("bastion-fleet"),
    executor: Annotated[str, typer.Option("--executor", help="local or ray")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Assess every model in MANIFEST; exit 2 if any assessment could not run."""
    use_threads(threads)
    from bastion.assess.fleet import assess_many, load_manifest

    entries = load_manifest(manifest)

    def done(row: dict[str, Any]) -> None:
        if fmt == OutputFormat.text:
            console.print(f"{row['name']}: {row['status']} {row.get('verdict', row.get('error', ''))}")

    rows = assess_many(entries, out, executor, ray_address, on_done=done)
    if fmt == OutputFormat.json:
        print_json(rows)
    else:
        stdout.print(f"{sum(r['status'] == 'ok' for r in rows)}/{len(rows)} assessed; reports under {out}/")
    if any(r["status"] != "ok" for r in rows):
        raise typer.Exit(EXIT_ERROR)
