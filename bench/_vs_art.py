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

    def robust(self, x_adv: np.ndarray) -> np.ndarray:
        """Per-sample: still classified correctly at ``x_adv``."""
        with torch.inference_mode():
            return (self.ours(torch.from_numpy(x_adv)).argmax(1) == self.yt).numpy()


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


@dataclass
class Result:
    wall: float  # best samples/s, wall clock
    cpu: float  # best samples/s, process CPU time
    masks: list[np.ndarray]  # per round: which samples stayed correctly classified

    @property
    def robust(self) -> float:
        return float(np.mean(self.masks))


def interleaved(setup: Setup, runs: dict[Row, Callable[[int], np.ndarray]], rounds: int, eps: float,
                width: int = 11) -> dict[Row, Result]:
    """Run every row once per round (``fn(seed)``), check the eps-ball, print per-round lines."""
    n = len(setup.x)
    best: dict[Row, Result] = {}
    for r in range(rounds):
        for key, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            x_adv = fn(r)
            wall, cpu = time.perf_counter() - w0, max(time.process_time() - c0, 1e-9)
            mask = setup.robust(x_adv)
            rob = float(mask.mean())
            assert np.abs(x_adv - setup.x).max() <= eps + 1e-5, f"{key}: perturbation exceeds eps"
            res = best.setdefault(key, Result(0.0, 0.0, []))
            res.wall, res.cpu = max(n / wall, res.wall), max(n / cpu, res.cpu)
            res.masks.append(mask)
            print(f"round {r + 1}: {key[0]:<{width}} {key[1]:<7} {n / wall:8.1f} samples/s wall  "
                  f"{n / cpu:8.1f} samples/s cpu  robust acc {rob:.3f}", flush=True)
    return best


def verdict(ours: Result, art: Result) -> str:
    """Is Bastion's robust accuracy higher than ART's? Paired per sample and round (sign test).

    Each tool draws its own random starts, so a few borderline samples flip either way between
    runs; a one-sided sign test on the samples only one tool broke tells a weaker attack from that.
    """
    from scipy.stats import binomtest

    only_art_broke = sum(int((o & ~a).sum()) for o, a in zip(ours.masks, art.masks, strict=True))
    only_ours_broke = sum(int((a & ~o).sum()) for o, a in zip(ours.masks, art.masks, strict=True))
    if ours.robust <= art.robust + 1e-12:
        return f"no higher than ART; samples only one tool broke: bastion {only_ours_broke}, art {only_art_broke}"
    p = binomtest(only_art_broke, only_art_broke + only_ours_broke, 0.5, alternative="greater").pvalue
    word = "HIGHER than ART" if p < 0.05 else "higher, within run-to-run noise"
    return (f"{word}: samples only one tool broke: bastion {only_ours_broke}, art {only_art_broke}, "
            f"one-sided sign test p={p:.2f}")


def print_table(best: dict[Row, Result], width: int = 11) -> None:
    """The summary table and, per setting, Bastion/ART ratios and the robust-accuracy verdict."""
    print(f"{'setting':<{width}}{'tool':<9}{'samples/s (wall)':>18}{'samples/s (cpu)':>17}{'robust acc (mean)':>19}")
    for (setting, tool), r in best.items():
        print(f"{setting:<{width}}{tool:<9}{r.wall:>18.1f}{r.cpu:>17.1f}{r.robust:>19.3f}")
    for setting in dict.fromkeys(s for s, _ in best):
        ours, art = best[(setting, "bastion")], best[(setting, "art")]
        print(f"ratio bastion/art ({setting}): wall {ours.wall / art.wall:.2f}x, cpu {ours.cpu / art.cpu:.2f}x; "
              f"robust acc {ours.robust:.3f} vs {art.robust:.3f} ({verdict(ours, art)})")
