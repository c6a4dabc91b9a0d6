"""``bastion explain``: SHAP (global + local) and LIME explanations of a model on its data."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import app
from bastion.cli.output import ThreadsOpt, console, print_json, use_threads


class ExplainFormat(str, Enum):
    json = "json"
    html = "html"


@app.command("explain")
def explain(
    model: Annotated[Path | None, typer.Option("--model", help="Model file (TorchScript, ONNX, skops …).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Data file (.npz, .csv, .parquet).")] = None,
    demo: Annotated[str | None, typer.Option("--demo", help="Built-in demo target instead of --model/--data.")] = None,
    index: Annotated[int, typer.Option("--index", help="Row of the evaluation split to explain locally.")] = 0,
    samples: Annotated[int, typer.Option("--samples", help="Rows used for the global SHAP summary.")] = 200,
    method: Annotated[str, typer.Option("--method", help="SHAP explainer: auto, tree, linear, gradient or kernel; "
                                                 "lime = auto plus LIME for the row (images: lime_image).")] = "auto",
    label: Annotated[str | None, typer.Option("--label", help="Label column of a CSV/Parquet file.")] = None,
    clip_min: Annotated[float | None, typer.Option("--clip-min")] = None,
    clip_max: Annotated[float | None, typer.Option("--clip-max")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the HTML/JSON here instead of stdout.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: Annotated[ExplainFormat, typer.Option("--format", help="json or html.")] = ExplainFormat.json,
    threads: ThreadsOpt = None,
) -> None:
    """Explain a model: global SHAP summary, and SHAP + LIME for one input (--index)."""
    use_threads(threads)
    from bastion.assess.target import build_target
    from bastion.cli.output import dumps
    from bastion.core.paths import atomic_write_text
    from bastion.explain.render import explain_target, render_html

    target = build_target(model=model, data=data, demo=demo, label=label, clip_min=clip_min, clip_max=clip_max,
                          seed=seed)
    result, pngs = explain_target(target, index=index, samples=samples, method=method, seed=seed)
    if fmt == ExplainFormat.json:
        if out is None:
            print_json(result)
            return
        atomic_write_text(out, dumps(result))
    else:
        page = render_html(result, pngs)
        if out is None:
            sys.stdout.write(page)
            return
        atomic_write_text(out, page)
    console.print(f"explanation written to {out}")
