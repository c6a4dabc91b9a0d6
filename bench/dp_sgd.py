"""DP-SGD (Opacus) on digits: accuracy at ε=1 and ε=3, the accountant's ε, MIA AUC on the DP model
(LOSS threshold, and online LiRA with 16 reference models of the same architecture trained
non-privately on the candidates — the strongest attack here), and the per-step overhead of Opacus's per-sample-gradient modes vs non-private training on the MNIST CNN.

Hyperparameters were fixed before looking at the test split (chosen on a validation split of the
training data). Run: ``.venv/bin/python bench/dp_sgd.py [--skip-overhead | --only-overhead] [--seeds N]
[--ema-decay D]`` (accuracy and attacks over N training seeds, default 10).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.membership import MembershipConfig, online_set_size, run_membership
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


def digits_table(seeds: int, ema_decay: float | None = 0.9) -> None:
    """Accuracy, ε and membership AUCs at ε = 1, 3 and without DP, over ``seeds`` training seeds (initial
    weights, Poisson sampling and noise all follow the seed here): mean ± sd and the worst seed."""
    d = load_demo_data("digits").splits
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    print(f"digits: {len(d.x_train)} train / {len(d.x_test)} test, model {SPEC}, fixed {FIXED}, ema_decay {ema_decay}, "
          f"{seeds} seeds; load avg (1 min) {os.getloadavg()[0]:.2f}")
    print(f"{'target eps':>10s} {'eps (PRV acct)':>15s} {'sigma':>6s} {'steps':>6s} {'test acc mean±sd':>17s} "
          f"{'worst':>6s} {'LOSS AUC':>8s} {'LiRA AUC':>8s} {'max':>6s} {'TPR@1%':>7s} {'eps_lb':>6s} {'time_s':>7s}")
    n_cand = len(d.x_train) + len(d.x_test)
    lira = MembershipConfig("lira", n_reference=16, reference_mode="online", reference_epochs=100,
                            reference_lr=1e-2, reference_set_size=online_set_size(len(d.x_train), n_cand))
    for eps in (1.0, 3.0, None):
        t0 = time.perf_counter()
        accs, loss_aucs, lira_aucs, tprs, eps_lbs = [], [], [], [], []
        stmt = None
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = resolve_model_spec(SPEC, (1, 8, 8), 10)
            if eps is None:
                from bastion.models.zoo import TrainConfig, train_classifier

                train_classifier(net, d.x_train, d.y_train, TrainConfig(epochs=100, lr=1e-2), seed=seed)
            else:
                # seed_noise: a reproducible table (the default draws sampling and noise from OS entropy; the
                # distribution is the same)
                r = train_dp(net, d.x_train, d.y_train, DPConfig(epsilon=eps, ema_decay=ema_decay, seed=seed,
                                                                 seed_noise=True, **FIXED))  # type: ignore[arg-type]
                net, stmt = r.module, r.statement
            model = TorchAdapter(net, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0), 10)
            accs.append(accuracy(net, d.x_test, d.y_test))
            loss_aucs.append(run_membership(model, d.x_train, d.y_train, d.x_test, d.y_test,
                                            MembershipConfig("loss")).metrics.auc)
            lr_ = run_membership(model, d.x_train, d.y_train, d.x_test, d.y_test, replace(lira, seed=seed),
                                 reference_factory=lambda: resolve_model_spec(SPEC, (1, 8, 8), 10)).metrics
            lira_aucs.append(lr_.auc)
            tprs.append(lr_.tpr_at_1pct_fpr or 0.0)
            eps_lbs.append(lr_.empirical_epsilon_lower_bound)
        print(f"{'none' if eps is None else eps:>10} {'-' if stmt is None else f'{stmt.epsilon:.3f}':>15s} "
              f"{'-' if stmt is None else f'{stmt.noise_multiplier:.2f}':>6s} {'-' if stmt is None else stmt.steps:>6} "
              f"{np.mean(accs):8.3f} ± {np.std(accs):.3f} {min(accs):6.3f} {np.mean(loss_aucs):8.3f} "
              f"{np.mean(lira_aucs):8.3f} {max(lira_aucs):6.3f} {np.mean(tprs):7.3f} {max(eps_lbs):6.2f} "
              f"{time.perf_counter() - t0:7.1f}", flush=True)
    print("test acc: mean ± sd and worst over the seeds; LOSS / LiRA AUC and TPR@1%FPR: means (LiRA max too); "
          "eps_lb: the largest empirical ε lower bound over the seeds (95 % Clopper-Pearson)")


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
        n_seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 10
        ema = float(sys.argv[sys.argv.index("--ema-decay") + 1]) if "--ema-decay" in sys.argv else 0.9
        digits_table(n_seeds, ema)
    if "--skip-overhead" not in sys.argv:
        overhead_table()
