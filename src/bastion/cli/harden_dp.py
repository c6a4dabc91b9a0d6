"""``bastion harden dp``: train a model with DP-SGD (Opacus) and write it with its privacy statement."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import harden_app
from bastion.cli.output import OutputFormat, ThreadsOpt, console, print_json, use_threads


@harden_app.command("dp")
def harden_dp(
    model_spec: Annotated[str, typer.Option("--model-spec", help="Zoo architecture (digits-mlp, mnist-cnn, tabular-mlp, softmax-regression) or module:Class.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output TorchScript file; OUT.bastion.json and OUT.privacy.json go beside it.")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="Target ε of (ε, δ)-DP.")],
    data: Annotated[str | None, typer.Option("--data", "-d", help=".npz with x_train/y_train (x_test/y_test for accuracy), or demo:NAME.")] = None,
    delta: Annotated[float, typer.Option("--delta", help="Target δ (keep below 1/n).")] = 1e-5,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Expected batch size (Poisson sampling).")] = 512,
    max_grad_norm: Annotated[float, typer.Option("--max-grad-norm", help="Per-sample clipping norm C.")] = 1.0,
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate.")] = 2.0,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.0,
    accountant: Annotated[str, typer.Option("--accountant", help="prv or rdp.")] = "prv",
    grad_sample_mode: Annotated[str, typer.Option("--grad-sample-mode", help="ghost (default: ghost clipping, fastest, same result) | hooks | functorch | ew.")] = "ghost",
    ema_decay: Annotated[float, typer.Option("--ema-decay", help="Release an exponential moving average of the iterates (post-processing, same ε); 0 = the last iterate.")] = 0.9,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initial weights (and of sampling and noise with --reproducible-noise).")] = 0,
    reproducible_noise: Annotated[bool, typer.Option("--reproducible-noise", help="Draw Poisson sampling and noise from --seed (experiments only: whoever knows the seed can regenerate the noise). Default: fresh OS entropy each run.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Train with DP-SGD to (ε, δ) and write the model plus a privacy statement the assessment reads."""
    use_threads(threads)
    import numpy as np
    import torch

    from bastion.core.errors import ConfigError
    from bastion.defenses.dp import DPConfig, save_dp_model, train_dp
    from bastion.defenses.specs import load_training_data, resolve_model_spec

    if accountant not in ("prv", "rdp"):
        raise ConfigError(f"unknown --accountant {accountant!r}; choose prv or rdp")
    if grad_sample_mode not in ("hooks", "functorch", "ew", "ghost"):
        raise ConfigError(f"unknown --grad-sample-mode {grad_sample_mode!r}; choose hooks, functorch, ew or ghost")
    if out.exists() and not force:
        raise ConfigError(f"--out {out} exists; pass --force to overwrite")
    cfg = DPConfig(epsilon=epsilon, delta=delta, epochs=epochs, batch_size=batch_size, max_grad_norm=max_grad_norm,
                   lr=lr, momentum=momentum, accountant=accountant, grad_sample_mode=grad_sample_mode,  # type: ignore[arg-type]
                   ema_decay=ema_decay, seed=seed, seed_noise=reproducible_noise)
    ds = load_training_data(data)
    torch.manual_seed(seed)  # --seed fixes the initial weights
    module = resolve_model_spec(model_spec, ds.input_shape, ds.n_classes)
    if fmt == OutputFormat.text:
        console.print(f"DP-SGD: {model_spec} on {ds.source} ({len(ds.x_train)} records), target ε={epsilon}, δ={delta}")
    if fmt == OutputFormat.text and not reproducible_noise:
        console.print("noise and sampling: torch generators seeded from OS entropy (Opacus's secure_mode needs "
                      "torchcsprng, unavailable for this torch)")
    if reproducible_noise:
        console.print("[yellow]warning:[/yellow] --reproducible-noise: sampling and noise follow --seed; the model's "
                      "privacy holds only against someone who does not know the seed — do not release it")
    result = train_dp(module, ds.x_train, ds.y_train, cfg)
    test_acc = None
    if ds.x_test is not None and ds.y_test is not None:
        with torch.no_grad():
            pred = result.module(torch.from_numpy(np.ascontiguousarray(ds.x_test, dtype=np.float32))).argmax(1)
        test_acc = float((pred.numpy() == ds.y_test).mean())
    side: dict[str, Any] = {"model_spec": model_spec, "trained_on": ds.source, "clip_min": ds.clip_min,
                            "clip_max": ds.clip_max, "range_source": ds.range_source, "class_names": ds.class_names}
    paths = save_dp_model(result.module, out, ds.input_shape, ds.n_classes, result.statement, side)
    res = {**paths, **result.statement.to_dict(), "train_accuracy": result.train_accuracy,
           "test_accuracy": test_acc, "seconds_per_step": result.seconds_per_step,
           "duration_s": round(result.duration_s, 3)}
    if fmt == OutputFormat.json:
        print_json(res)
        return
    s = result.statement
    console.print(f"ε = {s.epsilon:.3f} (accountant {s.accountant}), δ = {s.delta:g}, noise multiplier {s.noise_multiplier:.3f}, "
                  f"clip {s.max_grad_norm}, sample rate {s.sample_rate:.4f}, {s.steps} steps")
    acc = f"train accuracy {result.train_accuracy:.3f}" + ("" if test_acc is None else f", test accuracy {test_acc:.3f}")
    console.print(acc)
    console.print(f"wrote {paths['model']}, {paths['sidecar']}, {paths['privacy_statement']}")
