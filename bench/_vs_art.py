"""Shared harness of the Bastion-vs-ART evasion benches (``evasion_vs_art.py``, ``square_vs_art.py``).

Both attack the ``mnist`` demo CNN (TorchScript) with the same samples: Bastion gets the loaded
module, ART a ``PyTorchClassifier`` around the same file as a user would hand it over. Rows run
interleaved for ``rounds`` rounds with a new seed per round for both tools; each row keeps its best
samples/s (wall and process CPU time) and the mean robust accuracy over rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Setup:
    x: np.ndarray
    y: np.ndarray
    xt: torch.Tensor
    yt: torch.Tensor
    ours: torch.nn.Module
    art_classifier: object
    default_threads: int

    def robust(self, x_adv: np.ndarray) -> float:
        with torch.inference_mode():
            return float((self.ours(torch.from_numpy(x_adv)).argmax(1) == self.yt).float().mean())


def mnist_setup(samples: int) -> Setup:
    from art.estimators.classification import PyTorchClassifier

    from bastion.models.zoo import demo_model_path, demo_target

    default_threads = torch.get_num_threads()
    target = demo_target("mnist")
    x_all, y_all = target.data.eval_split()
    x, y = np.ascontiguousarray(x_all[:samples]), y_all[:samples]
    art_model = torch.jit.load(str(demo_model_path("mnist")))  # as a user hands it to ART
    clf = PyTorchClassifier(art_model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                            clip_values=(0.0, 1.0))
    return Setup(x, y, torch.from_numpy(x), torch.from_numpy(y), target.model.module,  # type: ignore[attr-defined]
                 clf, default_threads)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


Row = tuple[str, str]  # (setting, tool)


def interleaved(setup: Setup, runs: dict[Row, Callable[[int], np.ndarray]], rounds: int, eps: float,
                width: int = 11) -> dict[Row, tuple[float, float, float]]:
    """Run every row once per round (``fn(seed)``), check the eps-ball, print per-round lines.

    Returns ``{row: (best samples/s wall, best samples/s cpu, mean robust accuracy)}``.
    """
    n = len(setup.x)
    best: dict[Row, tuple[float, float, float]] = {}
    robust_runs: dict[Row, list[float]] = {}
    for r in range(rounds):
        for key, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            x_adv = fn(r)
            wall, cpu = time.perf_counter() - w0, max(time.process_time() - c0, 1e-9)
            rob = setup.robust(x_adv)
            assert np.abs(x_adv - setup.x).max() <= eps + 1e-5, f"{key}: perturbation exceeds eps"
            robust_runs.setdefault(key, []).append(rob)
            old = best.get(key, (0.0, 0.0, rob))
            best[key] = (max(n / wall, old[0]), max(n / cpu, old[1]), float(np.mean(robust_runs[key])))
            print(f"round {r + 1}: {key[0]:<{width}} {key[1]:<7} {n / wall:8.1f} samples/s wall  "
                  f"{n / cpu:8.1f} samples/s cpu  robust acc {rob:.3f}", flush=True)
    return best


def print_table(best: dict[Row, tuple[float, float, float]], width: int = 11) -> None:
    """The summary table and, per setting, Bastion/ART ratios and the robust-accuracy verdict."""
    print(f"{'setting':<{width}}{'tool':<9}{'samples/s (wall)':>18}{'samples/s (cpu)':>17}{'robust acc (mean)':>19}")
    for (setting, tool), (w, c, rob) in best.items():
        print(f"{setting:<{width}}{tool:<9}{w:>18.1f}{c:>17.1f}{rob:>19.3f}")
    for setting in dict.fromkeys(s for s, _ in best):
        bw, bc, br = best[(setting, "bastion")]
        aw, ac, ar = best[(setting, "art")]
        print(f"ratio bastion/art ({setting}): wall {bw / aw:.2f}x, cpu {bc / ac:.2f}x; "
              f"robust acc {br:.3f} vs {ar:.3f} ({'no higher' if br <= ar + 1e-9 else 'HIGHER'} than ART)")
