"""BackdoorBench-style grid for Bastion's poisoning defence: every attack × rate × target class × seed.

For each cell: poison the training set (``bastion.attacks.poisoning``), run the detector
(``detect_poisoning``), drop what it flags and retrain (``harden poison-filter``'s library call), and
print recall and precision of the flagged set against the ground truth, whether the target class was
named suspicious, clean accuracy and attack success rate (ASR) before and after, and wall time.

The detector's thresholds were chosen in earlier sessions on BadNets patches and label flips only;
every other attack here is held out from that choice (``seen`` column).

Run: ``nice .venv/bin/python bench/poison_suite.py [--data digits|mnist] [--attacks A ...] [--rates 0.01 0.05 0.1]
[--targets 3 7] [--seeds 0 1] [--epochs 30] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

SEEN = {"badnets", "clean_label"}


def main() -> None:
    from bastion.attacks.poisoning import BACKDOORS
    from bastion.datasets import load_demo_data
    from bastion.defenses.poison_filter import poison_filter

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits", choices=["digits", "mnist"])
    ap.add_argument("--attacks", nargs="*", default=sorted(BACKDOORS))
    ap.add_argument("--rates", nargs="*", type=float, default=[0.01, 0.05, 0.1])
    ap.add_argument("--targets", nargs="*", type=int, default=[3, 7])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = load_demo_data(args.data)
    s = d.splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    x, y = np.asarray(s.x_train, np.float32), np.asarray(s.y_train)
    spec = {"digits": "digits-mlp", "mnist": "mnist-cnn"}[args.data]
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; load {os.getloadavg()}; data {args.data} "
          f"({len(y)} train / {len(s.y_test)} test); model {spec}, {args.epochs} epochs; torch threads {args.threads}")
    head = (f"{'attack':17} {'seen':4} {'rate':>5} {'tgt':>3} {'seed':>4} {'n_poi':>5} {'flag':>5} {'recall':>6} "
            f"{'prec':>5} {'cls':>3} {'acc_b':>6} {'acc_a':>6} {'asr_b':>6} {'asr_a':>6} {'s':>5}")
    print(head)
    rows = []
    for attack in args.attacks:
        for rate in args.rates:
            for target in args.targets:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    xa = x.reshape(len(x), -1) if attack == "feature_trigger" else x
                    kw = {}
                    p = BACKDOORS[attack](xa, y, target=target, rate=rate, seed=seed, **kw)
                    px = p.x.reshape(x.shape)
                    truth = {"method": p.method, "params": p.params, "poison_indices": p.indices.tolist()}
                    _, r = poison_filter(px, p.y, spec, len(d.class_names), x_test=s.x_test, y_test=s.y_test,
                                         truth=truth, epochs=args.epochs, seed=seed)
                    row = {"attack": attack, "seen": attack in SEEN, "rate": rate, "target": target, "seed": seed,
                           "n_poison": len(p.indices), "flagged": r.n_removed, "recall": r.recall,
                           "precision": r.precision, "class_found": target in r.suspicious_classes,
                           "acc_b": r.clean_accuracy_before, "acc_a": r.clean_accuracy_after, "asr_b": r.asr_before,
                           "asr_a": r.asr_after, "s": time.perf_counter() - t0}
                    rows.append(row)
                    print(f"{attack:17} {'yes' if row['seen'] else 'no':4} {rate:5.2f} {target:3d} {seed:4d} "
                          f"{row['n_poison']:5d} {row['flagged']:5d} {row['recall']:6.3f} {row['precision']:5.2f} "
                          f"{'y' if row['class_found'] else 'n':>3} {row['acc_b']:6.3f} {row['acc_a']:6.3f} "
                          f"{row['asr_b']:6.3f} {row['asr_a']:6.3f} {row['s']:5.1f}", flush=True)
    print("\nper attack and rate (mean over targets and seeds): recall / precision / ASR after / clean-accuracy change"
          " [target: recall>=0.9 & precision>=0.8 at 5-10%, >=0.7/0.7 at 1%; ASR after <= 0.05; accuracy within 1 pt]")
    for attack in args.attacks:
        cells = []
        for rate in args.rates:
            rs = [r for r in rows if r["attack"] == attack and r["rate"] == rate]
            rec = float(np.mean([r["recall"] for r in rs]))
            prec = float(np.mean([r["precision"] for r in rs]))
            asr = float(np.mean([r["asr_a"] for r in rs]))
            dacc = float(np.mean([r["acc_a"] - r["acc_b"] for r in rs]))
            need = (0.7, 0.7) if rate < 0.03 else (0.9, 0.8)
            ok = rec >= need[0] and prec >= need[1] and asr <= 0.05 and dacc >= -0.01
            cells.append(f"{rate:.0%}: {rec:.2f}/{prec:.2f}/{asr:.2f}/{dacc:+.3f} {'met' if ok else 'MISS'}")
        print(f"{attack:17} " + " | ".join(cells))
    print(f"load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
