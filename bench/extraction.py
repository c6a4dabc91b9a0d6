"""Model extraction: equation solving (softmax regression), logit-matching extraction of an MLP,
Knockoff extraction of the demo CNN, Bastion vs ART's KnockoffNets at the same budget, and what
each output policy costs honest users and buys against extraction.

Run: ``.venv/bin/python bench/extraction.py [--quick]``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from bastion.attacks.extraction import ExtractionConfig, extract_softmax_regression, run_extraction
from bastion.core.model import InputSpec
from bastion.defenses.output_policy import OutputPolicy, PolicyWrappedModel, measure_utility_cost
from bastion.models.adapters import SklearnAdapter
from bastion.models.zoo import DigitsMLP, demo_target

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
QUICK = "--quick" in sys.argv


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def softmax_regression() -> None:
    t = demo_target("digits")
    d = t.data
    assert d.x_train is not None and d.x_test is not None
    est = LogisticRegression(max_iter=1000).fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    victim = SklearnAdapter(est, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0))
    t0 = time.perf_counter()
    r = extract_softmax_regression(victim, eval_x=d.x_test)
    print(f"[1] softmax regression on digits ({est.coef_.size + est.intercept_.size} params): equation solving, "
          f"{r.queries} queries -> agreement {r.agreement:.4f} (residual {r.residual:.2e}, {time.perf_counter() - t0:.2f}s)")


def mlp_and_policies() -> None:
    t = demo_target("digits")
    d = t.data
    assert d.x_train is not None and d.x_test is not None and d.y_test is not None
    victim = t.model
    k = n_params(victim.module)  # type: ignore[attr-defined]
    budget = 2 * k if not QUICK else k // 2
    cfg = ExtractionConfig(schedule=(1000, k // 2, k, budget), epochs=30, min_steps=3000, batch_size=256, lr=2e-3)
    t0 = time.perf_counter()
    r = run_extraction(victim, d.x_test, budget, d.x_train, d.y_train, cfg, surrogate_factory=DigitsMLP)
    curve = ", ".join(f"{p.queries}: {p.fidelity:.4f}" for p in r.curve)
    print(f"[2] digits MLP victim ({k} params), logit matching, same architecture: fidelity by queries {{{curve}}} "
          f"({budget / k:.1f} queries/param, {time.perf_counter() - t0:.0f}s)")

    # ART KnockoffNets at 1000 queries (random sampling from the same attacker pool), vs Bastion at 1000
    from art.attacks.extraction import KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    art_victim = PyTorchClassifier(model=victim.module, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8),  # type: ignore[attr-defined]
                                   nb_classes=10, clip_values=(0.0, 1.0))
    thief_net = DigitsMLP()
    thief = PyTorchClassifier(model=thief_net, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                              optimizer=torch.optim.Adam(thief_net.parameters(), lr=1e-3), clip_values=(0.0, 1.0))
    t0 = time.perf_counter()
    pool = np.concatenate([d.x_test, d.x_test, d.x_test])[:1000]
    stolen = KnockoffNets(art_victim, batch_size_fit=64, batch_size_query=256, nb_epochs=30, nb_stolen=1000,
                          sampling_strategy="random", verbose=False).extract(x=pool, thieved_classifier=thief)
    art_fid = float((stolen.predict(d.x_train).argmax(1) == victim.predict_proba(d.x_train).argmax(1)).mean())
    art_s = time.perf_counter() - t0
    ours = r.fidelity_at(1000)
    print(f"[3] at 1000 queries: Bastion fidelity {ours:.4f} vs ART KnockoffNets {art_fid:.4f} ({art_s:.0f}s) "
          f"-> ratio {ours / art_fid:.2f}x")

    # output policies: utility cost for honest users vs extraction fidelity at a fixed budget
    pb = 2000
    pcfg = ExtractionConfig(schedule=(pb,), epochs=30, min_steps=2000, batch_size=256, lr=2e-3)
    print(f"[4] output policies on the digits MLP, extraction at {pb} queries (same surrogate/recipe):")
    print(f"    {'policy':36s} {'acc cost':>9s} {'L1 change':>9s} {'fidelity':>9s} {'drop':>7s}")
    base = None
    for cfg_p in ({"type": "none"}, {"type": "rounding", "decimals": 1}, {"type": "top_k", "k": 1},
                  {"type": "noise", "noise_scale": 1.0}, {"type": "prediction_poisoning", "poisoning_budget": 1.0},
                  {"type": "label_only"}):
        pol = OutputPolicy.from_config(cfg_p)
        cost = measure_utility_cost(victim, pol, d.x_test, d.y_test)
        rp = run_extraction(PolicyWrappedModel(victim, OutputPolicy.from_config(cfg_p)), d.x_test, pb, d.x_train,
                            d.y_train, pcfg, surrogate_factory=DigitsMLP)
        base = rp.fidelity if base is None else base
        l1 = "-" if cost.mean_l1_distortion is None else f"{cost.mean_l1_distortion:.3f}"
        name = ", ".join(f"{a}={b}" for a, b in cfg_p.items())
        print(f"    {name:36s} {cost.accuracy_cost * 100:8.2f}p {l1:>9s} {rp.fidelity:9.4f} {(base - rp.fidelity) * 100:6.2f}p",
              flush=True)


def cnn() -> None:
    t = demo_target("mnist")
    d = t.data
    assert d.x_train is not None and d.x_test is not None
    budget = 10000 if not QUICK else 3000
    cfg = ExtractionConfig(schedule=(1000, budget), epochs=15, batch_size=128, lr=1e-3)
    t0 = time.perf_counter()
    r = run_extraction(t.model, d.x_test, budget, d.x_train, d.y_train, cfg)
    curve = ", ".join(f"{p.queries}: fid {p.fidelity:.4f} acc {p.accuracy:.4f}" for p in r.curve)
    print(f"[5] demo MNIST CNN, attacker holds the 1000 test images (+mixup), proxy MLP surrogate: {{{curve}}} "
          f"(victim acc {r.victim_accuracy:.4f}, {time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    softmax_regression()
    mlp_and_policies()
    cnn()
