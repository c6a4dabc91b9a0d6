"""Split a training set across federated clients: IID or label-skewed Dirichlet(α).

Dirichlet partitioning follows Hsu et al. 2019 ("Measuring the effects of non-identical data
distribution", https://arxiv.org/abs/1909.06335): for each class, client shares are drawn from
Dir(α·1); small α → each client sees few classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bastion.core.errors import ConfigError


@dataclass(frozen=True)
class PartitionSpec:
    kind: str  # "iid" | "dirichlet"
    alpha: float | None = None

    @classmethod
    def parse(cls, text: str) -> PartitionSpec:
        """``iid`` or ``dirichlet:ALPHA``."""
        t = text.strip().lower()
        if t == "iid":
            return cls("iid")
        if t.startswith("dirichlet:"):
            try:
                alpha = float(t.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"--partition {text!r}: ALPHA must be a number, e.g. dirichlet:0.5") from None
            if alpha <= 0:
                raise ConfigError(f"--partition {text!r}: ALPHA must be > 0")
            return cls("dirichlet", alpha)
        raise ConfigError(f"--partition {text!r}: use iid or dirichlet:ALPHA")

    def __str__(self) -> str:
        return "iid" if self.kind == "iid" else f"dirichlet:{self.alpha}"


def partition(y: np.ndarray, n_clients: int, spec: PartitionSpec, seed: int = 0, min_size: int = 10) -> list[np.ndarray]:
    """Index arrays, one per client, covering every sample exactly once."""
    if n_clients < 1:
        raise ConfigError("--clients must be at least 1")
    if n_clients * min_size > len(y):
        raise ConfigError(f"{len(y)} samples cannot give {n_clients} clients {min_size} samples each")
    rng = np.random.default_rng(seed)
    if spec.kind == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(len(y)), n_clients)]
    assert spec.alpha is not None
    classes = np.unique(y)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(n_clients, spec.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(f"could not draw a Dirichlet({spec.alpha}) partition with ≥{min_size} samples per client")
