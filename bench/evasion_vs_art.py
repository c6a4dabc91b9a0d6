"""PGD-20 (L∞) throughput: Bastion vs IBM ART ``ProjectedGradientDescent`` + ``PyTorchClassifier``.

Same model (``--target mnist``: the demo CNN; ``--target fresh-cnn``: a CNN no default was tuned on,
see ``_vs_art.py``), same samples, same eps / step size / steps / random start, ``--rounds``
interleaved runs (the machine is shared; the range over rounds is printed). Two rows:

- ``equal work``: both run every sample for all 20 steps with the same thread count
  (Bastion's ``early_stop=False``); the difference is the attack loop itself.
- ``defaults``: each tool as a user gets it. Bastion: torch's default threads, early stop (a sample
  leaves the batch once fooled; its first adversarial iterate is kept), channels-last conv weights, batch 64. ART: torch's
  default thread count, ``batch_size`` as below.

Wall-clock samples/s is the headline; CPU-time samples/s (process time) is printed beside it as
the noise-resistant figure. Run: ``.venv/bin/python bench/evasion_vs_art.py [--samples 200] [--target fresh-cnn]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from _vs_art import interleaved, mnist_setup, print_table, torch_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--target", choices=("mnist", "fresh-cnn"), default="mnist")
    args = ap.parse_args()

    from art.attacks.evasion import ProjectedGradientDescent

    from bastion.attacks.evasion import PGD
    from bastion.attacks.evasion.base import default_threads

    s = mnist_setup(args.samples, args.target)
    step = 2.5 * args.eps / args.steps

    def bastion(seed: int, early_stop: bool, threads: int | None) -> np.ndarray:
        atk = PGD(args.eps, "linf", steps=args.steps, step_size=step, random_start=True, early_stop=early_stop,
                  threads=threads, batch_size=args.batch_size, seed=seed)
        return atk(s.ours, s.xt, s.yt).numpy()

    def art(seed: int, threads: int) -> np.ndarray:
        with torch_threads(threads):
            np.random.seed(seed)
            atk = ProjectedGradientDescent(s.art_classifier, norm=np.inf, eps=args.eps, eps_step=step,
                                           max_iter=args.steps, num_random_init=1, batch_size=args.batch_size,
                                           verbose=False)
            return atk.generate(s.x, y=s.y)

    equal_threads = default_threads()
    bastion(0, False, 1)  # warm-up: TorchScript profiling runs, allocator
    best = interleaved(s, {
        ("equal work", "bastion"): lambda seed: bastion(seed, False, equal_threads),
        ("equal work", "art"): lambda seed: art(seed, equal_threads),
        ("defaults", "bastion"): lambda seed: bastion(seed, True, None),
        ("defaults", "art"): lambda seed: art(seed, s.default_threads),
    }, args.rounds, args.eps)
    print(f"\nPGD-{args.steps} L∞ eps={args.eps} step={step:.4g} on the {args.target} CNN, {len(s.x)} samples, "
          f"batch {args.batch_size}; equal-work threads={equal_threads}, torch default threads={s.default_threads}")
    print_table(best)


if __name__ == "__main__":
    main()
