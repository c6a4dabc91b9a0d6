"""The Flower side of a federated run: client, strategy and server app, run in a child process.

``run_in_child(cfg, data_path, out_dir)`` is the entry point of the child process started by
``bastion.defenses.federated.simulation``: it runs ``flwr.simulation.run_simulation`` on the
Ray backend and writes, as rounds finish, ``rounds.jsonl`` (one JSON line per round),
``weights.npz`` (latest global model) and ``failures.json`` (client failures, if any).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.poisoning import attack_success_rate, badnets
from bastion.defenses.federated.config import FederatedConfig
from bastion.defenses.federated.partition import PartitionSpec, partition


def build_module(cfg: FederatedConfig, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    from bastion.models.zoo import build_architecture

    torch.manual_seed(cfg.seed)
    return build_architecture(cfg.arch, input_shape, n_classes)


def get_weights(module: nn.Module) -> list[np.ndarray]:
    return [v.detach().cpu().numpy().copy() for v in module.state_dict().values()]


def set_weights(module: nn.Module, weights: list[np.ndarray]) -> None:
    keys = list(module.state_dict().keys())
    module.load_state_dict(OrderedDict((k, torch.from_numpy(np.asarray(w))) for k, w in zip(keys, weights, strict=True)))


def evaluate_weights(cfg: FederatedConfig, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray,
                     n_classes: int) -> tuple[nn.Module, float, float]:
    """The model with ``weights``, its accuracy and mean cross-entropy on ``(x, y)``."""
    module = build_module(cfg, tuple(int(s) for s in x.shape[1:]), n_classes)
    set_weights(module, weights)
    module.eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(x))
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(y)))
        acc = float((logits.argmax(1).numpy() == y).mean())
    return module, acc, loss


def local_train(module: nn.Module, x: np.ndarray, y: np.ndarray, cfg: FederatedConfig, epochs: int,
                global_w: list[torch.Tensor] | None, seed: int, lr: float | None = None) -> float:
    """SGD with momentum (``lr`` defaults to ``cfg.lr``); FedProx adds (μ/2)·‖w − w_global‖²."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(module.parameters(), lr=cfg.lr if lr is None else lr, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    module.train()
    loss_v = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(module(xt[idx]), yt[idx])
            if global_w is not None and cfg.aggregation == "fedprox":
                prox = sum(((p - g0) ** 2).sum() for p, g0 in zip(module.parameters(), global_w, strict=True))
                loss = loss + 0.5 * cfg.proximal_mu * prox
            loss.backward()
            opt.step()
            loss_v = float(loss.detach())
    module.eval()
    return loss_v


def _make_client(cfg: FederatedConfig, pid: int, x: np.ndarray, y: np.ndarray, input_shape: tuple[int, ...],
                 n_classes: int) -> Any:
    from flwr.client import NumPyClient

    malicious = pid < cfg.malicious_clients
    if malicious:
        p = badnets(x, y, target=cfg.backdoor_target, rate=cfg.poison_rate, seed=cfg.seed + pid)
        x, y = p.x.astype(np.float32), p.y

    class BastionClient(NumPyClient):  # type: ignore[misc]
        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
            if os.environ.get("BASTION_FL_FAIL_CLIENT") == str(pid):  # fault injection for tests
                raise RuntimeError(f"client {pid} failed (injected fault)")
            torch.set_num_threads(1)
            module = build_module(cfg, input_shape, n_classes)
            set_weights(module, parameters)
            global_w = [p.detach().clone() for p in module.parameters()]
            rnd = int(config.get("server_round", 0))
            epochs = cfg.local_epochs * (3 if malicious else 1)
            lr = cfg.lr * cfg.lr_decay ** max(rnd - 1, 0)
            loss = local_train(module, x, y, cfg, epochs, global_w, seed=cfg.seed * 1000 + pid * 31 + rnd, lr=lr)
            new = get_weights(module)
            if malicious:
                new = [g + cfg.boost * (w - g) for g, w in zip(parameters, new, strict=True)]
            return new, len(x), {"loss": loss, "malicious": int(malicious), "partition_id": pid}

    return BastionClient().to_client()


def _strategy(cfg: FederatedConfig, init: list[np.ndarray], evaluate_fn: Any, failures_path: Path) -> Any:
    from flwr.common import ndarrays_to_parameters
    from flwr.server import strategy as st

    common: dict[str, Any] = dict(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=cfg.clients, min_evaluate_clients=0,
        min_available_clients=cfg.clients, evaluate_fn=evaluate_fn, accept_failures=False,
        initial_parameters=ndarrays_to_parameters(init),
        on_fit_config_fn=lambda rnd: {"server_round": rnd},
    )
    base: type
    if cfg.aggregation == "fedavg":
        base, extra = st.FedAvg, {}
    elif cfg.aggregation == "fedavgm":
        base, extra = st.FedAvgM, {"server_learning_rate": cfg.effective_server_lr,
                                   "server_momentum": cfg.server_momentum}
    elif cfg.aggregation == "fedadam":
        base, extra = st.FedAdam, {"eta": cfg.effective_server_lr, "beta_1": cfg.server_momentum, "tau": 1e-3}
    elif cfg.aggregation == "fedprox":
        base, extra = st.FedProx, {"proximal_mu": cfg.proximal_mu}
    elif cfg.aggregation == "median":
        base, extra = st.FedMedian, {}
    elif cfg.aggregation == "trimmed-mean":
        base, extra = st.FedTrimmedAvg, {"beta": cfg.trim_beta}
    else:
        base, extra = st.Krum, {"num_malicious_clients": max(1, cfg.malicious_clients),
                                "num_clients_to_keep": 0}

    class Recording(base):  # type: ignore[misc,valid-type]
        def aggregate_fit(self, server_round: int, results: list, failures: list) -> Any:
            if failures:
                failures_path.write_text(json.dumps(
                    {"round": server_round, "failures": [_describe_failure(f) for f in failures]}))
                raise RuntimeError(f"round {server_round}: {len(failures)} client(s) failed")
            # aggregate in partition order, not completion order: floating-point sums then do not
            # depend on which Ray worker finished first, so a seed gives one model
            results = sorted(results, key=lambda r: int(r[1].metrics.get("partition_id", 0)))
            return super().aggregate_fit(server_round, results, failures)

    strategy: Any = Recording(**common, **extra)
    if cfg.dp == "central":
        from bastion.defenses.federated.privacy import central_noise_multiplier

        sigma = central_noise_multiplier(cfg)
        strategy = st.DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=sigma, clipping_norm=cfg.clipping_norm, num_sampled_clients=cfg.clients)
    return strategy


def _describe_failure(f: Any) -> str:
    if isinstance(f, BaseException):
        import re

        text = str(f)
        errors = re.findall(r"^(\w+(?:Error|Exception): .+)$", text, flags=re.M)
        return errors[0] if errors else f"{type(f).__name__}: {text.splitlines()[0] if text else ''}"
    if isinstance(f, tuple) and len(f) == 2:
        res = f[1]
        status = getattr(res, "status", None)
        return str(getattr(status, "message", res))
    return str(f)


def run_in_child(cfg_dict: dict[str, Any], data_path: str, out_dir: str) -> None:
    """Child-process entry: run the Flower simulation and write results under ``out_dir``."""
    torch.set_num_threads(1)
    from flwr.client import ClientApp
    from flwr.common import Context
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.simulation import run_simulation

    cfg = FederatedConfig(**cfg_dict)
    out = Path(out_dir)
    with np.load(data_path, allow_pickle=False) as z:
        x_train, y_train = z["x_train"], z["y_train"]
        x_test, y_test = z["x_test"], z["y_test"]
    input_shape = tuple(int(s) for s in x_train.shape[1:])
    n_classes = int(max(y_train.max(), y_test.max()) + 1)
    parts = partition(y_train, cfg.clients, PartitionSpec.parse(cfg.partition), seed=cfg.seed)
    (out / "partition.json").write_text(json.dumps({"sizes": [len(p) for p in parts],
        "classes_per_client": [len(np.unique(y_train[p])) for p in parts]}))
    init = get_weights(build_module(cfg, input_shape, n_classes))
    rounds_path = out / "rounds.jsonl"

    def evaluate_fn(server_round: int, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, dict]:
        module, acc, loss = evaluate_weights(cfg, parameters, x_test, y_test, n_classes)

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(np.asarray(x, dtype=np.float32))).argmax(1).numpy()

        asr = attack_success_rate(predict, x_test, y_test, cfg.backdoor_target)
        np.savez(out / "weights.tmp.npz", *parameters)
        os.replace(out / "weights.tmp.npz", out / "weights.npz")
        with rounds_path.open("a") as fh:
            fh.write(json.dumps({"round": server_round, "accuracy": acc, "loss": loss, "backdoor_success": asr}) + "\n")
        return loss, {"accuracy": acc, "backdoor_success": asr}

    strategy = _strategy(cfg, init, evaluate_fn, out / "failures.json")

    def client_fn(context: Context) -> Any:
        pid = int(context.node_config["partition-id"])
        idx = parts[pid]
        return _make_client(cfg, pid, x_train[idx], y_train[idx], input_shape, n_classes)

    mods: list[Any] = []
    if cfg.secure_aggregation:
        from flwr.client.mod import secaggplus_mod

        mods.append(secaggplus_mod)
    if cfg.dp == "local":
        from flwr.client.mod import LocalDpMod

        from bastion.defenses.federated.privacy import local_round_budget

        eps_r, delta_r = local_round_budget(cfg)
        mods.append(LocalDpMod(cfg.clipping_norm, cfg.clipping_norm, eps_r, delta_r))
    client_app = ClientApp(client_fn=client_fn, mods=mods)

    if cfg.secure_aggregation:
        from flwr.server import Grid, LegacyContext
        from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

        server_app = ServerApp()

        @server_app.main()
        def _main(grid: Grid, context: Context) -> None:
            legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=cfg.rounds), strategy=strategy)
            workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
                num_shares=max(3, cfg.clients - 1), reconstruction_threshold=max(2, (2 * cfg.clients) // 3),
                timeout=cfg.timeout_s))
            workflow(grid, legacy)
    else:
        def server_fn(context: Context) -> ServerAppComponents:
            return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=cfg.rounds))

        server_app = ServerApp(server_fn=server_fn)

    backend: Any = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": 2, "include_dashboard": False, "logging_level": "error"}}
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=cfg.clients,
                   backend_name="ray", backend_config=backend)
    (out / "done.json").write_text(json.dumps({"rounds": cfg.rounds}))


if __name__ == "__main__":  # python -m bastion.defenses.federated.flower_app CFG.json DATA.npz OUT_DIR
    import sys

    run_in_child(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], sys.argv[3])
