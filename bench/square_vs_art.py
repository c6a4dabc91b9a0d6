"""Square attack (L∞) throughput: Bastion vs IBM ART ``SquareAttack`` + ``PyTorchClassifier``.

Same model (the ``mnist`` demo CNN), same samples, eps, p_init and number of iterations, best of
``--rounds`` interleaved runs. ``equal threads`` runs both with the same thread count;
``defaults`` gives ART torch's default thread count and Bastion its idle-core count. Bastion
keeps each sample's current margin, so an iteration costs one query per still-robust sample; ART
re-queries the current points twice per iteration (predict + loss) besides the candidates.
Run: ``.venv/bin/python bench/square_vs_art.py [--samples 100 --iters 200 --eps 0.2]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from art.attacks.evasion import SquareAttack as ArtSquare
    from art.estimators.classification import PyTorchClassifier

    from bastion.attacks.evasion import SquareAttack
    from bastion.attacks.evasion.base import auto_threads
    from bastion.models.zoo import demo_model_path, demo_target

    default_threads = torch.get_num_threads()
    target = demo_target("mnist")
    x_all, y_all = target.data.eval_split()
    x, y = np.ascontiguousarray(x_all[: args.samples]), y_all[: args.samples]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ours_model = target.model.module  # type: ignore[attr-defined]
    art_model = torch.jit.load(str(demo_model_path("mnist")))
    clf = PyTorchClassifier(art_model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                            clip_values=(0.0, 1.0))
    n = len(x)

    def robust(x_adv: np.ndarray) -> float:
        with torch.inference_mode():
            return float((ours_model(torch.from_numpy(x_adv)).argmax(1) == yt).float().mean())

    seed = [0]

    def bastion(threads: int | None) -> tuple[np.ndarray, int]:
        atk = SquareAttack(args.eps, "linf", n_queries=args.iters + 1, p_init=0.8, seed=seed[0], threads=threads)
        out = atk(ours_model, xt, yt).numpy()
        return out, atk.queries_used

    def art(threads: int) -> tuple[np.ndarray, int]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            np.random.seed(seed[0])
            atk = ArtSquare(clf, norm=np.inf, eps=args.eps, max_iter=args.iters, p_init=0.8, nb_restarts=1,
                            batch_size=128, verbose=False)
            return atk.generate(x, y=y), -1
        finally:
            torch.set_num_threads(before)

    same = auto_threads()
    runs: dict[tuple[str, str], Callable[[], tuple[np.ndarray, int]]] = {
        ("equal threads", "bastion"): lambda: bastion(same),
        ("equal threads", "art"): lambda: art(same),
        ("defaults", "bastion"): lambda: bastion(None),
        ("defaults", "art"): lambda: art(default_threads),
    }
    best: dict[tuple[str, str], tuple[float, float, float]] = {}
    robust_runs: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        seed[0] = r  # both tools get a new seed each round; robust accuracy is the mean over rounds
        for key, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            x_adv, queries = fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            rob = robust(x_adv)
            assert np.abs(x_adv - x).max() <= args.eps + 1e-5
            robust_runs.setdefault(key, []).append(rob)
            old = best.get(key, (0.0, 0.0, rob))
            best[key] = (max(n / wall, old[0]), max(n / max(cpu, 1e-9), old[1]), float(np.mean(robust_runs[key])))
            q = f"  queries {queries}" if queries >= 0 else ""
            print(f"round {r + 1}: {key[0]:<13} {key[1]:<7} {n / wall:8.1f} samples/s wall  "
                  f"{n / max(cpu, 1e-9):8.1f} samples/s cpu  robust acc {rob:.3f}{q}", flush=True)

    print(f"\nSquare L∞ eps={args.eps}, {args.iters} iterations, p_init=0.8 on the mnist demo CNN, {n} samples; "
          f"equal threads={same}, torch default threads={default_threads}")
    print(f"{'setting':<14}{'tool':<9}{'samples/s (wall)':>18}{'samples/s (cpu)':>17}{'robust acc (mean)':>19}")
    for (setting, tool), (w, c, rob) in best.items():
        print(f"{setting:<14}{tool:<9}{w:>18.1f}{c:>17.1f}{rob:>19.3f}")
    for setting in ("equal threads", "defaults"):
        bw, bc, br = best[(setting, "bastion")]
        aw, ac, ar = best[(setting, "art")]
        print(f"ratio bastion/art ({setting}): wall {bw / aw:.2f}x, cpu {bc / ac:.2f}x; "
              f"robust acc {br:.3f} vs {ar:.3f} ({'no higher' if br <= ar + 1e-9 else 'HIGHER'} than ART)")


if __name__ == "__main__":
    main()
