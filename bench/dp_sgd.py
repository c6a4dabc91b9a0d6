"""DP-SGD (Opacus) on digits: accuracy at ε=1 and ε=3, the accountant's ε, MIA AUC on the DP model,
and the per-step overhead of Opacus's per-sample-gradient modes vs non-private training on the MNIST CNN.

Hyperparameters were fixed before looking at the test split (chosen on a validation split of the
training data). Run: ``.venv/bin/python bench/dp_sgd.py [--skip-overhead | --only-overhead]``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.membership import MembershipConfig, run_membership
from bastion.core.model import InputSpec
from bastion.datasets import load_demo_data
from bastion.defenses.dp import DPConfig, train_dp
from bastion.defenses.specs import resolve_model_spec
from bastion.models.adapters import TorchAdapter

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
SPEC = "softmax-regression"
FIXED = {"epochs": 40, "batch_size": 512, "lr": 2.0, "momentum": 0.0, "max_grad_norm": 1.0}


def accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def digits_table() -> None:
    d = load_demo_data("digits").splits
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    print(f"digits: {len(d.x_train)} train / {len(d.x_test)} test, model {SPEC}, fixed {FIXED}")
    print(f"{'target eps':>10s} {'eps (PRV acct)':>15s} {'sigma':>6s} {'steps':>6s} {'test acc':>9s} {'MIA AUC':>8s} {'time_s':>7s}")
    for eps in (1.0, 3.0, None):
        t0 = time.perf_counter()
        net = resolve_model_spec(SPEC, (1, 8, 8), 10)
        if eps is None:
            from bastion.models.zoo import TrainConfig, train_classifier

            train_classifier(net, d.x_train, d.y_train, TrainConfig(epochs=100, lr=1e-2), seed=0)
            stmt = None
        else:
            r = train_dp(net, d.x_train, d.y_train, DPConfig(epsilon=eps, **FIXED))  # type: ignore[arg-type]
            net, stmt = r.module, r.statement
        model = TorchAdapter(net, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0), 10)
        mia = run_membership(model, d.x_train, d.y_train, d.x_test, d.y_test, MembershipConfig("loss"))
        print(f"{'none' if eps is None else eps:>10} {'-' if stmt is None else f'{stmt.epsilon:.3f}':>15s} "
              f"{'-' if stmt is None else f'{stmt.noise_multiplier:.2f}':>6s} {'-' if stmt is None else stmt.steps:>6} "
              f"{accuracy(net, d.x_test, d.y_test):9.3f} {mia.metrics.auc:8.3f} {time.perf_counter() - t0:7.1f}",
              flush=True)


def overhead_table(steps: int = 8, batch: int = 128) -> None:
    from opacus import PrivacyEngine

    from bastion.models.zoo import MnistCNN

    x = torch.rand(batch * (steps + 2), 1, 28, 28)
    y = torch.randint(0, 10, (len(x),))
    results = {}
    for mode in ("non-private", "hooks", "functorch", "ew", "ghost"):
        torch.manual_seed(0)
        net = MnistCNN()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        crit = nn.CrossEntropyLoss()
        ds = torch.utils.data.TensorDataset(x, y)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch)
        if mode != "non-private":
            made = PrivacyEngine().make_private(module=net, optimizer=opt, criterion=crit, data_loader=loader,
                                                noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=False,
                                                grad_sample_mode=mode)
            net, opt = made[0], made[1]
            if mode == "ghost":
                crit, loader = made[2], made[3]
            else:
                loader = made[2]
        times = []
        for i, (xb, yb) in enumerate(loader):
            t0 = time.process_time()
            opt.zero_grad()
            loss = crit(net(xb), yb)
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.process_time() - t0)
            if i >= steps + 1:
                break
        results[mode] = float(np.median(times))
    base = results["non-private"]
    print(f"\nMNIST CNN per-step CPU time, batch {batch} (median of {steps} steps after 2 warm-up):")
    print(f"{'mode':>12s} {'s/step':>8s} {'overhead':>9s}")
    for mode, t in results.items():
        print(f"{mode:>12s} {t:8.4f} {t / base:8.2f}x")


if __name__ == "__main__":
    if "--only-overhead" not in sys.argv:
        digits_table()
    if "--skip-overhead" not in sys.argv:
        overhead_table()
