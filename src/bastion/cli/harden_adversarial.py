"""``bastion harden adversarial-training | sanitize | smooth``: make a model harder to fool.

Every command writes TorchScript MODEL plus MODEL.bastion.json (input spec, class count and the
``defense`` block the assessment reads to attack the wrapper adaptively).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import harden_app
from bastion.cli.options import FormatOpt, SeedOpt, print_result
from bastion.cli.output import OutputFormat, ThreadsOpt, console, progress_bar, stdout, use_threads


class Method(str, Enum):
    pgd = "pgd"
    fast = "fast"
    trades = "trades"


class SanitizerName(str, Enum):
    feature_squeezing = "feature-squeezing"
    mahalanobis = "mahalanobis"
    lid = "lid"


DemoOpt = Annotated[str | None, typer.Option("--demo", help="Built-in data/model: digits, mnist, breast-cancer.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data file (.npz, .csv, .parquet).")]
LabelOpt = Annotated[str | None, typer.Option("--label", help="Label column of a CSV/Parquet file.")]
ClipMinOpt = Annotated[float | None, typer.Option("--clip-min", help="Smallest valid input value.")]
ClipMaxOpt = Annotated[float | None, typer.Option("--clip-max", help="Largest valid input value.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output TorchScript file (sidecar written beside it).")]


@harden_app.command("adversarial-training")
def adversarial_training(
    model_spec: Annotated[str, typer.Option("--model-spec", help="Zoo architecture (digits-mlp, mnist-cnn, mnist-cnn-wide, mnist-cnn-deep, tabular-mlp) or module:Class.")],
    out: OutOpt,
    demo: DemoOpt = None,
    data: DataOpt = None,
    label: LabelOpt = None,
    method: Annotated[Method, typer.Option("--method", help="pgd (Madry), fast (FGSM+random init, Wong), trades.")] = Method.pgd,
    eps: Annotated[float, typer.Option("--eps", help="L∞ budget in input units.")] = 0.3,
    epochs: Annotated[int, typer.Option("--epochs")] = 20,
    steps: Annotated[int, typer.Option("--steps", help="Inner PGD steps (pgd/trades).")] = 7,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    eps_ramp: Annotated[int, typer.Option("--eps-ramp", help="Epochs over which eps grows linearly to --eps.")] = 0,
    patience: Annotated[int, typer.Option("--patience", help="Stop after N epochs without robust-accuracy gain (0 = off).")] = 0,
    trades_beta: Annotated[float, typer.Option("--trades-beta")] = 6.0,
    time_budget: Annotated[float | None, typer.Option("--time-budget", help="Stop after this many seconds.")] = None,
    budget_clock: Annotated[str, typer.Option("--budget-clock", help="wall, or cpu (process CPU s / threads: fair on a "
                                              "shared machine); the LR schedule anneals to the budget.")] = "wall",
    shift: Annotated[int, typer.Option("--shift", help="Random-translation augmentation of images (pixels).")] = 0,
    bf16: Annotated[str, typer.Option("--bf16", help="off, attack (inner PGD in bfloat16 autocast) or all.")] = "off",
    lr_schedule: Annotated[str, typer.Option("--lr-schedule", help="cosine, onecycle or constant.")] = "cosine",
    threads: ThreadsOpt = None,
    clip_min: ClipMinOpt = None,
    clip_max: ClipMaxOpt = None,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Train a robust model (PGD / fast / TRADES) with early stopping; save it with its training record."""
    from bastion.core.errors import ConfigError
    from bastion.defenses.adversarial import AdversarialTrainingConfig
    from bastion.defenses.adversarial.harden import harden_adversarial, load_training_data

    use_threads(threads)
    td = load_training_data(data, demo=demo, label=label, clip_min=clip_min, clip_max=clip_max)
    if td.clip_min is not None and td.clip_max is not None and eps > td.clip_max - td.clip_min:
        raise ConfigError(f"--eps {eps:g} is larger than the whole {td.input_range().describe()}")
    cfg = AdversarialTrainingConfig(
        method=method.value, eps=eps, epochs=epochs, batch_size=batch_size, lr=lr, train_steps=steps,
        eps_ramp_epochs=eps_ramp, trades_beta=trades_beta, clip_min=td.clip_min, clip_max=td.clip_max,
        patience=patience, time_budget_s=time_budget, seed=seed, budget_clock=budget_clock,  # type: ignore[arg-type]
        augment_shift=shift, bf16=bf16, lr_schedule=lr_schedule,  # type: ignore[arg-type]
        anneal_to_budget=time_budget is not None,
    )
    with progress_bar(enabled=fmt == OutputFormat.text) as prog:
        task = prog.add_task(f"{method.value} training", total=epochs)

        def on_epoch(ep: Any, rec: Any) -> None:
            prog.update(task, completed=ep.epoch, description=(
                f"{ep.method} epoch {ep.epoch}/{epochs} eps={ep.eps_train:.3g} clean={ep.clean_accuracy:.3f} "
                f"robust={ep.robust_accuracy:.3f}"))

        record, written = harden_adversarial(model_spec, td, cfg, out, on_epoch=on_epoch)
    result = {"model": str(written["model"]), "sidecar": str(written["sidecar"]),
              "training_record": str(written["training_record"]), **_summary(record.to_dict()),
              "input_range": td.input_range().to_dict()}
    print_result(fmt, result, lambda: _print_trained(result, record, written, td))


def _print_trained(result: dict[str, Any], record: Any, written: dict[str, Any], td: Any) -> None:
    for e in record.events:
        detail = ", ".join(f"{k} {_r3(v)}" for k, v in e.items() if k not in ("event", "epoch"))
        console.print(f"[yellow]{e['event']}[/] at epoch {e['epoch']}: {detail}")
    test = result.get("test") or {}
    stdout.print(f"trained on {td.source}; {td.input_range().describe()}")
    stdout.print(f"robust model: {written['model']} (best epoch {record.best_epoch}, "
                 f"val clean {_r3(record.best_clean_accuracy)}, val robust {_r3(record.best_robust_accuracy)})")
    if test:
        stdout.print(f"test: clean {test['clean_accuracy']:.3f}, PGD-20 robust {test['robust_accuracy_pgd20']:.3f} "
                     f"at eps={test['eps']} on {test['samples']} samples")
    stdout.print(f"training record: {written['training_record']}")


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    keys = ("best_epoch", "best_robust_accuracy", "best_clean_accuracy", "stopped_early", "catastrophic_overfitting",
            "duration_s", "events")
    out = {k: rec[k] for k in keys}
    out["epochs_run"] = len(rec["curve"])
    out["method"] = rec["config"]["method"]
    out["eps"] = rec["config"]["eps"]
    if "extra" in rec and "test" in rec["extra"]:
        out["test"] = rec["extra"]["test"]
    return out


def _load_white_box(model: Path | None, data: Path | None, demo: str | None, label: str | None,
                    clip_min: float | None, clip_max: float | None) -> Any:
    from bastion.assess.target import build_target
    from bastion.core.errors import InvalidInputError

    target = build_target(model=model, data=data, demo=demo, label=label, clip_min=clip_min, clip_max=clip_max)
    if not target.is_white_box:
        raise InvalidInputError(f"{target.name} is not a differentiable torch model; wrappers need TorchScript/ONNX")
    return target


def _save_wrapper(wrapper: Any, out: Path, target: Any, params: dict[str, Any]) -> dict[str, str]:
    """Save a wrapper of TARGET's model (TorchScript OUT and its sidecar); their paths, as the JSON shows them."""
    from bastion.defenses.sanitizers.build import save_wrapper

    written = save_wrapper(wrapper, out, target.model.input_spec, target.model.n_classes, params,
                           target.metadata.class_names)
    return {"model": str(written["model"]), "sidecar": str(written["sidecar"])}


@harden_app.command("sanitize")
def sanitize(
    out: OutOpt,
    defense: Annotated[SanitizerName, typer.Option("--defense", help="feature-squeezing, mahalanobis or lid.")] = SanitizerName.feature_squeezing,
    model: Annotated[Path | None, typer.Option("--model", help="Model file to wrap.")] = None,
    data: DataOpt = None,
    demo: DemoOpt = None,
    label: LabelOpt = None,
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="Feature squeezing: bits kept (0 = off).")] = 1,
    median: Annotated[int, typer.Option("--median", help="Feature squeezing: median filter size (0/1 = off).")] = 2,
    fpr: Annotated[float, typer.Option("--fpr", help="Clean false-positive rate for the detection threshold.")] = 0.05,
    eps: Annotated[float | None, typer.Option("--eps", help="LID: L∞ budget of the PGD examples it is fitted on "
                                              "(default 10% of the input range).")] = None,
    clip_min: ClipMinOpt = None,
    clip_max: ClipMaxOpt = None,
    fmt: FormatOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Wrap a model in an input sanitiser/detector, calibrate its threshold on clean data, save it."""
    use_threads(threads)
    from bastion.defenses.sanitizers.build import build_sanitizer

    t = _load_white_box(model, data, demo, label, clip_min, clip_max)
    x, y = (t.data.x_train, t.data.y_train) if t.data.has_train else t.data.eval_split()
    wrapper, params = build_sanitizer(defense.value, t.model.module, t.model.input_spec, x[:2000], y[:2000],
                                      t.model.n_classes, bit_depth, median, fpr, eps=eps)
    written = _save_wrapper(wrapper, out, t, params)
    result = {**written, "defense": wrapper.bastion_defense, "params": params}
    print_result(fmt, result, f"{wrapper.bastion_defense} wrapper: {written['model']} (threshold "
                              f"{params['threshold']:.4g} at {fpr:.0%} clean FPR); assess it adaptively with: "
                              f"bastion assess --model {written['model']} ...")


@harden_app.command("smooth")
def smooth(
    out: OutOpt,
    model: Annotated[Path | None, typer.Option("--model", help="Model file to smooth.")] = None,
    data: DataOpt = None,
    demo: DemoOpt = None,
    label: LabelOpt = None,
    sigma: Annotated[float, typer.Option("--sigma", help="Gaussian noise scale (L2 certificates scale with it).")] = 0.25,
    samples: Annotated[int, typer.Option("--samples", help="Noise draws per served prediction.")] = 32,
    certify_n: Annotated[int, typer.Option("--certify", help="Certify this many test samples (0 = skip).")] = 50,
    clip_min: ClipMinOpt = None,
    clip_max: ClipMaxOpt = None,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Randomised smoothing (Cohen et al. 2019): save the smoothed classifier and report certified radii."""
    use_threads(threads)
    from bastion.defenses.sanitizers.build import build_smoothing
    from bastion.defenses.sanitizers.smoothing import certify

    t = _load_white_box(model, data, demo, label, clip_min, clip_max)
    wrapper, params = build_smoothing(t.model.module, sigma, samples)
    result: dict[str, Any] = {"defense": "randomized_smoothing", "params": params}
    if certify_n > 0:
        x, y = t.data.eval_split()
        cert = certify(wrapper, x[:certify_n], n0=32, n=256, seed=seed)
        result["certificate"] = {
            "samples": int(min(certify_n, len(x))), "n0": 32, "n": 256, "alpha": 0.001, "seed": seed,
            "certified_accuracy": {str(r): cert.certified_accuracy(y[:certify_n], r) for r in (0.0, 0.25, 0.5, 1.0)},
            "radius_mean": float(cert.radius.mean()), "abstain_rate": float((cert.prediction < 0).mean()),
        }
        params["certificate"] = result["certificate"]
    result.update(_save_wrapper(wrapper, out, t, params))
    print_result(fmt, result, lambda: _print_smoothed(result, sigma, samples))


def _print_smoothed(result: dict[str, Any], sigma: float, samples: int) -> None:
    stdout.print(f"smoothed classifier: {result['model']} (sigma={sigma}, {samples} draws per prediction)")
    if "certificate" in result:
        c = result["certificate"]
        radii = ", ".join(f"r≥{r}: {a:.2f}" for r, a in c["certified_accuracy"].items())
        stdout.print(f"certified L2 accuracy on {c['samples']} samples: {radii}; mean radius {c['radius_mean']:.3f}; "
                     f"abstained {c['abstain_rate']:.0%}")


def _r3(v: object) -> str:
    """A float to 3 decimals for text output (JSON keeps full precision); anything else as it is."""
    return f"{v:.3f}" if isinstance(v, float) else str(v)
