"""Membership inference: Bastion's reference-model attacks vs ART's MembershipInferenceBlackBox.

Target: an overfit MLP (784-256-256-10) trained to 100 % train accuracy on 500 MNIST members.
Non-members: the 1,000 MNIST test images. Population (attacker data for reference models):
1,000 further MNIST training images the target never saw.

ART's attack needs labelled members to train its attack model, so for the head-to-head both
attacks are evaluated on the same held-out half (250 members / 500 non-members) and ART is
fitted on the other half. Bastion's attacks are also scored on the full 500 / 1,000 split,
where TPR@0.1%FPR is resolvable. Run: ``.venv/bin/python bench/membership_vs_art.py``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.membership import MembershipConfig, run_membership
from bastion.attacks.inference.metrics import membership_metrics
from bastion.core.model import InputSpec
from bastion.datasets import load_demo_data
from bastion.models.adapters import TorchAdapter
from bastion.models.zoo import TrainConfig, train_classifier

torch.set_num_threads(1)  # a shared 2-core box: one thread is much faster than two contended
N_REF = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 32
# --subset-fraction F: share of the online reference pool (1,000 population + 1,500 candidates) each
# online reference model trains on; 0.2 = 500 records, the target's training-set size. Offline
# reference models train on 500 of the 1,000 population records (fraction 0.5).
FRAC = float(sys.argv[sys.argv.index("--subset-fraction") + 1]) if "--subset-fraction" in sys.argv else 0.2
ONLINE_ONLY = "--online-only" in sys.argv
RECIPE = TrainConfig(epochs=60, batch_size=64, lr=1e-3)
# reference models: the target's architecture and recipe
REF_EPOCHS, REF_LR = RECIPE.epochs, RECIPE.lr


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.3f}"


def main() -> None:
    d = load_demo_data("mnist").splits
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    xm, ym = d.x_train[:500], d.y_train[:500]
    xpop, ypop = d.x_train[500:1500], d.y_train[500:1500]
    xn, yn = d.x_test, d.y_test
    torch.manual_seed(0)
    net = train_classifier(mlp(), xm, ym, RECIPE, seed=0)
    target = TorchAdapter(net, InputSpec((1, 28, 28), clip_min=0.0, clip_max=1.0), 10)
    train_acc = float((target.predict_proba(xm).argmax(1) == ym).mean())
    test_acc = float((target.predict_proba(xn).argmax(1) == yn).mean())
    print(f"target: train acc {train_acc:.3f}, test acc {test_acc:.3f}, {N_REF} reference models", flush=True)

    rows: list[tuple[str, str, float, float | None, float | None, float, float]] = []
    full = {}
    ens = None
    ens_online = None
    for name, method, mode, fixed in (("loss", "loss", "offline", True), ("lira-offline", "lira", "offline", True),
                                      ("rmia-offline", "rmia", "offline", True),
                                      ("lira-online", "lira", "online", True),
                                      ("lira-online-pervar", "lira", "online", False)):
        if ONLINE_ONLY and mode == "offline":
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        cfg = MembershipConfig(method=method, n_reference=N_REF, reference_epochs=REF_EPOCHS,  # type: ignore[arg-type]
                               reference_batch_size=RECIPE.batch_size, reference_lr=REF_LR, reference_mode=mode,  # type: ignore[arg-type]
                               fixed_variance=fixed,
                               reference_subset_fraction=FRAC if mode == "online" else 0.5)
        r = run_membership(target, xm, ym, xn, yn, cfg, xpop, ypop, reference_factory=mlp,
                           reference=ens if mode == "offline" else ens_online)
        if mode == "offline":
            ens = r.reference or ens
        else:
            ens_online = r.reference or ens_online
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        print(f"{name}: {dt:.1f}s wall, {cpu:.1f}s CPU (rmia reuses the offline reference models, pervar the online ones)", flush=True)
        full[name] = r
        m = r.metrics
        rows.append((f"bastion {name}", "500/1000", m.auc, m.tpr_at_1pct_fpr, m.tpr_at_0_1pct_fpr,
                     m.empirical_epsilon_lower_bound, cpu))

    # head-to-head on the held-out half
    rng = np.random.default_rng(0)
    mi, ni = rng.permutation(500), rng.permutation(1000)
    m_fit, m_ev, n_fit, n_ev = mi[:250], mi[250:], ni[:500], ni[500:]
    for method, r in full.items():
        hm = membership_metrics(r.member_scores[m_ev], r.nonmember_scores[n_ev])
        rows.append((f"bastion {method}", "250/500 held-out", hm.auc, hm.tpr_at_1pct_fpr, None,
                     hm.empirical_epsilon_lower_bound, float("nan")))

    if ONLINE_ONLY:
        print(f"subset fraction {FRAC}")
        for name, ev, auc, t1, t01, eps, dt in rows:
            print(f"{name:28s} {ev:18s} {auc:6.3f} {fmt(t1):>7s} {fmt(t01):>9s} {eps:7.2f} {dt:7.1f}")
        return
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import PyTorchClassifier

    art_clf = PyTorchClassifier(model=net, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                clip_values=(0.0, 1.0))
    for attack_model in ("rf", "nn"):
        c0 = time.process_time()
        mia = MembershipInferenceBlackBox(art_clf, attack_model_type=attack_model, input_type="loss"
                                          if attack_model == "nn" else "prediction")
        mia.fit(xm[m_fit], ym[m_fit], xn[n_fit], yn[n_fit])
        pm = mia.infer(xm[m_ev], ym[m_ev], probabilities=True)[:, 0]
        pn = mia.infer(xn[n_ev], yn[n_ev], probabilities=True)[:, 0]
        dt = time.process_time() - c0
        hm = membership_metrics(pm, pn)
        rows.append((f"ART black-box ({attack_model})", "250/500 held-out", hm.auc, hm.tpr_at_1pct_fpr, None,
                     hm.empirical_epsilon_lower_bound, dt))

    print(f"{'attack':28s} {'eval (m/nm)':18s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@0.1%':>9s} {'eps_lb':>7s} {'time_s':>7s}")
    for name, ev, auc, t1, t01, eps, dt in rows:
        print(f"{name:28s} {ev:18s} {auc:6.3f} {fmt(t1):>7s} {fmt(t01):>9s} {eps:7.2f} {dt:7.1f}")
    best_art = max((r for r in rows if r[0].startswith("ART")), key=lambda r: r[2])
    ours = max((r for r in rows if r[0].startswith("bastion lira") and r[1].startswith("250")), key=lambda r: r[2])
    print(f"time_s = CPU seconds of the attack (reference-model training included); best Bastion LiRA = {ours[0]}")
    print(f"ratio bastion-lira / best ART: AUC {ours[2] / best_art[2]:.2f}x, "
          f"TPR@1%FPR {(ours[3] or 0) / max(best_art[3] or 0, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
