"""BackdoorBench-style grid for Bastion's poisoning defence: every attack × rate × target class × seed.

For each cell: poison the training set (``bastion.attacks.poisoning``), run Bastion's detector
(``detect_poisoning``), drop what it flags and retrain (``harden poison-filter``'s library call), and
print recall and precision of the flagged set against the ground truth, whether the target class was
named suspicious, clean accuracy and attack success rate (ASR) before and after, and wall time. In the
same run, on the same poisoned data and the same reference model, the peers: ART's
``ActivationDefence`` and ``SpectralSignatureDefense`` (image data; they need a neural classifier) and
cleanlab's ``find_label_issues`` on the same out-of-fold probabilities.

Held-out selection: the detector's weights and thresholds (``PoisonConfig``) were chosen on the
``TUNE`` attacks (BadNets, Blended, SIG); the summary reports the tuning half, the held-out half
(WaNet, label-consistent, clean-label, feature trigger) and all.

Run: ``.venv/bin/python bench/poison_suite.py --quick`` (digits, one seed, one target, 5 and 10 %, no
retraining before/after) or the full grid ``--data digits mnist --rates 0.01 0.05 0.1 --targets 3 7
--seeds 0 1 2``. ``--threads 1`` by default.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

TUNE = {"badnets", "blended", "sig"}


def _rp(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = int((flagged & truth).sum())
    return hit / max(int(truth.sum()), 1), (hit / int(flagged.sum()) if flagged.any() else 0.0)


def peers(module: torch.nn.Module | None, x: np.ndarray, y: np.ndarray, k: int, rate: float,
          seed: int) -> dict[str, np.ndarray]:
    """Flag masks of ART's activation clustering and spectral signatures, and of cleanlab."""
    from cleanlab.filter import find_label_issues

    from bastion.data.poisoning import label_quality

    out: dict[str, np.ndarray] = {}
    probs = label_quality(x, y, k, seed=seed)
    out["cleanlab"] = np.asarray(find_label_issues(y, probs), dtype=bool)
    if module is None or x.ndim < 3:
        return out
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(module, torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:], nb_classes=k,
                            clip_values=(0.0, 1.0))
    onehot = np.eye(k, dtype=np.float32)[y]
    for name, make in (("art_ac", lambda: ActivationDefence(clf, x, onehot)),
                       ("art_ss", lambda: SpectralSignatureDefense(clf, x, onehot, expected_pp_poison=max(rate, 0.01)))):
        try:
            kw: dict[str, Any] = {"nb_clusters": 2, "nb_dims": 10, "reduce": "PCA"} if name == "art_ac" else {}
            _, is_clean = make().detect_poison(**kw)
            out[name] = np.asarray(is_clean) == 0
        except Exception as exc:  # a peer that fails is recorded, not fatal
            print(f"  {name} failed: {type(exc).__name__}: {exc}")
    return out


def main() -> None:
    from bastion.attacks.poisoning import BACKDOORS
    from bastion.data.poisoning import PoisonConfig, detect_poisoning
    from bastion.datasets import load_demo_data
    from bastion.defenses.poison_filter import poison_filter

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="digits, target 3, seed 0, rates 5/10 %%, no retraining")
    ap.add_argument("--data", nargs="*", default=["digits"], choices=["digits", "mnist"])
    ap.add_argument("--attacks", nargs="*", default=sorted(BACKDOORS))
    ap.add_argument("--rates", nargs="*", type=float, default=[0.01, 0.05, 0.1])
    ap.add_argument("--targets", nargs="*", type=int, default=[3, 7])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--no-retrain", action="store_true", help="detection only (no ASR before/after)")
    ap.add_argument("--mnist-n", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.quick:
        args.data, args.rates, args.targets, args.seeds, args.no_retrain = ["digits"], [0.05, 0.1], [3], [0], True
    torch.set_num_threads(args.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; load {os.getloadavg()}; torch threads "
          f"{args.threads}; tuned on {sorted(TUNE)}")
    rows: list[dict[str, Any]] = []
    head = (f"{'data':6} {'attack':16} {'half':4} {'rate':>4} {'tgt':>3} {'sd':>2} {'n_poi':>5} {'flag':>5} "
            f"{'rec':>5} {'prec':>5} {'cls':>3} {'art_ac r/p':>10} {'art_ss r/p':>10} {'clab r/p':>10} "
            f"{'acc_b':>5} {'acc_a':>5} {'asr_b':>5} {'asr_a':>5} {'s':>5}")
    for data in args.data:
        d = load_demo_data(data)
        s = d.splits
        assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
        x, y = np.asarray(s.x_train, np.float32), np.asarray(s.y_train)
        if data == "mnist":
            x, y = x[: args.mnist_n], y[: args.mnist_n]
        k = len(d.class_names)
        spec = {"digits": "digits-mlp", "mnist": "mnist-cnn"}[data]
        print(f"\n{data}: {len(y)} train / {len(s.y_test)} test; retrain model {spec}, {args.epochs} epochs")
        print(head)
        for attack in args.attacks:
            for rate in args.rates:
                for target in args.targets:
                    for seed in args.seeds:
                        t0 = time.perf_counter()
                        xa = x.reshape(len(x), -1) if attack == "feature_trigger" else x
                        p = BACKDOORS[attack](xa, y, target=target, rate=rate, seed=seed)
                        px = p.x.reshape(x.shape) if attack != "feature_trigger" else p.x
                        truth = p.is_poisoned
                        rep = detect_poisoning(px, p.y, n_classes=k, config=PoisonConfig(seed=seed))
                        flagged = np.zeros(len(y), dtype=bool)
                        flagged[rep.flagged_indices] = True
                        rec, prec = _rp(flagged, truth)
                        peer = {n: _rp(m, truth) for n, m in peers(rep.model, px, p.y, k, rate, seed).items()}
                        row: dict[str, Any] = {"data": data, "attack": attack, "tune": attack in TUNE, "rate": rate,
                                               "target": target, "seed": seed, "n_poison": int(truth.sum()),
                                               "flagged": int(flagged.sum()), "recall": rec, "precision": prec,
                                               "class_found": target in rep.suspicious_classes, **peer,
                                               "acc_b": np.nan, "acc_a": np.nan, "asr_b": np.nan, "asr_a": np.nan}
                        if not args.no_retrain:
                            rec_truth = {"method": p.method, "params": p.params,
                                         "poison_indices": p.indices.tolist()}
                            xt = np.asarray(s.x_test, np.float32)
                            if attack == "feature_trigger":
                                xt = xt.reshape(len(xt), -1)
                            _, r = poison_filter(px, p.y, spec if attack != "feature_trigger" else "tabular-mlp", k,
                                                 x_test=xt, y_test=s.y_test, truth=rec_truth, epochs=args.epochs,
                                                 seed=seed, report=rep)
                            row.update(acc_b=r.clean_accuracy_before, acc_a=r.clean_accuracy_after,
                                       asr_b=r.asr_before, asr_a=r.asr_after)
                        row["s"] = time.perf_counter() - t0
                        rows.append(row)

                        def pr(name: str, row: dict[str, Any] = row) -> str:
                            v = row.get(name)
                            return f"{v[0]:.2f}/{v[1]:.2f}" if v else "-"

                        print(f"{data:6} {attack:16} {'tune' if row['tune'] else 'held':4} {rate:4.2f} {target:3d} "
                              f"{seed:2d} {row['n_poison']:5d} {row['flagged']:5d} {rec:5.2f} {prec:5.2f} "
                              f"{'y' if row['class_found'] else 'n':>3} {pr('art_ac'):>10} {pr('art_ss'):>10} "
                              f"{pr('cleanlab'):>10} {row['acc_b']:5.3f} {row['acc_a']:5.3f} {row['asr_b']:5.3f} "
                              f"{row['asr_a']:5.3f} {row['s']:5.1f}", flush=True)
    print("\nmean recall / precision (Bastion | ART AC | ART SS | cleanlab), ASR after, accuracy change; target "
          "recall>=0.9 & precision>=0.8 at 5-10 %, >=0.7/0.7 at 1 %, ASR after <= 0.05, accuracy within 1 pt")
    for label, sel in (("tuning half", lambda r: r["tune"]), ("held-out half", lambda r: not r["tune"]),
                       ("all", lambda r: True)):
        print(f"-- {label}")
        for key in sorted({(r["data"], r["attack"], r["rate"]) for r in rows if sel(r)}):
            rs = [r for r in rows if (r["data"], r["attack"], r["rate"]) == key]
            rec, prec = float(np.mean([r["recall"] for r in rs])), float(np.mean([r["precision"] for r in rs]))

            def mean_pair(name: str, rs: list[dict[str, Any]] = rs) -> str:
                v = [r[name] for r in rs if name in r]
                return f"{np.mean([a for a, _ in v]):.2f}/{np.mean([b for _, b in v]):.2f}" if v else "-"

            asr = float(np.mean([r["asr_a"] for r in rs]))
            dacc = float(np.mean([r["acc_a"] - r["acc_b"] for r in rs]))
            need = (0.7, 0.7) if key[2] < 0.03 else (0.9, 0.8)
            det_ok = rec >= need[0] and prec >= need[1]
            ok = det_ok and (np.isnan(asr) or (asr <= 0.05 and dacc >= -0.01))
            cls = float(np.mean([r["class_found"] for r in rs]))
            print(f"{key[0]:6} {key[1]:16} {key[2]:4.0%}  {rec:.2f}/{prec:.2f} | {mean_pair('art_ac')} | "
                  f"{mean_pair('art_ss')} | {mean_pair('cleanlab')}  class {cls:.2f}  asr_a {asr:.3f}  "
                  f"dacc {dacc:+.3f}  {'met' if ok else 'MISS'}")
    print(f"load at end {os.getloadavg()}; {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")


if __name__ == "__main__":
    main()
