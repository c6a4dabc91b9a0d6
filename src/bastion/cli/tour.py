"""``bastion tour DIR``: write every input the README's five-minute tour uses, then say what to run first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import app
from bastion.cli.output import OutputFormat, print_json, stdout

NEXT = """\
Next, from {dir}:
  cd {dir}
  bastion assess --model digits.pt --data digits.npz --profile quick --out rep
  bastion model scan digits.pt suspicious/evil.pt suspicious/bypass.pkl
The README's tour continues from there; every command in it uses only these files."""


@app.command("tour")
def tour(
    directory: Annotated[Path, typer.Argument(help="An empty (or new) directory for the tour's files.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the tour files in a non-empty directory.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = OutputFormat.text,
) -> None:
    """Write the README tour's inputs: demo models with sidecars, data, suspicious files, PII table, keys."""
    from bastion.demos.tour import write_tour

    files = write_tour(directory, force=force)
    rel = [str(f.relative_to(directory)) for f in files]
    if fmt == OutputFormat.json:
        print_json({"directory": str(directory), "files": rel})
        return
    stdout.print(f"wrote {len(rel)} files to {directory}: " + ", ".join(rel), soft_wrap=True, highlight=False)
    stdout.print(NEXT.format(dir=directory), highlight=False)
