"""Square attack (L∞) throughput: Bastion vs IBM ART ``SquareAttack`` + ``PyTorchClassifier``.

Same model (``--target mnist`` demo CNN or ``--target fresh-cnn``), same samples, eps, p_init and number of iterations, range of
``--rounds`` interleaved runs. ``equal threads`` runs both with the same thread count;
``defaults`` gives both torch's default thread count (Bastion also its early stop). Bastion
keeps each sample's current margin, so an iteration costs one query per still-robust sample; ART
re-queries the current points twice per iteration (predict + loss) besides the candidates.
Run: ``.venv/bin/python bench/square_vs_art.py [--samples 100 --iters 200 --eps 0.2]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from _vs_art import interleaved, mnist_setup, print_table, torch_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--target", choices=("mnist", "fresh-cnn"), default="mnist")
    args = ap.parse_args()

    from art.attacks.evasion import SquareAttack as ArtSquare

    from bastion.attacks.evasion import SquareAttack
    from bastion.attacks.evasion.base import default_threads

    s = mnist_setup(args.samples, args.target)

    def bastion(seed: int, threads: int | None) -> np.ndarray:
        atk = SquareAttack(args.eps, "linf", n_queries=args.iters + 1, p_init=0.8, seed=seed, threads=threads)
        return atk(s.ours, s.xt, s.yt).numpy()

    def art(seed: int, threads: int) -> np.ndarray:
        with torch_threads(threads):
            np.random.seed(seed)
            atk = ArtSquare(s.art_classifier, norm=np.inf, eps=args.eps, max_iter=args.iters, p_init=0.8,
                            nb_restarts=1, batch_size=128, verbose=False)
            return atk.generate(s.x, y=s.y)

    same = default_threads()
    w = 14
    best = interleaved(s, {
        ("equal threads", "bastion"): lambda seed: bastion(seed, same),
        ("equal threads", "art"): lambda seed: art(seed, same),
        ("defaults", "bastion"): lambda seed: bastion(seed, None),
        ("defaults", "art"): lambda seed: art(seed, s.default_threads),
    }, args.rounds, args.eps, width=w)
    print(f"\nSquare L∞ eps={args.eps}, {args.iters} iterations, p_init=0.8 on the {args.target} CNN, {len(s.x)} "
          f"samples; equal threads={same}, torch default threads={s.default_threads}")
    print_table(best, width=w)


if __name__ == "__main__":
    main()
