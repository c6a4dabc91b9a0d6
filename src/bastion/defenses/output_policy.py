"""Output policies: what a served model reveals about its prediction.

A policy post-processes a batch of class probabilities before they leave the model. It is
used by the gateway on every predict response, by the monitor's "protective mode", and by the
privacy attacks (through ``PolicyWrappedModel``) to measure what each policy buys.

Policies (``OutputPolicyConfig.type``):

- ``none`` — the probabilities as they are.
- ``label_only`` — only the predicted label (``probabilities`` is ``None``).
- ``top_k`` — the ``k`` largest probabilities, the rest set to 0 (optionally renormalised).
- ``rounding`` — probabilities rounded to ``decimals`` decimal places (|p̃ − p| ≤ ½·10^-d).
- ``noise`` — calibrated Gaussian noise of standard deviation ``noise_scale`` on the
  log-probabilities, renormalised; the top-1 label is kept (``preserve_label``).
- ``prediction_poisoning`` — Orekondy et al., "Prediction Poisoning: Towards Defenses Against
  DNN Model Stealing Attacks" (ICLR 2020, https://arxiv.org/abs/1906.10908): each posterior is
  moved by at most ``poisoning_budget`` in L1 towards the simplex vertex that maximises the
  angular deviation of the attacker's training signal, keeping the top-1 label (MAD-argmax).
  Without a surrogate model the attacker's Jacobian is taken as the identity, so the chosen
  vertex is the least-likely class.

Labels are always the top-1 class of the *original* probabilities unless ``noise`` runs with
``preserve_label=False``. Random policies draw from a generator seeded by ``seed``.

Examples:
    >>> import numpy as np
    >>> policy = OutputPolicy.from_config({"type": "top_k", "k": 2})
    >>> out = policy.apply(np.array([[0.1, 0.6, 0.3]]))
    >>> out.labels.tolist(), out.probabilities.tolist()
    ([1], [[0.0, 0.6, 0.3]])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import InputSpec, ModelAdapter

PolicyType = Literal["none", "label_only", "top_k", "rounding", "noise", "prediction_poisoning"]
POLICY_TYPES: tuple[str, ...] = get_args(PolicyType)


@dataclass(frozen=True)
class OutputPolicyConfig:
    """Typed configuration of an output policy; unused fields are ignored by the other types."""

    type: PolicyType = "none"
    k: int = 1
    renormalize: bool = False
    decimals: int = 2
    noise_scale: float = 0.5
    preserve_label: bool = True
    poisoning_budget: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.type not in POLICY_TYPES:
            raise ConfigError(f"unknown output policy type {self.type!r}; choose one of {', '.join(POLICY_TYPES)}")
        if self.k < 1:
            raise ConfigError(f"top_k needs k >= 1, got k={self.k}")
        if not 0 <= self.decimals <= 12:
            raise ConfigError(f"rounding needs 0 <= decimals <= 12, got decimals={self.decimals}")
        if not (np.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ConfigError(f"noise needs a finite noise_scale >= 0, got {self.noise_scale}")
        if not 0 <= self.poisoning_budget <= 2:
            raise ConfigError(f"prediction_poisoning needs 0 <= poisoning_budget <= 2 (L1), got {self.poisoning_budget}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputPolicyConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown output policy field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)


@dataclass
class PolicyOutput:
    """What a policy lets out: labels always, probabilities unless the policy is label-only."""

    labels: np.ndarray
    probabilities: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels.tolist(),
            "probabilities": None if self.probabilities is None else self.probabilities.tolist(),
        }


class OutputPolicy:
    """Apply an ``OutputPolicyConfig`` to batches of probabilities (seeded where random)."""

    def __init__(self, config: OutputPolicyConfig | None = None) -> None:
        self.config = config or OutputPolicyConfig()
        self._rng = np.random.default_rng(self.config.seed)

    @classmethod
    def from_config(cls, config: OutputPolicyConfig | dict[str, Any] | None) -> OutputPolicy:
        """Build a policy from a config object or a plain dict like ``{"type": "top_k", "k": 3}``."""
        if config is None:
            return cls()
        if isinstance(config, OutputPolicyConfig):
            return cls(config)
        if not isinstance(config, dict):
            raise ConfigError(f"output policy config must be a mapping, got {type(config).__name__}")
        return cls(OutputPolicyConfig.from_dict(dict(config)))

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def reveals_probabilities(self) -> bool:
        return self.config.type != "label_only"

    def apply(self, proba: np.ndarray) -> PolicyOutput:
        """Post-process ``proba`` (shape ``(n, k)``, rows on the simplex)."""
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 1:
            raise InvalidInputError(f"probabilities must have shape (n, n_classes), got {p.shape}")
        if not np.isfinite(p).all():
            raise InvalidInputError("probabilities contain NaN or infinite values")
        labels = np.argmax(p, axis=1).astype(np.int64)
        cfg = self.config
        if cfg.type == "none":
            return PolicyOutput(labels, p.copy())
        if cfg.type == "label_only":
            return PolicyOutput(labels, None)
        if cfg.type == "top_k":
            return PolicyOutput(labels, _top_k(p, cfg.k, cfg.renormalize))
        if cfg.type == "rounding":
            return PolicyOutput(labels, np.round(p, cfg.decimals))
        if cfg.type == "noise":
            noisy = self._noise(p)
            if not cfg.preserve_label:
                labels = np.argmax(noisy, axis=1).astype(np.int64)
            return PolicyOutput(labels, noisy)
        return PolicyOutput(labels, _mad_argmax(p, cfg.poisoning_budget))

    def _noise(self, p: np.ndarray) -> np.ndarray:
        logp = np.log(np.clip(p, 1e-12, 1.0))
        z = logp + self._rng.normal(0.0, self.config.noise_scale, size=p.shape)
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        if self.config.preserve_label:
            q = _restore_argmax(q, np.argmax(p, axis=1))
        return q


def _top_k(p: np.ndarray, k: int, renormalize: bool) -> np.ndarray:
    k = min(k, p.shape[1])
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(p)
    rows = np.arange(len(p))[:, None]
    out[rows, order] = p[rows, order]
    if renormalize:
        s = out.sum(axis=1, keepdims=True)
        out = np.divide(out, s, out=np.zeros_like(out), where=s > 0)
    return out


def _restore_argmax(q: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Swap entries so that ``labels[i]`` is again the largest entry of row ``i``."""
    q = q.copy()
    rows = np.arange(len(q))
    cur = np.argmax(q, axis=1)
    bad = cur != labels
    if bad.any():
        r, a, b = rows[bad], cur[bad], labels[bad]
        tmp = q[r, a].copy()
        q[r, a] = q[r, b]
        q[r, b] = tmp
    return q


def _mad_argmax(p: np.ndarray, budget: float) -> np.ndarray:
    """MAD-argmax with identity surrogate Jacobian (Orekondy et al. 2020), L1 budget ``budget``.

    The angular deviation of ``ỹ`` from ``y`` is maximised over the simplex at a vertex; with
    identity Jacobian that is the least-likely class. ``ỹ = (1-α)·y + α·e_j`` with
    ``‖ỹ − y‖₁ = 2α(1 − y_j) ≤ budget``; ``α`` shrinks until the top-1 label is unchanged.
    """
    n, k = p.shape
    if k < 2 or budget <= 0:
        return p.copy()
    rows = np.arange(n)
    top = np.argmax(p, axis=1)
    target = np.argmin(p, axis=1)
    y_top, y_tgt = p[rows, top], p[rows, target]
    alpha = np.minimum(1.0, budget / np.maximum(2.0 * (1.0 - y_tgt), 1e-12))
    # keep argmax: (1-α)·y_top > (1-α)·y_tgt + α  ⇔  α < (y_top − y_tgt) / (1 + y_top − y_tgt)
    gap = y_top - y_tgt
    alpha_max = gap / (1.0 + gap) * 0.999
    # the runner-up must not overtake either; it only shrinks, so the bound above suffices.
    alpha = np.minimum(alpha, alpha_max)
    out = (1.0 - alpha)[:, None] * p
    out[rows, target] += alpha
    return out


class PolicyWrappedModel:
    """A ``ModelAdapter`` whose answers pass through an output policy (black-box view).

    Under ``label_only`` the probabilities are one-hot vectors of the label. Attacks run against
    this wrapper measure what the policy buys.
    """

    def __init__(self, model: ModelAdapter, policy: OutputPolicy | OutputPolicyConfig | dict[str, Any]) -> None:
        self.model = model
        self.policy = policy if isinstance(policy, OutputPolicy) else OutputPolicy.from_config(policy)

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    @property
    def input_spec(self) -> InputSpec:
        return self.model.input_spec

    def predict_output(self, x: np.ndarray) -> PolicyOutput:
        return self.policy.apply(self.model.predict_proba(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = self.predict_output(x)
        if out.probabilities is not None:
            return out.probabilities
        onehot = np.zeros((len(out.labels), self.n_classes), dtype=np.float64)
        onehot[np.arange(len(out.labels)), out.labels] = 1.0
        return onehot


@dataclass
class UtilityCost:
    """The price honest users pay for a policy, measured on labelled data."""

    policy: str
    accuracy_before: float
    accuracy_after: float
    label_agreement: float
    mean_l1_distortion: float | None
    n_samples: int

    @property
    def accuracy_cost(self) -> float:
        return self.accuracy_before - self.accuracy_after

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy_cost"] = self.accuracy_cost
        return d


def measure_utility_cost(model: ModelAdapter, policy: OutputPolicy, x: np.ndarray, y: np.ndarray) -> UtilityCost:
    """Accuracy with and without ``policy``, label agreement and mean L1 change of the probabilities."""
    p = np.concatenate([model.predict_proba(x[i : i + 512]) for i in range(0, len(x), 512)])
    out = policy.apply(p)
    base = np.argmax(p, axis=1)
    y = np.asarray(y).astype(np.int64)
    l1 = None if out.probabilities is None else float(np.abs(out.probabilities - p).sum(axis=1).mean())
    return UtilityCost(
        policy=policy.type,
        accuracy_before=float((base == y).mean()),
        accuracy_after=float((out.labels == y).mean()),
        label_agreement=float((out.labels == base).mean()),
        mean_l1_distortion=l1,
        n_samples=len(y),
    )
