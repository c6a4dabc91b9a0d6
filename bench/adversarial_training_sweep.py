"""Recipe sweep for MNIST adversarial training at eps=0.3, measured in epochs (any device).

The 15-minute target is about the 2-core CPU, but which recipe reaches the most robust accuracy
per epoch does not depend on the hardware: this script trains many recipes with the real trainer
(``bastion.defenses.adversarial.adversarial_train``) in parallel processes (a GPU when there is one)
and evaluates each on the 1,000 held-out test images with the evasion engineer's attacks (fp32):
PGD-20, PGD-50 x 2 restarts, and the ``thorough`` ensemble (APGD-CE-100 + APGD-DLR-100 + Square-1000).
The chosen recipe is then re-run once on the CPU by ``bench/adversarial_training.py`` for the
timed figures. Data: ``--data`` npz with xtr/ytr/xte/yte (uint8 images), so the sweep needs only
numpy and torch (export it with ``--export``).

Run: python bench/adversarial_training_sweep.py --export build/h6/mnist.npz   (here, once)
     PYTHONPATH=src python bench/adversarial_training_sweep.py --data build/h6/mnist.npz --out DIR [--only NAME,...]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# name: (arch, overrides of AdversarialTrainingConfig); ordered by priority
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "small-pgd5-e60": ("mnist-cnn", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8}),
    "small-pgd5-e60-sh2": ("mnist-cnn", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8, "augment_shift": 2}),
    "small-pgd5-e120-sh2": ("mnist-cnn", {"epochs": 120, "train_steps": 5, "eps_ramp_epochs": 15, "augment_shift": 2}),
    "small-pgd5-e60-sh2-bf16": ("mnist-cnn", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8, "augment_shift": 2,
                                              "bf16": "attack"}),
    "wide-pgd5-e40-sh2": ("mnist-cnn-wide", {"epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6, "augment_shift": 2}),
    "wide-pgd5-e60-sh2": ("mnist-cnn-wide", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8, "augment_shift": 2}),
    "deep-pgd5-e30-sh2": ("mnist-cnn-deep", {"epochs": 30, "train_steps": 5, "eps_ramp_epochs": 5, "augment_shift": 2}),
    "small-trades5-e60-sh2": ("mnist-cnn", {"method": "trades", "epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8,
                                            "augment_shift": 2}),
    "wide-trades5-e40-sh2": ("mnist-cnn-wide", {"method": "trades", "epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6,
                                                "augment_shift": 2}),
    "small-pgd3-e100-sh2": ("mnist-cnn", {"epochs": 100, "train_steps": 3, "eps_ramp_epochs": 12, "augment_shift": 2}),
    "small-pgd10-e40-sh2": ("mnist-cnn", {"epochs": 40, "train_steps": 10, "eps_ramp_epochs": 6, "augment_shift": 2}),
    "small-pgd5-e60-sh2-1cyc": ("mnist-cnn", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8, "augment_shift": 2,
                                              "lr_schedule": "onecycle", "lr": 3e-3}),
    "wide-pgd5-e40-sh2-1cyc": ("mnist-cnn-wide", {"epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6, "augment_shift": 2,
                                                  "lr_schedule": "onecycle", "lr": 3e-3}),
    "small-pgd5-e60-sh2-b64": ("mnist-cnn", {"epochs": 60, "train_steps": 5, "eps_ramp_epochs": 8, "augment_shift": 2,
                                             "batch_size": 64}),
    "wide-pgd5-e40-sh2-bf16all": ("mnist-cnn-wide", {"epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6,
                                                     "augment_shift": 2, "bf16": "all"}),
    "wide-pgd5-e80-sh2": ("mnist-cnn-wide", {"epochs": 80, "train_steps": 5, "eps_ramp_epochs": 10, "augment_shift": 2}),
    "deep-pgd5-e50-sh2": ("mnist-cnn-deep", {"epochs": 50, "train_steps": 5, "eps_ramp_epochs": 6, "augment_shift": 2}),
    "wide-pgd5-e40": ("mnist-cnn-wide", {"epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6}),
    "wide-pgd5-e40-sh1": ("mnist-cnn-wide", {"epochs": 40, "train_steps": 5, "eps_ramp_epochs": 6, "augment_shift": 1}),
    "small-pgd5-e200-sh2": ("mnist-cnn", {"epochs": 200, "train_steps": 5, "eps_ramp_epochs": 20, "augment_shift": 2}),
    "smoke": ("mnist-cnn", {"epochs": 1, "train_steps": 2, "val_samples": 50}),
}


def evaluate(module: Any, x: Any, y: Any, eps: float, thorough: bool = True) -> dict[str, float]:
    """fp32 test accuracies under the evasion engineer's attacks; per-sample worst cases."""
    import torch

    from bastion.attacks.evasion import APGD, PGD, SquareAttack

    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)

    def ok(xa: Any) -> Any:
        with torch.no_grad():
            return module(xa).argmax(1) == y

    t = time.perf_counter()
    clean = ok(x)
    out: dict[str, float] = {"clean": float(clean.float().mean())}
    ok20 = ok(PGD(eps=eps, steps=20, seed=0)(module, x, y)) & clean
    out["pgd20"] = float(ok20.float().mean())
    ok50 = ok(PGD(eps=eps, steps=50, restarts=2, seed=1)(module, x, y)) & clean
    out["pgd50x2"] = float(ok50.float().mean())
    if thorough:
        robust = clean.clone()
        for name, atk in (("apgd_ce", APGD(eps=eps, loss="ce", steps=100, seed=2)),
                          ("apgd_dlr", APGD(eps=eps, loss="dlr", steps=100, seed=3)),
                          ("square", SquareAttack(eps=eps, n_queries=1000, seed=4))):
            idx = robust.nonzero().squeeze(1)
            if idx.numel():
                # Square draws its noise on the CPU: run it there (black-box, forward passes only)
                m = copy.deepcopy(module).cpu() if name == "square" else module
                xs, ys = (x[idx].cpu(), y[idx].cpu()) if name == "square" else (x[idx], y[idx])
                still = ok_sub(m, atk(m, xs, ys), ys).to(robust.device)
                robust[idx[~still]] = False
            out[f"thorough_after_{name}"] = float(robust.float().mean())
        out["thorough"] = float(robust.float().mean())
    out["eval_s"] = time.perf_counter() - t
    return out


def ok_sub(module: Any, xa: Any, y: Any) -> Any:
    import torch

    with torch.no_grad():
        return module(xa).argmax(1) == y


def run_one(name: str, data: str, out: str, device: str) -> None:
    import torch

    from bastion.defenses.adversarial import AdversarialTrainingConfig, adversarial_train
    from bastion.models.zoo import build_architecture

    torch.set_num_threads(1)
    arch, over = RECIPES[name]
    d = np.load(data)
    xtr, ytr = d["xtr"].astype(np.float32) / 255.0, d["ytr"].astype(np.int64)
    xte, yte = d["xte"].astype(np.float32) / 255.0, d["yte"].astype(np.int64)
    base = {"method": "pgd", "eps": 0.3, "batch_size": 128, "lr": 1e-3, "val_samples": 300, "val_steps": 10, "seed": 0}
    cfg = AdversarialTrainingConfig(**{**base, **over})
    torch.manual_seed(cfg.seed)
    net = build_architecture(arch, (1, 28, 28), 10)
    t = time.perf_counter()
    net, rec = adversarial_train(net, xtr, ytr, cfg, architecture=arch, device=device)
    train_s = time.perf_counter() - t
    xt, yt = torch.from_numpy(xte).to(device), torch.from_numpy(yte).to(device)
    res = evaluate(net, xt, yt, cfg.eps)
    curve = [(e.epoch, round(e.eps_train, 3), round(e.clean_accuracy, 3), round(e.robust_accuracy, 3)) for e in rec.epochs]
    doc = {"name": name, "arch": arch, "config": cfg.to_dict(), "device": device, "train_s": train_s,
           "best_epoch": rec.best_epoch, "best_val_robust": rec.best_robust_accuracy, "test": res, "curve": curve,
           "params": sum(p.numel() for p in net.parameters())}
    Path(out, f"{name}.json").write_text(json.dumps(doc))
    print(f"{name}: train {train_s:.0f}s best ep {rec.best_epoch} val {rec.best_robust_accuracy} test {res}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="build/h6/mnist.npz")
    ap.add_argument("--out", default="/tmp/bastion-sweep")
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--export", default="")
    args = ap.parse_args()
    if args.export:
        from bastion.datasets import load_demo_data

        s = load_demo_data("mnist").splits
        assert s.x_train is not None and s.x_test is not None
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.export, xtr=(s.x_train * 255).round().astype(np.uint8), ytr=s.y_train,
                            xte=(s.x_test * 255).round().astype(np.uint8), yte=s.y_test)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or [n for n in RECIPES if n != "smoke"]
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        for _ in pool.starmap(run_one, [(n, args.data, args.out, args.device) for n in names]):
            pass
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
