"""Hidden-feature detectors on MNIST: Mahalanobis (Lee et al. 2018) vs LID (Ma et al. 2018).

Run: .venv/bin/python bench/hidden_feature_detectors.py [--samples 300] [--threads 1] [--fit-eps 0.3]

Both wrap the demo CNN. Mahalanobis: class means + shared covariance of the penultimate layer on
2,000 clean training images. LID: 500 clean reference images, logistic regression over the
per-layer LIDs fitted on 500 other clean training images (clean + noisy vs PGD-10 at ``--fit-eps``).
Thresholds at 5% false positives on 1,000 further clean training images. On held-out test images,
per eps: detection AUC and detection rate against PGD-20 examples of the base model, and the
detector-aware adaptive attack's evasion rate (misclassified AND not flagged), via
``evaluate_defense`` (the same code the ``defenses.adaptive`` check runs).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from _detector_eval import timed_evaluation
from bastion.defenses.sanitizers import LIDDetector, MahalanobisDetector, calibrate_threshold
from bastion.models.zoo import demo_target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fit-eps", type=float, default=0.3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load avg at start: {os.getloadavg()}")
    t = demo_target("mnist")
    base = t.model.module  # type: ignore[attr-defined]
    d = t.data
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    c0 = time.process_time()
    maha = MahalanobisDetector.fit(base, d.x_train[:2000], d.y_train[:2000], 10)
    maha_fit = time.process_time() - c0
    c0 = time.process_time()
    lid = LIDDetector.fit(base, d.x_train[:1000], d.y_train[:1000], eps=args.fit_eps, k=20, n_reference=500,
                          n_fit=500)
    lid_fit = time.process_time() - c0
    print(f"fit CPU s: mahalanobis {maha_fit:.1f}, lid {lid_fit:.1f} (LID fitted on {lid.n_fit_clean} clean, "
          f"{lid.n_fit_adversarial} PGD examples at eps={args.fit_eps}; weights per layer {lid.weight.tolist()})")  # type: ignore[operator]
    rows = []
    for name, det in (("mahalanobis_detector", maha), ("lid_detector", lid)):
        thr = calibrate_threshold(det, d.x_train[2000:3000], fpr=0.05)
        for eps in (0.1, 0.3):
            m = timed_evaluation(det, name, d.x_test[: args.samples], d.y_test[: args.samples], eps)
            m["threshold"] = thr
            rows.append(m)
    print("\n| detector | eps | detection AUC (PGD-20 on base) | detected @5% FPR | clean flagged (test) "
          "| base PGD-20 robust | detector-aware evasion (fooled & undetected) | CPU s | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        print(f"| {m['defense']} | {m['eps']} | {m.get('detection_auc', float('nan')):.3f} "
              f"| {m.get('detection_rate', float('nan')):.3f} | {m['clean_flag_rate']:.3f} "
              f"| {m['naive_robust_accuracy']:.3f} | {m['adaptive_evasion_rate']:.3f} | {m['cpu_s']:.0f} "
              f"| {m['load']:.1f} |")


if __name__ == "__main__":
    main()
