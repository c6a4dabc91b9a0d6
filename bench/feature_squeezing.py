"""Feature squeezing on MNIST: detection AUC against PGD, and what an adaptive attacker achieves.

Run: .venv/bin/python bench/feature_squeezing.py [--samples 300] [--threads 1]

Xu et al.'s MNIST configuration (1-bit depth + 2x2 median) around the demo CNN. Prints, per eps:
detection AUC / detection rate (threshold at 5% clean FPR) against PGD-20 examples of the base
model, robust accuracy under naive PGD, BPDA-PGD and Square, and the detector-aware adaptive
attack's evasion rate (misclassified AND not flagged). Peer: ART's FeatureSqueezing +
SpatialSmoothing preprocessors — same squeeze on the same inputs, outputs compared, throughput ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _detector_eval import timed_evaluation
from bastion.defenses.sanitizers import FeatureSqueezing, calibrate_threshold
from bastion.models.zoo import demo_target


def peer_squeeze(x: np.ndarray, reps: int = 3) -> tuple[float, float, float]:
    """Squeeze throughput (samples/s) of Bastion vs ART and the max abs difference of the outputs."""
    from art.defences.preprocessor import FeatureSqueezing as ArtFS
    from art.defences.preprocessor import SpatialSmoothing

    fs = FeatureSqueezing(torch.nn.Identity(), bit_depth=1, median_kernel=2)
    art_fs, art_ss = ArtFS(clip_values=(0.0, 1.0), bit_depth=1), SpatialSmoothing(window_size=2, channels_first=True)
    xt = torch.from_numpy(x)
    best_ours = best_art = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        ours = fs.sanitize(xt).numpy()
        best_ours = min(best_ours, time.perf_counter() - t)
        t = time.perf_counter()
        theirs, _ = art_ss(art_fs(x)[0])
        best_art = min(best_art, time.perf_counter() - t)
    return len(x) / best_ours, len(x) / best_art, float(np.abs(ours - theirs).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t = demo_target("mnist")
    base = t.model.module  # type: ignore[attr-defined]
    assert t.data.x_train is not None and t.data.x_test is not None and t.data.y_test is not None
    fs = FeatureSqueezing(base, bit_depth=1, median_kernel=2)
    thr = calibrate_threshold(fs, t.data.x_train[:1000], fpr=0.05)
    print(f"threshold {thr:.4f} at 5% FPR on 1000 clean training images")
    x, y = t.data.x_test[: args.samples], t.data.y_test[: args.samples]
    rows = []
    for eps in (0.1, 0.3):
        rows.append(timed_evaluation(fs, "feature_squeezing", x, y, eps))
    print("\n| eps | det. AUC (PGD on base) | det. rate @5% FPR | base PGD-20 | naive PGD on wrapper | BPDA-PGD "
          "| Square | worst case | adaptive evasion (fooled & undetected) | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        print(f"| {m['eps']} | {m.get('detection_auc', float('nan')):.3f} | {m.get('detection_rate', float('nan')):.3f} "
              f"| {m['base_robust_accuracy']:.3f} | {m['naive_robust_accuracy']:.3f} | {m['adaptive_robust_accuracy']:.3f} "
              f"| {m['blackbox_robust_accuracy']:.3f} | {m['robust_accuracy']:.3f} | {m['adaptive_evasion_rate']:.3f} "
              f"| {m['wall_s']:.0f} |")
    ours, art, diff = peer_squeeze(t.data.x_test[:1000])
    print(f"\nsqueeze (1-bit + 2x2 median) on 1000 MNIST: Bastion {ours:.0f} samples/s, ART FeatureSqueezing+"
          f"SpatialSmoothing {art:.0f} samples/s, ratio {ours / art:.1f}x, max |diff| {diff:.3g}")


if __name__ == "__main__":
    main()
