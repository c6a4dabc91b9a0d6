"""Model fingerprints without retraining: conferrable adversarial examples.

Lukas, Zhang and Kerschbaum, "Deep Neural Network Fingerprinting by Conferrable Adversarial Examples",
ICLR 2021 (https://arxiv.org/abs/1912.00888). A *conferrable* adversarial example carries the source
model's (wrong) label over to the models derived from it — surrogates made by extraction, fine-tuning or
pruning — but not to models trained independently on the same task. We train a few surrogates (copies
distilled on the source's answers, as ``bastion attack extraction`` does, and one fine-tuned from the
source) and a few independent references, then optimise perturbations of real inputs so that the
surrogates (and the source) move to a target class while the references stay away
(loss ``−log p̄_sur(t) − log(1 − p̄_ref(t)) [+ CE(source, t)]``), under an L∞ bound. The ``n`` inputs with
the highest conferrability ``p̄_sur(ℓ)·(1 − max p_ref(ℓ))`` for the source's label ``ℓ`` form the fingerprint.

Verification queries a suspect on (up to ``query_budget`` of) the fingerprint inputs and counts how many
it labels as the source did. The null is *measured*: ``n_null`` further independent models — never used
in the optimisation — are scored at creation, and the suspect's count is tested against a beta-binomial
fitted to their match rates (the between-model spread is part of the null, unlike a plain binomial).

Examples:
    >>> from bastion.models.zoo import demo_target                     # doctest: +SKIP
    >>> t = demo_target("digits")                                      # doctest: +SKIP
    >>> fp = create_fingerprint(t.model, t.data.x_train, t.data.y_train, x_seed=t.data.x_test)  # doctest: +SKIP
    >>> verify_fingerprint(fp, t.model).derived                        # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError, QueryBudgetExceeded
from bastion.core.inputfile import parse_json, read_input_file
from bastion.core.model import ModelAdapter
from bastion.core.paths import atomic_write_text
from bastion.defenses.ownership.models import (
    architecture_pool,
    distill_copy,
    fine_tuned_copy,
    query_labels,
    train_independent,
)
from bastion.models.adapters import net_labels

FORMAT = "bastion-fingerprint-v1"
METHOD = "conferrable-adversarial-examples"
CITATION = ("Lukas, Zhang, Kerschbaum. Deep Neural Network Fingerprinting by Conferrable Adversarial "
            "Examples. ICLR 2021. https://arxiv.org/abs/1912.00888")


@dataclass(frozen=True)
class FingerprintConfig:
    """Parameters of fingerprint creation (all recorded in the fingerprint file)."""

    n_fingerprints: int = 100
    n_candidates: int = 400
    n_surrogates: int = 3
    n_references: int = 3
    n_null: int = 6
    eps: float = 0.25
    steps: int = 80
    lr: float = 0.02
    epochs: int = 30
    fine_tune_epochs: int = 5
    alpha: float = 0.01
    seed: int = 0


@dataclass
class Fingerprint:
    """A fingerprint: inputs, the source's labels, and the measured null of independent models."""

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    null_match_rates: list[float]
    surrogate_match_rates: list[float]
    reference_match_rates: list[float]
    source_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def digest(self) -> str:
        """sha256 of the fingerprint inputs and labels (the evidence that what was queried is what was made)."""
        h = hashlib.sha256(np.ascontiguousarray(self.x, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        x = np.ascontiguousarray(self.x, dtype=np.float32)
        return {"format": FORMAT, "method": METHOD, "citation": CITATION, "digest": self.digest,
                "n_classes": self.n_classes, "input_shape": list(self.input_shape), "n": len(self.y),
                "labels": [int(v) for v in self.y], "inputs_f32_b64": base64.b64encode(x.tobytes()).decode(),
                "null": {"match_rates": self.null_match_rates, **_beta_fit(self.null_match_rates, len(self.y))},
                "surrogate_match_rates": self.surrogate_match_rates,
                "reference_match_rates": self.reference_match_rates, "source_sha256": self.source_sha256,
                "params": self.params, "duration_s": round(self.duration_s, 3)}

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "fingerprint") -> Fingerprint:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InvalidInputError(f"{where} is not a Bastion fingerprint (format {FORMAT!r} expected)")
        try:
            shape = tuple(int(v) for v in d["input_shape"])
            y = np.asarray(d["labels"], dtype=np.int64)
            x = np.frombuffer(base64.b64decode(d["inputs_f32_b64"], validate=True), dtype=np.float32)
            x = x.reshape((len(y), *shape)).copy()
            fp = cls(x, y, int(d["n_classes"]), shape, [float(v) for v in d["null"]["match_rates"]],
                     [float(v) for v in d.get("surrogate_match_rates", [])],
                     [float(v) for v in d.get("reference_match_rates", [])], d.get("source_sha256"),
                     dict(d.get("params", {})), float(d.get("duration_s", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: malformed fingerprint ({exc})") from None
        if d.get("digest") and d["digest"] != fp.digest:
            raise InvalidInputError(f"{where}: inputs/labels do not match the recorded digest (file altered?)")
        return fp

    @classmethod
    def load(cls, path: str | Path) -> Fingerprint:
        return read_input_file(path, "fingerprint file", lambda data, where: cls.from_dict(parse_json(data, where), where),
                               hint="create one with: bastion model fingerprint create")


@dataclass
class FingerprintVerdict:
    """Answer of a verification: how many fingerprint labels the suspect reproduces, and how unlikely that is."""

    matches: int
    queries: int
    match_rate: float
    p_value: float
    alpha: float
    derived: bool
    null_mean: float
    null_max: float
    null_exceeded: int
    null_models: int
    fingerprint_digest: str
    stopped_by_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, **asdict(self)}


def _beta_fit(rates: list[float], n: int) -> dict[str, float]:
    """Method-of-moments Beta(a, b) for the null match rate, its variance floored at the binomial one."""
    r = np.asarray(rates, dtype=np.float64)
    m = float(np.clip(r.mean() if len(r) else 0.5, 0.5 / max(1, n), 1 - 0.5 / max(1, n)))
    v = float(r.var(ddof=1)) if len(r) > 1 else 0.0
    v = max(v, m * (1 - m) / max(1, n))
    s = max(m * (1 - m) / v - 1.0, 1e-3)
    return {"mean": float(r.mean()) if len(r) else 0.0, "max": float(r.max()) if len(r) else 0.0,
            "beta_a": m * s, "beta_b": (1 - m) * s}


def _match_rate(net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((net_labels(net, x) == y).mean())


def _targeted_conferrable(source: nn.Module | None, surrogates: list[nn.Module], references: list[nn.Module],
                          x0: np.ndarray, target: np.ndarray, lo: float | None, hi: float | None,
                          cfg: FingerprintConfig) -> np.ndarray:
    """Perturb ``x0`` (‖δ‖∞ ≤ eps·range) toward ``target`` on surrogates and source, away on references."""
    scale = (hi - lo) if lo is not None and hi is not None else 1.0
    eps = cfg.eps * scale
    x = torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float32))
    t = torch.from_numpy(target.astype(np.int64))
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr * scale)
    rows = torch.arange(len(x))
    for _ in range(cfg.steps):
        xa = x + delta
        if lo is not None or hi is not None:
            xa = xa.clamp(lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
        p_sur = torch.stack([torch.softmax(m(xa), 1)[rows, t] for m in surrogates]).mean(0)
        p_ref = torch.stack([torch.softmax(m(xa), 1)[rows, t] for m in references]).mean(0)
        loss = -(torch.log(p_sur + 1e-8) + torch.log(1 - p_ref + 1e-8)).mean()
        if source is not None:
            loss = loss + nn.functional.cross_entropy(source(xa), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
    with torch.no_grad():
        xa = x + delta
        if lo is not None or hi is not None:
            xa = xa.clamp(lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
    return xa.numpy().astype(np.float32)


def _predict_labels(model: ModelAdapter, x: np.ndarray) -> np.ndarray:
    return query_labels(model, x)[0]


def create_fingerprint(source: ModelAdapter, x_train: np.ndarray, y_train: np.ndarray,
                       x_seed: np.ndarray | None = None, config: FingerprintConfig | None = None,
                       progress: Callable[[str], None] | None = None) -> Fingerprint:
    """Build a conferrable-adversarial-example fingerprint of ``source`` from the owner's labelled data.

    ``x_seed`` are the inputs perturbed into fingerprints (default: ``x_train``). Surrogates are
    distilled on the source's answers to ``x_train`` (and one is fine-tuned from the source when it is a
    white-box torch model); references and null models are trained from scratch on random 80% subsets of
    ``(x_train, y_train)`` with different seeds and architectures.
    """
    cfg = config or FingerprintConfig()
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    x_train = np.asarray(x_train, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.int64)
    if len(x_train) < 20:
        raise InvalidInputError(f"fingerprinting needs labelled training data; got {len(x_train)} samples")
    spec = source.input_spec
    k = source.n_classes
    shape = tuple(spec.shape)
    pool = architecture_pool(shape, k)
    module: nn.Module | None = getattr(source, "module", None)
    src_proba = np.concatenate([np.asarray(source.predict_proba(x_train[i : i + spec.max_batch]), np.float64)
                                for i in range(0, len(x_train), spec.max_batch)])
    surrogates: list[nn.Module] = []
    for i in range(cfg.n_surrogates):
        say(f"surrogate {i + 1}/{cfg.n_surrogates}")
        if i == cfg.n_surrogates - 1 and module is not None and cfg.n_surrogates > 1:
            ft = fine_tuned_copy(module, x_train, y_train, cfg.fine_tune_epochs, seed=cfg.seed + 100 + i)
            if ft is not None:
                surrogates.append(ft)
                continue
        _, factory = pool[i % len(pool)]
        surrogates.append(distill_copy(factory, x_train, src_proba, cfg.epochs, seed=cfg.seed + 100 + i))
    references: list[nn.Module] = []
    for i in range(cfg.n_references):
        say(f"reference {i + 1}/{cfg.n_references}")
        _, factory = pool[i % len(pool)]
        references.append(train_independent(factory, x_train, y_train, cfg.epochs, seed=cfg.seed + 200 + i))
    for m in [*surrogates, *references]:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    rng = np.random.default_rng(cfg.seed)
    seeds = np.asarray(x_seed if x_seed is not None else x_train, dtype=np.float32)
    seeds = seeds[rng.permutation(len(seeds))[: cfg.n_candidates]]
    seed_labels = _predict_labels(source, seeds)
    target = (seed_labels + rng.integers(1, k, size=len(seeds))) % k
    say("optimising conferrable examples")
    x_adv = _targeted_conferrable(module, surrogates, references, seeds, target, spec.clip_min, spec.clip_max, cfg)
    y_adv = _predict_labels(source, x_adv)
    with torch.no_grad():
        xt = torch.from_numpy(x_adv)
        rows = torch.arange(len(xt))
        lt = torch.from_numpy(y_adv)
        p_sur = torch.stack([torch.softmax(m(xt), 1)[rows, lt] for m in surrogates]).mean(0).numpy()
        p_ref = torch.stack([torch.softmax(m(xt), 1)[rows, lt] for m in references]).max(0).values.numpy()
    conferrability = p_sur * (1 - p_ref)
    conferrability[y_adv == seed_labels] = -1.0  # keep adversarial ones: a natural label is shared by everyone
    order = np.argsort(-conferrability, kind="stable")[: cfg.n_fingerprints]
    if len(order) < cfg.n_fingerprints:
        raise InvalidInputError(f"only {len(order)} candidates for {cfg.n_fingerprints} fingerprints; "
                                "give more seed inputs")
    fx, fy = x_adv[order], y_adv[order]
    null_rates: list[float] = []
    for i in range(cfg.n_null):
        say(f"null model {i + 1}/{cfg.n_null}")
        _, factory = pool[i % len(pool)]
        net = train_independent(factory, x_train, y_train, cfg.epochs, seed=cfg.seed + 1000 + i)
        null_rates.append(_match_rate(net, fx, fy))
    params = {**asdict(cfg), "pool": [n for n, _ in pool], "white_box_source": module is not None,
              "n_train": len(x_train), "mean_conferrability": float(conferrability[order].mean())}
    sha = (getattr(source, "info", {}) or {}).get("sha256")
    return Fingerprint(fx, fy, k, shape, null_rates, [_match_rate(m, fx, fy) for m in surrogates],
                       [_match_rate(m, fx, fy) for m in references], sha, params, time.perf_counter() - t0)


def verify_fingerprint(fp: Fingerprint, suspect: ModelAdapter, query_budget: int | None = None,
                       alpha: float | None = None) -> FingerprintVerdict:
    """Query ``suspect`` on (the first ``query_budget`` of) the fingerprint; match rate and p-value.

    The p-value is the upper tail of a beta-binomial whose Beta is fitted to the match rates of the
    independent null models measured at creation; ``derived`` is ``p_value < alpha``. A suspect that
    runs out of its own query budget is judged on the answers received so far.
    """
    from scipy.stats import betabinom

    a = float(alpha if alpha is not None else fp.params.get("alpha", 0.01))
    n = len(fp.y) if query_budget is None else min(len(fp.y), int(query_budget))
    if n < 1:
        raise InvalidInputError(f"--query-budget must be at least 1, got {query_budget}")
    if tuple(suspect.input_spec.shape) != tuple(fp.input_shape):
        raise InvalidInputError(f"the suspect takes inputs of shape {tuple(suspect.input_spec.shape)}; "
                                f"the fingerprint was made for {tuple(fp.input_shape)}")
    pred, stopped = query_labels(suspect, fp.x[:n])
    q = len(pred)
    if q == 0:
        raise QueryBudgetExceeded("the suspect answered no fingerprint query (its query budget is spent)")
    k = int((pred == fp.y[:q]).sum())
    fit = _beta_fit(fp.null_match_rates, len(fp.y))
    p = float(betabinom.sf(k - 1, q, fit["beta_a"], fit["beta_b"]))
    rate = k / q
    return FingerprintVerdict(k, q, rate, p, a, p < a, fit["mean"], fit["max"],
                              int(sum(r >= rate for r in fp.null_match_rates)), len(fp.null_match_rates),
                              fp.digest, stopped)
