"""``bastion demo fairness``: the representativeness + fairness demo's files (real patients, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import demo_app
from bastion.cli.output import OutputFormat, print_json, stdout


@demo_app.command("fairness")
def fairness_demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for the tables and models.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the test split and the samples.")] = 0,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = OutputFormat.text,
) -> None:
    """Write a population, a selection-biased and a stratified training sample, and a model on each
    (scikit-learn's diabetes patients; groups: their recorded sex and age)."""
    from bastion.datasets.fairness_demo import build_fairness_demo

    info = build_fairness_demo(out, seed=seed)
    if fmt == OutputFormat.json:
        print_json(info)
        return
    stdout.print(f"population {info['population']} ({info['n_population']} patients), test rows {info['n_test']}",
                 highlight=False)
    for name in ("skewed", "stratified"):
        d = info[name]
        stdout.print(f"{name}: {d['train']} ({d['n_train']} rows, {d['sex2_high_rows']} of sex 2 with y=1), "
                     f"model {d['model']}, assessment table {d['assess']}", highlight=False, soft_wrap=True)
    stdout.print(f"next: bastion data representativeness {out}/train_skewed.csv --reference {out}/population.csv "
                 f"--groups sex,age --label y", highlight=False, soft_wrap=True)
