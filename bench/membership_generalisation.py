"""Membership inference on targets Bastion has never seen: the default ``bastion attack membership`` vs ART.

Each target is an overfit classifier trained here with its own recipe (SGD, Adam, AdamW; widths,
depths, epochs and batch sizes Bastion's defaults were not chosen on), saved as a TorchScript file
with **no sidecar**, with an ``.npz`` holding its members (``x_train``) and non-members (``x_test``)
— what a user hands over. Bastion runs the library call behind ``bastion attack membership --model M
--data D`` (``bastion.assess.checks.privacy.target_membership`` with no method: the default attack,
reference architecture, recipe fit and time budget), with ``--n-reference 32`` as the issue asks
(``--budget-only``: the number chosen by the default 180 s budget instead).

Targets are ``tuning`` (the recipe-fit grid and the planning constants were checked on them) or
``held-out`` (built and run only after those were frozen). ``--oracle`` adds LiRA whose 32
reference models copy the target's *true* architecture and recipe (the issue's yardstick: what a
perfect recipe fit would give on that target). ``--compare-methods`` adds offline LiRA and RMIA on 32
cloned references with the fitted recipe, trained on 1,000 population records (``x_pop``) the
target never saw: how the default method (online LiRA) was chosen.

ART's ``MembershipInferenceBlackBox`` (random forest on the prediction vector, and its neural
attack model on the loss) needs labelled members to fit, so the head-to-head uses a held-out half
of members and non-members (ART is fitted on the other half) and Bastion's scores are restricted
to the same half; Bastion's own figures are also given on the full split.

Run: ``nice .venv/bin/python bench/membership_generalisation.py [--only NAME ...] [--role tuning|held-out]
[--budget-only] [--oracle] [--compare-methods] [--no-art] [--threads N] [--keep DIR] [--verbose]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

N_REF = 32


@dataclass(frozen=True)
class TargetSpec:
    name: str
    role: str  # tuning | held-out
    data: str  # mnist | digits | breast-cancer
    arch: Callable[[], nn.Module]
    optimizer: str
    lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    n_members: int
    seed: int


def mlp(*widths: int) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(widths[:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-2], widths[-1]))
        return nn.Sequential(*layers)

    return make


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 5, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def digits_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 16, 128), nn.ReLU(), nn.Linear(128, 10))


TARGETS = [
    # tuning: the grid and the budget constants were checked on these
    TargetSpec("mnist-mlp-adam", "tuning", "mnist", mlp(784, 256, 256, 10), "adam", 1e-3, 0.0, 60, 64, 500, 0),
    TargetSpec("mnist-mlp-sgd", "tuning", "mnist", mlp(784, 512, 10), "sgd", 0.05, 0.0, 100, 32, 500, 1),
    TargetSpec("digits-mlp-adamw", "tuning", "digits", mlp(64, 128, 128, 10), "adamw", 3e-3, 0.05, 150, 128, 500, 2),
    # held-out: built and run only after the defaults were frozen
    TargetSpec("mnist-mlp-sgd-plain", "held-out", "mnist", mlp(784, 1024, 10), "sgd-plain", 0.1, 0.0, 200, 50, 500, 11),
    TargetSpec("mnist-cnn-adam", "held-out", "mnist", small_cnn, "adam", 5e-4, 0.0, 80, 32, 500, 12),
    TargetSpec("mnist-deep-adamw", "held-out", "mnist", mlp(784, 256, 128, 64, 10), "adamw", 1e-3, 1e-2, 120, 100, 500,
               13),
    TargetSpec("digits-cnn-sgd", "held-out", "digits", digits_cnn, "sgd", 0.02, 5e-4, 120, 16, 400, 14),
    TargetSpec("cancer-mlp-adam", "held-out", "breast-cancer", mlp(30, 256, 256, 2), "adam", 3e-3, 0.0, 400, 32, 213,
               15),
]


def optimiser(spec: TargetSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd-plain":
        return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)


def train(spec: TargetSpec, x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(spec.seed)
    net = spec.arch()
    opt = optimiser(spec, list(net.parameters()))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(spec.seed)
    net.train()
    for _ in range(spec.epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), spec.batch_size):
            idx = perm[i : i + spec.batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def split(spec: TargetSpec) -> tuple[np.ndarray, ...]:
    """(members, their labels, non-members, their labels, population, its labels): members drawn from the
    training split by the target's seed; non-members: the test split (MNIST, digits) or it plus the unused
    training records (breast cancer: no population left); population: up to 1,000 other training records
    (only the offline attacks of ``--compare-methods`` use it)."""
    from bastion.datasets import load_demo_data

    d = load_demo_data(spec.data).splits
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    perm = np.random.default_rng(spec.seed).permutation(len(d.x_train))
    mi = perm[: spec.n_members]
    xn, yn = d.x_test, d.y_test
    pi = perm[spec.n_members : spec.n_members + 1000]
    if spec.data == "breast-cancer":  # 143 test records: add the training records the target does not use
        xn, yn = np.concatenate([xn, d.x_train[pi]]), np.concatenate([yn, d.y_train[pi]])
        pi = pi[:0]
    return (d.x_train[mi].astype(np.float32), d.y_train[mi].astype(np.int64), xn.astype(np.float32),
            yn.astype(np.int64), d.x_train[pi].astype(np.float32), d.y_train[pi].astype(np.int64))


def fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.3f}"


def art_attack(model_path: Path, shape: tuple[int, ...], k: int, xm: np.ndarray, ym: np.ndarray, xn: np.ndarray,
               yn: np.ndarray, fit_m: np.ndarray, ev_m: np.ndarray, fit_n: np.ndarray, ev_n: np.ndarray,
               kind: str) -> tuple[float, float | None, float]:
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import PyTorchClassifier

    from bastion.attacks.inference.metrics import membership_metrics

    net = torch.jit.load(str(model_path))  # as a user hands the file to ART
    clf = PyTorchClassifier(model=net, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=k)
    t0 = time.perf_counter()
    mia = MembershipInferenceBlackBox(clf, attack_model_type=kind, input_type="loss" if kind == "nn" else "prediction")
    mia.fit(xm[fit_m], ym[fit_m], xn[fit_n], yn[fit_n])
    pm = mia.infer(xm[ev_m], ym[ev_m], probabilities=True)[:, 0]
    pn = mia.infer(xn[ev_n], yn[ev_n], probabilities=True)[:, 0]
    m = membership_metrics(pm, pn)
    return m.auc, m.tpr_at_1pct_fpr, time.perf_counter() - t0


def oracle_lira(spec: TargetSpec, model_path: Path, data_path: Path) -> tuple[float, float | None]:
    """LiRA whose reference models copy the target's true architecture and recipe (same scorer)."""
    from bastion.assess.checks.privacy import target_membership
    from bastion.assess.target import build_target
    from bastion.attacks.inference.membership import MembershipConfig

    # Bastion's reference optimiser has SGD with momentum 0.9 only: plain SGD at lr is run as momentum SGD at
    # lr/10, the same effective step (lr / (1 - momentum))
    plain = spec.optimizer == "sgd-plain"
    cfg = MembershipConfig(n_reference=N_REF, reference_epochs=spec.epochs, reference_lr=spec.lr / 10 if plain else spec.lr,
                           reference_optimizer="sgd" if plain else spec.optimizer,  # type: ignore[arg-type]
                           reference_weight_decay=spec.weight_decay,
                           reference_batch_size=spec.batch_size)
    target = build_target(model=model_path, data=data_path)
    r = target_membership(target, cfg, factory=spec.arch)
    return r.metrics.auc, r.metrics.tpr_at_1pct_fpr


def compare_methods(target: object, xm: np.ndarray, ym: np.ndarray, xn: np.ndarray, yn: np.ndarray, xp: np.ndarray,
                    yp: np.ndarray) -> list[tuple[str, object]]:
    """Offline LiRA (32 cloned references with the fitted recipe, on the population) and RMIA on the same
    references: the alternatives to the default online LiRA, on the same candidates."""
    from bastion.attacks.inference.membership import MembershipConfig, run_membership

    model = target.model  # type: ignore[attr-defined]
    off = run_membership(model, xm, ym, xn, yn, MembershipConfig(n_reference=N_REF, reference_mode="offline"), xp, yp)
    rmia = run_membership(model, xm, ym, xn, yn, MembershipConfig(method="rmia", n_reference=N_REF,
                                                                  reference_mode="offline"), xp, yp,
                          reference=off.reference)
    return [("lira-offline", off), ("rmia-offline", rmia)]


def run_target(spec: TargetSpec, work: Path, args: argparse.Namespace) -> dict[str, object]:
    from bastion.assess.checks.privacy import target_membership
    from bastion.assess.target import build_target
    from bastion.attacks.inference.membership import MembershipConfig
    from bastion.attacks.inference.metrics import membership_metrics

    xm, ym, xn, yn, xp, yp = split(spec)
    model_path, data_path = work / f"{spec.name}.pt", work / f"{spec.name}.npz"
    t0 = time.perf_counter()
    if model_path.exists():  # --keep DIR: reuse a target built by an earlier run
        net = torch.jit.load(str(model_path))
    else:
        net = train(spec, xm, ym)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        acc_m = float((net(torch.from_numpy(xm)).argmax(1).numpy() == ym).mean())
        acc_n = float((net(torch.from_numpy(xn)).argmax(1).numpy() == yn).mean())
    if not model_path.exists():
        torch.jit.save(torch.jit.script(net), str(model_path))  # no sidecar
    pop = {"x_pop": xp, "y_pop": yp} if len(xp) else {}
    np.savez(data_path, x_train=xm, y_train=ym, x_test=xn, y_test=yn, **pop)
    load = os.getloadavg()[0]
    print(f"\n== {spec.name} ({spec.role}): {spec.optimizer} lr {spec.lr} wd {spec.weight_decay}, {spec.epochs} epochs, "
          f"batch {spec.batch_size}; {len(xm)} members / {len(xn)} non-members; train acc {acc_m:.3f}, "
          f"non-member acc {acc_n:.3f}; trained in {train_s:.0f}s; load {load:.2f}", flush=True)

    target = build_target(model=model_path, data=data_path)  # what `bastion attack membership` does
    cfg = MembershipConfig() if args.budget_only else replace(MembershipConfig(), n_reference=N_REF)
    t0, c0 = time.perf_counter(), time.process_time()
    r = target_membership(target, cfg, auto_method=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    p = r.params
    m = r.metrics
    print(f"bastion default: {r.method} ({p.get('method_choice')}); refs {p.get('n_reference')} x "
          f"{p.get('reference_arch')} [{p.get('n_reference_source')}] {p.get('clone_unavailable', '')}")
    print(f"  recipe {p.get('reference_recipe')} ({p.get('recipe_source')})")
    fit = p.get("recipe_fit")
    if args.verbose and isinstance(fit, dict):
        print(f"  recipe search {fit['search_s']}s (truncated: {fit['truncated_by_time']}), measured "
              f"{fit['measured_model_epoch_s']}s per model-epoch; candidates:")
        for c in fit["candidates"]:
            print(f"    {c}")
    fm = p.get("fit_match", {})
    if isinstance(fm, dict) and fm:
        print(f"  fit: target gap {fm['target']['median_gap']} (IN acc {fm['target']['in_accuracy']}, OUT acc "
              f"{fm['target']['out_accuracy']}) vs references {fm['references']['median_gap']} "
              f"({fm['references']['in_accuracy']}, {fm['references']['out_accuracy']}); distance {fm['distance']}")
    print(f"  AUC {m.auc:.3f}  TPR@1%FPR {fmt(m.tpr_at_1pct_fpr)}  TPR@0.1%FPR {fmt(m.tpr_at_0_1pct_fpr)}  "
          f"wall {wall:.0f}s  CPU {cpu:.0f}s (setup {p.get('reference_setup_s')}s, training {p.get('reference_train_s')}s)",
          flush=True)
    row: dict[str, object] = {"name": spec.name, "role": spec.role, "auc": m.auc, "tpr1": m.tpr_at_1pct_fpr,
                              "tpr01": m.tpr_at_0_1pct_fpr, "wall": wall, "n_ref": p.get("n_reference"),
                              "recipe": p.get("reference_recipe"), "arch": p.get("reference_arch"), "load": load}

    rng = np.random.default_rng(0)
    mi, ni = rng.permutation(len(xm)), rng.permutation(len(xn))
    fit_m, ev_m, fit_n, ev_n = mi[: len(xm) // 2], mi[len(xm) // 2 :], ni[: len(xn) // 2], ni[len(xn) // 2 :]
    # the CLI keeps at most 2000 of each and shuffles them: map the scores back to records
    held = membership_metrics(_scores_for(r.member_scores, xm, r, target, "m")[ev_m],
                              _scores_for(r.nonmember_scores, xn, r, target, "n")[ev_n])
    row.update(held_auc=held.auc, held_tpr1=held.tpr_at_1pct_fpr)
    print(f"  held-out half ({len(ev_m)}/{len(ev_n)}): bastion AUC {held.auc:.3f} TPR@1%FPR {fmt(held.tpr_at_1pct_fpr)}")
    if not args.no_art:
        for kind in ("rf", "nn"):
            auc, tpr, secs = art_attack(model_path, target.model.input_spec.shape, target.model.n_classes, xm, ym, xn,
                                        yn, fit_m, ev_m, fit_n, ev_n, kind)
            row[f"art_{kind}_auc"], row[f"art_{kind}_tpr1"] = auc, tpr
            print(f"  ART black-box ({kind}): AUC {auc:.3f} TPR@1%FPR {fmt(tpr)} ({secs:.1f}s)", flush=True)
    if args.compare_methods and len(xp):
        for name, r2 in compare_methods(target, xm, ym, xn, yn, xp, yp):
            row[f"{name}_auc"], row[f"{name}_tpr1"] = r2.metrics.auc, r2.metrics.tpr_at_1pct_fpr
            print(f"  {name}: AUC {r2.metrics.auc:.3f} TPR@1%FPR {fmt(r2.metrics.tpr_at_1pct_fpr)} TPR@0.1%FPR "
                  f"{fmt(r2.metrics.tpr_at_0_1pct_fpr)} ({r2.duration_s:.0f}s)", flush=True)
    if args.oracle:
        auc, tpr = oracle_lira(spec, model_path, data_path)
        row.update(oracle_auc=auc, oracle_tpr1=tpr)
        print(f"  oracle LiRA (true architecture and recipe, 32 refs): AUC {auc:.3f} TPR@1%FPR {fmt(tpr)}", flush=True)
    return row


def _scores_for(scores: np.ndarray, x: np.ndarray, r: object, target: object, which: str) -> np.ndarray:
    """Scores in the order of ``x`` (membership_split permutes the records; at ≤ 2000 it keeps them all)."""
    from bastion.assess.checks.privacy import membership_split

    split = membership_split(target, 2000, needs_population=False, seed=0)  # type: ignore[arg-type]
    xs = split.x_members if which == "m" else split.x_nonmembers
    pos = {row.tobytes(): i for i, row in enumerate(np.asarray(xs, dtype=np.float32))}
    return np.array([scores[pos[row.tobytes()]] for row in np.asarray(x, dtype=np.float32)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--role", choices=["tuning", "held-out"], default=None)
    ap.add_argument("--budget-only", action="store_true", help="n from the default 180 s budget, not 32")
    ap.add_argument("--oracle", action="store_true", help="add LiRA with the true architecture and recipe")
    ap.add_argument("--no-art", action="store_true")
    ap.add_argument("--compare-methods", action="store_true", help="add offline LiRA and RMIA (32 cloned references)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    ap.add_argument("--keep", type=Path, default=None, help="keep targets in this directory (reused when present)")
    ap.add_argument("--verbose", action="store_true", help="print every recipe candidate")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [s for s in TARGETS if (args.only is None or s.name in args.only) and (args.role is None or s.role == args.role)]
    start = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{start}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load avg "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            rows.append(run_target(spec, work, args))
    print(f"\n{'target':22s} {'role':9s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@.1%':>8s} {'wall_s':>6s} {'refs':>4s} "
          f"{'held AUC':>8s} {'TPR@1%':>7s} {'ART rf':>7s} {'ART nn':>7s} {'oracle':>7s} {'load':>5s}  recipe")
    for r in rows:
        rec = r["recipe"] if isinstance(r["recipe"], dict) else {}
        recipe = f"{rec.get('optimizer')} lr {rec.get('lr')} wd {rec.get('weight_decay')} x{rec.get('epochs')}" if rec else "-"
        print(f"{r['name']:22s} {r['role']:9s} {r['auc']:6.3f} {fmt(r['tpr1']):>7s} {fmt(r['tpr01']):>8s} "  # type: ignore[arg-type]
              f"{r['wall']:6.0f} {r['n_ref']!s:>4s} {r['held_auc']:8.3f} {fmt(r['held_tpr1']):>7s} "  # type: ignore[arg-type]
              f"{fmt(r.get('art_rf_auc')):>7s} {fmt(r.get('art_nn_auc')):>7s} {fmt(r.get('oracle_auc')):>7s} "  # type: ignore[arg-type]
              f"{r['load']:5.2f}  {recipe}")
    met = [r for r in rows if r["auc"] >= 0.80 and (r["tpr1"] or 0) >= 0.15 and r["wall"] <= 180]  # type: ignore[operator]
    print(f"target AUC >= 0.80, TPR@1%FPR >= 0.15 in <= 180 s: met on {len(met)} of {len(rows)} "
          f"({', '.join(str(r['name']) for r in rows if r not in met) or 'all'} missed)")
    print(f"load avg at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
