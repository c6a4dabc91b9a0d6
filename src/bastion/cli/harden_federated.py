"""``bastion harden federated``: train across simulated clients with Flower (Ray backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import harden_app
from bastion.cli.output import (
    OutputFormat,
    ThreadsOpt,
    console,
    print_fields,
    print_json,
    progress_bar,
    use_threads,
)


@harden_app.command("federated")
def federated(
    out: Annotated[Path, typer.Option("--out", help="Where to write the global model (TorchScript).")],
    model_spec: Annotated[str, typer.Option("--model-spec", help="Zoo architecture: digits-mlp, mnist-cnn, tabular-mlp.")],
    data: Annotated[Path | None, typer.Option("--data", help=".npz/CSV/Parquet with train and test splits.")] = None,
    demo: Annotated[str | None, typer.Option("--demo", help="Use a built-in data set instead of --data.")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
    clients: Annotated[int, typer.Option("--clients")] = 10,
    partition: Annotated[str, typer.Option("--partition", help="iid or dirichlet:ALPHA")] = "iid",
    rounds: Annotated[int, typer.Option("--rounds")] = 20,
    aggregation: Annotated[str, typer.Option(
        "--aggregation", help="fedavg, fedavgm, fedadam, fedprox, median, trimmed-mean, krum")] = "fedavg",
    proximal_mu: Annotated[float, typer.Option("--proximal-mu")] = 0.01,
    local_epochs: Annotated[int, typer.Option("--local-epochs")] = 2,
    lr: Annotated[float, typer.Option("--lr", help="Clients' SGD learning rate.")] = 0.05,
    lr_decay: Annotated[float, typer.Option("--lr-decay", help="Client lr × this per round.")] = 1.0,
    server_lr: Annotated[float | None, typer.Option(
        "--server-lr", help="fedavgm/fedadam server learning rate (default 1.0 / 0.01).")] = None,
    server_momentum: Annotated[float, typer.Option(
        "--server-momentum", help="fedavgm momentum / fedadam β1.")] = 0.9,
    secure_aggregation: Annotated[bool, typer.Option("--secure-aggregation", help="Flower SecAgg+ workflow.")] = False,
    dp: Annotated[str, typer.Option("--dp", help="none, central or local")] = "none",
    epsilon: Annotated[float | None, typer.Option("--epsilon")] = None,
    delta: Annotated[float, typer.Option("--delta")] = 1e-5,
    clipping_norm: Annotated[float, typer.Option("--clipping-norm")] = 1.0,
    malicious_clients: Annotated[int, typer.Option("--malicious-clients", help="Red team: backdoor clients.")] = 0,
    boost: Annotated[float, typer.Option("--boost", help="Malicious update boost factor.")] = 10.0,
    backdoor_target: Annotated[int, typer.Option("--backdoor-target")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before the run is stopped.")] = 900.0,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Federated training (FedAvg/FedProx or robust aggregation), optional SecAgg+ and DP."""
    use_threads(threads)
    import numpy as np

    from bastion.core.errors import InvalidInputError
    from bastion.defenses.federated import FederatedConfig, run_federated, save_federated_model

    if (data is None) == (demo is None):
        raise InvalidInputError("give exactly one of --data FILE or --demo NAME")
    clip: tuple[float | None, float | None] = (None, None)
    if demo is not None:
        from bastion.datasets import load_demo_data

        d = load_demo_data(demo)
        splits, clip = d.splits, (d.clip_min, d.clip_max)
    else:
        from bastion.core.domain import resolve_range
        from bastion.datasets.files import load_data

        splits = load_data(data, label=label)  # type: ignore[arg-type]
        x = splits.x_train if splits.x_train is not None else splits.x_test
        if x is not None:  # the saved model's sidecar records the range the data implies
            rng = resolve_range(data=x, image=x.ndim >= 3)
            clip = (rng.clip_min, rng.clip_max)
    cfg = FederatedConfig(
        arch=model_spec, clients=clients, rounds=rounds, partition=partition, aggregation=aggregation,  # type: ignore[arg-type]
        proximal_mu=proximal_mu, local_epochs=local_epochs, lr=lr, lr_decay=lr_decay, server_lr=server_lr,
        server_momentum=server_momentum, secure_aggregation=secure_aggregation,
        dp=dp, epsilon=epsilon, delta=delta, clipping_norm=clipping_norm,  # type: ignore[arg-type]
        malicious_clients=malicious_clients, boost=boost, backdoor_target=backdoor_target, seed=seed,
        timeout_s=timeout,
    )
    cfg.validate()
    with progress_bar(enabled=fmt != OutputFormat.json) as prog:
        task = prog.add_task(f"federated {aggregation} · {clients} clients", total=rounds)

        def on_round(row: dict[str, Any]) -> None:
            prog.update(task, completed=row["round"],
                        description=f"round {row['round']}/{rounds} acc {row['accuracy']:.3f} loss {row['loss']:.3f}")

        result = run_federated(cfg, splits, on_round=on_round)
    assert splits.x_train is not None and splits.y_train is not None
    shape = tuple(int(s) for s in np.asarray(splits.x_train).shape[1:])
    path = save_federated_model(result, out, shape, clip, int(np.max(splits.y_train) + 1))
    summary = {
        "model": str(path),
        "training_record": str(path.with_name(path.name + ".training.json")),
        "clients": clients, "rounds": rounds, "partition": partition, "aggregation": aggregation,
        "secure_aggregation": secure_aggregation,
        "accuracy": result.final.get("accuracy"), "loss": result.final.get("loss"),
        "backdoor_success": result.final.get("backdoor_success") if malicious_clients else None,
        "privacy": result.record["privacy"], "duration_s": round(result.duration_s, 1),
    }
    if fmt == OutputFormat.json:
        print_json(summary)
    else:
        print_fields(summary)
        console.print("[green]the global model is a normal Bastion model: assess, sign and serve it[/]")
