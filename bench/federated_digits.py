"""Federated learning on digits: FedAvg vs centralised accuracy, and one malicious client of 10
against FedAvg and robust aggregation (median, trimmed mean, Krum). Hyperparameters are fixed here,
in advance, not tuned on the test set.

    .venv/bin/python bench/federated_digits.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bastion.attacks.poisoning.backdoor import attack_success_rate
from bastion.datasets import load_demo_data
from bastion.defenses.federated import FederatedConfig, run_federated
from bastion.defenses.federated.flower_app import build_module, local_train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--local-epochs", type=int, default=2)
    args = ap.parse_args()
    d = load_demo_data("digits")
    s = d.splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    base = dict(arch="digits-mlp", clients=10, rounds=args.rounds, local_epochs=args.local_epochs, lr=0.05,
                partition="dirichlet:0.5", seed=0, timeout_s=1800)

    # centralised: same architecture, optimiser and number of passes over the data
    cfg = FederatedConfig(**base)  # type: ignore[arg-type]
    torch.manual_seed(0)
    central = build_module(cfg, d.input_shape, 10)
    t0 = time.perf_counter()
    local_train(central, s.x_train, s.y_train, cfg, epochs=args.rounds * args.local_epochs, global_w=None, seed=0)
    with torch.no_grad():
        central_acc = float((central(torch.from_numpy(s.x_test)).argmax(1).numpy() == s.y_test).mean())

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return central(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy()

    central_asr = attack_success_rate(predict, s.x_test, s.y_test, 0)
    print(f"centralised                          acc {central_acc:.4f}  backdoor {central_asr:.3f}  "
          f"({time.perf_counter() - t0:.0f} s)")

    runs = [("fedavg", 0), ("fedavg", 1), ("median", 1), ("trimmed-mean", 1), ("krum", 1)]
    rows = []
    for agg, mal in runs:
        cfg = FederatedConfig(**{**base, "aggregation": agg, "malicious_clients": mal})  # type: ignore[arg-type]
        t0 = time.perf_counter()
        r = run_federated(cfg, s)
        f = r.final
        rows.append((agg, mal, f["accuracy"], f["backdoor_success"], time.perf_counter() - t0))
        print(f"{agg:13} malicious={mal}  10 clients Dir(0.5)  acc {f['accuracy']:.4f} "
              f"(Δ vs central {100 * (f['accuracy'] - central_acc):+.1f} pts)  backdoor {f['backdoor_success']:.3f}  "
              f"({rows[-1][4]:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
