"""``bastion data representativeness``: is the training data representative of the population it serves?

Exit codes: 0 representative (no finding at or above ``--fail-on``) · 1 findings · 2 bad input.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import data_app
from bastion.cli.output import EXIT_FINDINGS, OutputFormat, print_json, stdout

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="text or json.")]


def _table(stack: ExitStack, spec: str) -> Any:
    """A CSV/TSV/Parquet table, or ``dataset:NAME`` (grant checked, read audited)."""
    from bastion.data.tables import read_table
    from bastion.datasets.files import data_source

    source = data_source(spec)
    if source is not None:
        name = spec.partition(":")[2]
        return read_table(stack.enter_context(source(name, purpose="bastion data representativeness")))
    return read_table(spec)


@data_app.command("representativeness")
def representativeness_cmd(
    train: Annotated[str, typer.Argument(help="Training table (CSV/TSV/Parquet) or dataset:NAME.")],
    reference: Annotated[str, typer.Option("--reference", help="Population table the model will serve.")],
    groups: Annotated[str | None, typer.Option("--groups", help="Comma-separated group columns (e.g. sex,age_band).")]
    = None,
    label: Annotated[str | None, typer.Option("--label", help="Label column (class balance, label × group cells).")]
    = None,
    min_count: Annotated[int, typer.Option("--min-count", help="Fewest training rows per intersectional group.")] = 20,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for representativeness.json and .html.")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Exit 1 at this severity or above.")] = "medium",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Coverage, group/class balance, intersectional groups and shift tests against a reference population."""
    from bastion.cli.output import dumps
    from bastion.core.paths import atomic_write_text
    from bastion.core.severity import Severity
    from bastion.monitor.representativeness import representativeness
    from bastion.monitor.representativeness_html import representativeness_html

    threshold = Severity.parse(fail_on)
    cols = [c.strip() for c in (groups or "").split(",") if c.strip()]
    with ExitStack() as stack:
        res = representativeness(_table(stack, train), _table(stack, reference), cols, label, min_count, seed=seed)
    doc = {**res.to_dict(), "train": train, "reference": reference}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "representativeness.json", dumps(doc))
        atomic_write_text(out / "representativeness.html", representativeness_html(doc, train, reference))
    if fmt == OutputFormat.json:
        print_json(doc)
    else:
        _print(doc, out)
    worst = res.max_severity
    if worst is not None and worst >= threshold:
        raise typer.Exit(EXIT_FINDINGS)


def _print(doc: dict[str, Any], out: Path | None) -> None:
    stdout.print(f"{doc['train']} ({doc['n_train']} rows) vs reference {doc['reference']} ({doc['n_reference']} rows)",
                 highlight=False)
    low_cov = [c for c in doc["coverage"] if c["coverage"] < 0.999]
    stdout.print("coverage: " + (", ".join(f"{c['column']} {c['coverage']:.0%}" for c in low_cov) or "100% of every column"),
                 highlight=False, soft_wrap=True)
    for b in doc["balance"]:
        ratio = "-" if b["ratio"] is None else f"{b['ratio']:.2f}"
        stdout.print(f"  {b['column']}={b['value']}: train {b['train_share']:.0%} ({b['train_count']}) vs reference "
                     f"{b['reference_share']:.0%}, ratio {ratio}", highlight=False)
    for f in doc["findings"]:
        stdout.print(f"[{'red' if f['severity'] in ('high', 'critical') else 'yellow'}]{f['severity']:<7}[/] {f['title']}",
                     highlight=False, soft_wrap=True)
    stdout.print(f"verdict: {doc['verdict'].replace('_', ' ')}" + (f" → {out}/representativeness.html" if out else ""),
                 highlight=False)
