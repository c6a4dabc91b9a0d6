"""``bastion attack evasion``: run one evasion attack and print clean vs robust accuracy.

White-box attacks (fgsm, pgd, apgd-ce, apgd-dlr) need a differentiable model (TorchScript,
torch.export, ONNX converted to torch); square (scores) and hsj (labels only) attack anything,
including scikit-learn models and a remote ``--endpoint`` with a ``--query-budget``.
Exit codes: 0 done · 2 bad input or options.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import attack_app
from bastion.cli.output import OutputFormat, ThreadsOpt, console, print_json, print_table, use_threads


class AttackName(str, Enum):
    fgsm = "fgsm"
    pgd = "pgd"
    apgd_ce = "apgd-ce"
    apgd_dlr = "apgd-dlr"
    square = "square"
    hsj = "hsj"


class NormName(str, Enum):
    linf = "linf"
    l2 = "l2"


def _save_adv(path: Path, result: Any, x_clean: Any) -> None:
    import io

    import numpy as np

    from bastion.core.errors import ConfigError
    from bastion.core.paths import atomic_write_bytes

    if path.suffix != ".npz":
        raise ConfigError(f"--save-adv {path}: the file name must end in .npz")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--save-adv {path} is a directory")
    buf = io.BytesIO()
    np.savez_compressed(buf, x_adv=result.x_adv, x=x_clean, y=result.y, pred_clean=result.pred_clean,
                        pred_adv=result.pred_adv, success=result.success)
    atomic_write_bytes(path, buf.getvalue(), mode=0o644)


@attack_app.command("evasion")
def evasion(
    attack: Annotated[AttackName, typer.Option("--attack", "-a", help="Attack to run.")] = AttackName.pgd,
    norm: Annotated[NormName, typer.Option("--norm", help="Perturbation norm.")] = NormName.linf,
    eps: Annotated[float, typer.Option("--eps", help="Perturbation budget ε (in input units).")] = 0.1,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file: TorchScript .pt, .pt2, ONNX, .skops.")] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Labelled data: .npz (x,y or x_test/y_test), CSV, Parquet.")] = None,
    demo: Annotated[str | None, typer.Option("--demo", help="Built-in demo target: digits, mnist, breast-cancer, breast-cancer-sklearn.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Label column of a CSV/Parquet table.")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Remote predict URL (black-box) instead of --model.")] = None,
    query_budget: Annotated[int | None, typer.Option("--query-budget", help="Most samples the endpoint may be sent.")] = None,
    clip_min: Annotated[float | None, typer.Option("--clip-min", help="Lowest valid input value (default: sidecar, model metadata, else inferred from the data).")] = None,
    clip_max: Annotated[float | None, typer.Option("--clip-max", help="Highest valid input value (default: sidecar, model metadata, else inferred from the data).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Iterations (square: queries per sample; hsj: iterations).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Attack only the first N evaluation samples.")] = None,
    restarts: Annotated[int, typer.Option("--restarts", help="Random restarts (pgd, apgd).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed for every random process.")] = 0,
    save_adv: Annotated[Path | None, typer.Option("--save-adv", help="Write x_adv, x, y, predictions and success to this .npz.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json (one JSON object on stdout).")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Run one evasion attack; report clean and robust accuracy, time and throughput."""
    use_threads(threads)
    from bastion.assess.target import build_target
    from bastion.attacks.evasion import run_evasion
    from bastion.core.errors import ConfigError

    if restarts < 1:
        raise ConfigError(f"--restarts must be >= 1, got {restarts}")
    if samples is not None and samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if save_adv is not None and save_adv.suffix != ".npz":
        raise ConfigError(f"--save-adv {save_adv}: the file name must end in .npz")
    target = build_target(model=model, data=data, demo=demo, endpoint=endpoint, query_budget=query_budget,
                          label=label, clip_min=clip_min, clip_max=clip_max, seed=seed)
    x, y = target.data.eval_split()
    kw: dict[str, Any] = {}
    if attack.value in ("pgd", "apgd-ce", "apgd-dlr") and restarts > 1:
        kw["restarts"] = restarts
    input_range = target.input_range()
    warnings: list[str] = []
    if input_range.bounded:
        width = float(input_range.clip_max - input_range.clip_min)  # type: ignore[operator]
        n = math.prod(x.shape[1:])
        # the diameter of the input box in the attack's norm: at or past it every input is reachable
        diameter = width if norm == NormName.linf else width * math.sqrt(n)
        if eps >= diameter:
            warnings.append(f"--eps {eps:g} ({norm.value}) covers the whole {input_range.describe()} "
                            f"(its {norm.value} diameter is {diameter:.3g}): every input is reachable, so the "
                            "result says nothing about robustness")
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if fmt == OutputFormat.text:
        console.print(f"[bold]{attack.value}[/] ({norm.value}, ε={eps:g}) on {target.name} "
                      f"({'white-box' if target.is_white_box else 'black-box'}); {input_range.describe()}")
    r = run_evasion(target.model, x, y, attack.value, norm.value, eps, steps=steps, samples=samples, seed=seed, **kw)
    r.params["input_range"] = input_range.to_dict()
    out = {**r.to_dict(), "target": target.name, "model_format": target.model_format,
           "input_range": input_range.to_dict(), "warnings": warnings}
    if save_adv is not None:
        _save_adv(save_adv, r, x[: r.samples])
        out["saved_adv"] = str(save_adv)
    if fmt == OutputFormat.json:
        print_json(out)
        return
    from rich.table import Table

    table = Table(title=f"evasion · {r.attack} · {target.name}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("input range", input_range.describe().removeprefix("input range "))
    table.add_row("threads", str(r.params.get("threads", "-")))
    for key in ("norm", "eps", "steps", "samples", "clean_accuracy", "robust_accuracy", "attack_success_rate",
                "duration_s", "samples_per_s", "queries"):
        v = out[key]
        table.add_row(key, "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
    print_table(table)
    if save_adv is not None:
        console.print(f"wrote {save_adv}")
