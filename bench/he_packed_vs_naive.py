"""Encrypted inference: Bastion's packed CKKS vs the naive one-sample-per-ciphertext TenSEAL approach.

Same model, same samples, same run. Prints per-sample latency (encrypt + evaluate + decrypt),
throughput ratio, class agreement with plaintext and ciphertext bytes per sample.

    .venv/bin/python bench/he_packed_vs_naive.py [--naive-samples 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bastion.datasets import load_demo_data
from bastion.defenses.encrypted import HEModel, ckks, he_mlp
from bastion.defenses.encrypted.naive import naive_logits
from bastion.models.zoo import TrainConfig, train_classifier


def packed(he: HEModel, x: np.ndarray) -> tuple[np.ndarray, float, int]:
    ctx = ckks.make_context(he.params)
    t0 = time.perf_counter()
    enc = ckks.encrypt_batch(ctx, x, he.n_features, he.params.slots)
    out = ckks.evaluate(he, enc)
    logits = ckks.decrypt_outputs(ctx, out)
    dt = time.perf_counter() - t0
    return logits, dt, ckks.ciphertext_bytes(enc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--naive-samples", type=int, default=20)
    args = ap.parse_args()
    d = load_demo_data("digits")
    s = d.splits
    torch.manual_seed(0)
    models = {
        "logreg 64→10": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
        "mlp 64→32→x²→10": he_mlp(64, 10, 32),
    }
    print(f"{'model':18} {'mode':8} {'samples':>7} {'ms/sample':>10} {'agree':>7} {'KB/sample':>10}")
    for name, mod in models.items():
        train_classifier(mod, s.x_train, s.y_train, TrainConfig(epochs=60, lr=3e-3))
        he = HEModel.from_torch(mod, d.input_shape)
        x_full = np.asarray(s.x_test, dtype=np.float64)
        plain = he.plaintext_logits(x_full).argmax(1)
        # packed: the real test set (450) and a full ciphertext's worth of samples (slots)
        reps = int(np.ceil(he.params.slots / len(x_full)))
        x_fill = np.tile(x_full, (reps, 1, 1, 1))[: he.params.slots]
        results = {}
        for label, x in (("packed", x_full), ("packed*", x_fill)):
            logits, dt, nbytes = packed(he, x)
            ref = he.plaintext_logits(x).argmax(1)
            agree = float((logits.argmax(1) == ref).mean())
            results[label] = dt / len(x)
            print(f"{name:18} {label:8} {len(x):7d} {1000 * dt / len(x):10.3f} {agree:7.4f} {nbytes / len(x) / 1024:10.1f}")
        ctx = ckks.make_context(he.params, galois=True)
        n = args.naive_samples
        t0 = time.perf_counter()
        nl, size = naive_logits(ctx, he, x_full[:n])
        dt = time.perf_counter() - t0
        agree = float((nl.argmax(1) == plain[:n]).mean())
        print(f"{name:18} {'naive':8} {n:7d} {1000 * dt / n:10.3f} {agree:7.4f} {size / 1024:10.1f}")
        print(f"{name:18} throughput ratio packed/naive: {(dt / n) / results['packed']:.0f}× (450 samples), "
              f"{(dt / n) / results['packed*']:.0f}× (full ciphertext of {he.params.slots}); "
              f"CKKS {he.params.poly_modulus_degree}, {list(he.params.coeff_mod_bit_sizes)}")


if __name__ == "__main__":
    main()
