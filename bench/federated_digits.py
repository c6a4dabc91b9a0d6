"""Federated learning on digits (10 clients, Dirichlet(0.5)): FedAvg vs centralised accuracy over
several seeds, and one malicious client of 10 against FedAvg and robust aggregation.

Hyperparameters are never tuned on the test set. ``--select`` chooses them on a validation split
carved from the training data (20%, stratified), with partition seeds that the test runs do not
use, from the grid declared below; its choice is written into ``SELECTED`` and the default run
then measures it on the test set with the real Flower simulation (Ray backend), seeds 0–4.

    .venv/bin/python bench/federated_digits.py --select       # validation sweep (in-process replay, no Ray)
    .venv/bin/python bench/federated_digits.py                # test figures, mean ± sd over seeds
    .venv/bin/python bench/federated_digits.py --robust-only  # malicious client vs robust aggregation
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from typing import Any

import numpy as np
import torch

from bastion.attacks.poisoning import attack_success_rate
from bastion.datasets import load_demo_data
from bastion.defenses.federated import FederatedConfig, run_federated
from bastion.defenses.federated.flower_app import build_module, local_train
from bastion.defenses.federated.inprocess import run_inprocess

COMMON: dict[str, Any] = dict(arch="digits-mlp", clients=10, partition="dirichlet:0.5", timeout_s=1800)
# the previous fixed setting (30 rounds × 2 local epochs, SGD lr 0.05, plain FedAvg): kept as the reference
REFERENCE: dict[str, Any] = dict(aggregation="fedavg", rounds=30, local_epochs=2, lr=0.05)

# --select: the grid, declared before looking at any result; rounds are read off one run (no lr schedule)
GRID_AGGREGATION = ("fedavg", "fedprox", "fedavgm", "fedadam")  # server opt: Flower defaults (FedAvgM lr 1, β 0.9)
GRID_LR = (0.05, 0.1)
GRID_LOCAL_EPOCHS = (2, 5)
GRID_ROUNDS = (30, 50)
CENTRAL_LR = (0.05, 0.1)  # the centralised baseline gets its own best lr on validation (not handicapped)
VAL_SEEDS = (101, 102, 103)
VAL_FRACTION, VAL_SPLIT_SEED = 0.2, 12345
TIE_PTS = 0.4  # ≈ one validation sample (of 270): closer than this counts as a tie → cheaper config wins

# written from the output of --select (see docs/federated.md); the test set played no part
SELECTED: dict[str, dict[str, Any]] = {
    "overall": dict(aggregation="fedavgm", rounds=30, local_epochs=2, lr=0.05),
    "plain fedavg": dict(aggregation="fedavg", rounds=50, local_epochs=2, lr=0.1),
}
CENTRAL_LR_BY_BUDGET = {60: 0.1, 100: 0.1, 150: 0.1, 250: 0.1}  # epochs → lr, from --select
TEST_SEEDS = (0, 1, 2, 3, 4)


def train_centralised(x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int,
                      x_eval: np.ndarray, y_eval: np.ndarray) -> list[float]:
    """Same architecture, optimiser (SGD, momentum 0.9, batch 32) and initialisation as the clients;
    accuracy on ``(x_eval, y_eval)`` after every epoch."""
    cfg = FederatedConfig(**COMMON, lr=lr, seed=seed)
    module = build_module(cfg, tuple(x.shape[1:]), 10)
    accs = []
    for e in range(epochs):
        local_train(module, x, y, cfg, epochs=1, global_w=None, seed=seed * 7919 + e)
        with torch.no_grad():
            accs.append(float((module(torch.from_numpy(x_eval)).argmax(1).numpy() == y_eval).mean()))
    return accs


def cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (the Flower child and the Ray
    processes it waited for; a lower bound for Ray workers)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def msd(v: list[float], scale: float = 100.0) -> str:
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{scale * statistics.fmean(v):.2f} ± {scale * sd:.2f}"


def select() -> None:
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    s = load_demo_data("digits").splits
    xtr, xva, ytr, yva = train_test_split(s.x_train, s.y_train, test_size=VAL_FRACTION, random_state=VAL_SPLIT_SEED,
                                          stratify=s.y_train)
    print(f"validation sweep: {len(ytr)} train / {len(yva)} validation samples (test set unused), "
          f"partition seeds {VAL_SEEDS}; load {os.getloadavg()[0]:.2f}", flush=True)
    t0, c0 = time.perf_counter(), cpu_s()
    budgets = sorted({r * e for r in GRID_ROUNDS for e in GRID_LOCAL_EPOCHS})
    central: dict[int, tuple[float, float]] = {}  # budget → (best mean val acc, its lr)
    curves = {lr: np.array([train_centralised(xtr, ytr, max(budgets), lr, sd, xva, yva) for sd in VAL_SEEDS])
              for lr in CENTRAL_LR}
    for b in budgets:
        central[b] = max((float(curves[lr][:, b - 1].mean()), lr) for lr in CENTRAL_LR)
        print(f"  centralised {b:3d} epochs: val acc {100 * central[b][0]:.2f} (lr {central[b][1]})")
    rows = []
    for agg in GRID_AGGREGATION:
        for lr in GRID_LR:
            for ep in GRID_LOCAL_EPOCHS:
                hist = [run_inprocess(FederatedConfig(**COMMON, aggregation=agg, lr=lr, local_epochs=ep,  # type: ignore[arg-type]
                                                      rounds=max(GRID_ROUNDS), seed=sd), xtr, ytr, xva, yva)
                        for sd in VAL_SEEDS]
                for r in GRID_ROUNDS:
                    accs = [h[r]["accuracy"] for h in hist]
                    gap = 100 * (statistics.fmean(accs) - central[r * ep][0])
                    rows.append(dict(aggregation=agg, lr=lr, local_epochs=ep, rounds=r, acc=accs, gap=gap,
                                     central_lr=central[r * ep][1]))
                    print(f"  {agg:8} lr {lr:<4} local epochs {ep}  rounds {r}: val acc {msd(accs)}  "
                          f"Δ vs centralised {gap:+.2f} pts", flush=True)

    def pick(cands: list[dict[str, Any]]) -> dict[str, Any]:
        best = max(c["gap"] for c in cands)
        close = [c for c in cands if c["gap"] >= best - TIE_PTS]
        return min(close, key=lambda c: (c["rounds"] * c["local_epochs"], c["rounds"], -c["gap"]))

    for name, cands in (("overall", rows), ("plain fedavg", [r for r in rows if r["aggregation"] == "fedavg"])):
        c = pick(cands)
        print(f"selected ({name}): {c['aggregation']} lr {c['lr']} local epochs {c['local_epochs']} rounds {c['rounds']}"
              f"  (val Δ {c['gap']:+.2f} pts; centralised lr {c['central_lr']})")
    print(f"sweep: {time.perf_counter() - t0:.0f} s wall, {cpu_s() - c0:.0f} s CPU, load {os.getloadavg()[0]:.2f}")


def final(seeds: tuple[int, ...]) -> None:
    s = load_demo_data("digits").splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    print(f"test figures: {len(s.y_train)} train / {len(s.y_test)} test, seeds {seeds}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    runs = {"reference": REFERENCE, **SELECTED}
    for name, hp in runs.items():
        budget = hp["rounds"] * hp["local_epochs"]
        fl, ce, walls, cpus = [], [], [], []
        loads = []
        central_lr = CENTRAL_LR_BY_BUDGET[budget]
        for sd in seeds:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            c = train_centralised(s.x_train, s.y_train, budget, central_lr, sd, s.x_test, s.y_test)[-1]
            torch.set_num_threads(threads)
            t0, c0 = time.perf_counter(), cpu_s()
            r = run_federated(FederatedConfig(**COMMON, **hp, seed=sd), s)
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_s() - c0)
            loads.append(os.getloadavg()[0])
            fl.append(r.final["accuracy"])
            ce.append(c)
            print(f"  {name:12} seed {sd}: FL {100 * fl[-1]:.2f}  centralised {100 * c:.2f}  "
                  f"Δ {100 * (fl[-1] - c):+.2f} pts  ({walls[-1]:.0f} s wall, {cpus[-1]:.0f} s CPU)", flush=True)
        gaps = [a - b for a, b in zip(fl, ce, strict=True)]
        print(f"{name:12} {hp['aggregation']} lr {hp['lr']} {hp['rounds']} rounds × {hp['local_epochs']} local epochs: "
              f"FL {msd(fl)} %, centralised ({budget} epochs, lr {central_lr}) {msd(ce)} %, "
              f"Δ {msd(gaps)} pts (worst {100 * min(gaps):+.2f}); Flower run {statistics.fmean(walls):.0f} s wall, "
              f"{statistics.fmean(cpus):.0f} s CPU; load {min(loads):.1f}–{max(loads):.1f}", flush=True)


def robust() -> None:
    """One malicious client of 10 (boosted BadNets updates), seed 0, the reference setting."""
    d = load_demo_data("digits")
    s = d.splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    torch.manual_seed(0)
    cfg = FederatedConfig(**COMMON, **REFERENCE, seed=0)
    central = build_module(cfg, d.input_shape, 10)
    local_train(central, s.x_train, s.y_train, cfg, epochs=cfg.rounds * cfg.local_epochs, global_w=None, seed=0)
    with torch.no_grad():
        central_acc = float((central(torch.from_numpy(s.x_test)).argmax(1).numpy() == s.y_test).mean())

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return central(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy()

    print(f"centralised                          acc {central_acc:.4f}  backdoor "
          f"{attack_success_rate(predict, s.x_test, s.y_test, 0):.3f}; load {os.getloadavg()[0]:.2f}")
    for agg, mal in [("fedavg", 0), ("fedavg", 1), ("fedavgm", 1), ("median", 1), ("trimmed-mean", 1), ("krum", 1)]:
        t0, c0 = time.perf_counter(), cpu_s()
        f = run_federated(FederatedConfig(**{**COMMON, **REFERENCE, "aggregation": agg, "malicious_clients": mal}), s).final
        print(f"{agg:13} malicious={mal}  10 clients Dir(0.5)  acc {f['accuracy']:.4f} "
              f"(Δ vs central {100 * (f['accuracy'] - central_acc):+.1f} pts)  backdoor {f['backdoor_success']:.3f}  "
              f"({time.perf_counter() - t0:.0f} s wall, {cpu_s() - c0:.0f} s CPU, load {os.getloadavg()[0]:.2f})",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--select", action="store_true", help="validation sweep only")
    ap.add_argument("--robust-only", action="store_true")
    ap.add_argument("--no-robust", action="store_true")
    ap.add_argument("--seeds", default=",".join(map(str, TEST_SEEDS)))
    args = ap.parse_args()
    if args.select:
        select()
        return
    if not args.robust_only:
        final(tuple(int(x) for x in args.seeds.split(",")))
    if not args.no_robust:
        robust()


if __name__ == "__main__":
    main()
