"""Membership inference: was this record in the model's training set?

Methods (``MembershipConfig.method``):

- ``loss`` — LOSS threshold (Yeom et al. 2018): score = log p_y(x); members have lower loss.
- ``confidence`` — max-probability threshold (Salem et al. 2019).
- ``label_only`` — for label-only APIs (Choquette-Choo et al. 2021): score = fraction of
  ``label_only_queries`` Gaussian-perturbed copies of x still classified as y.
- ``lira`` — LiRA (Carlini et al. 2022, https://arxiv.org/abs/2112.03570): Gaussian fits of the
  logit-scaled confidence φ(x) under reference models. ``reference_mode="offline"`` trains them on
  population data only (score = z-score against the OUT fit); ``"online"`` trains each on a random
  half of population ∪ the candidate records, so every candidate has IN and OUT fits (score = the
  log-likelihood ratio). With ``augment`` image inputs are also measured on 1-pixel shifts and
  the per-view scores summed (for shift-invariant CNNs; it hurt an MLP on MNIST, so it is off by default); ``fixed_variance`` uses one variance per view (Carlini et al.
  recommend it with few reference models).
- ``rmia`` — offline RMIA (Zarifzadeh et al. 2024, https://arxiv.org/abs/2312.03262): likelihood
  ratio of x against population points z, with Pr(x) from the reference models.

Reference models are trained on attacker-held population data (``x_pop``) in one vectorised
batch (``bastion.attacks.inference.reference``), on the target's architecture when given a
factory, else a proxy MLP.

Examples:
    >>> from bastion.models.zoo import demo_target
    >>> t = demo_target("digits")
    >>> r = run_membership(t.model, t.data.x_train[:300], t.data.y_train[:300],
    ...                    t.data.x_test[:300], t.data.y_test[:300], MembershipConfig("loss"))
    >>> 0.0 <= r.metrics.auc <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from torch import nn

from bastion.attacks.inference.metrics import MembershipMetrics, membership_metrics
from bastion.attacks.inference.reference import (
    ReferenceEnsemble,
    ReferenceTrainConfig,
    proxy_mlp,
    train_reference_models,
)
from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import ModelAdapter

MembershipMethod = Literal["loss", "confidence", "label_only", "lira", "rmia"]
MEMBERSHIP_METHODS: tuple[str, ...] = get_args(MembershipMethod)


@dataclass(frozen=True)
class MembershipConfig:
    """Parameters of a membership attack (every one is recorded with the result)."""

    method: MembershipMethod = "loss"
    n_reference: int = 16
    reference_epochs: int = 30
    reference_batch_size: int = 64
    reference_lr: float = 1e-3
    reference_subset_fraction: float = 0.5
    label_only_queries: int = 16
    label_only_noise: float = 0.05
    rmia_gamma: float = 2.0
    rmia_offline_a: float = 0.3
    rmia_population: int = 1000
    reference_mode: Literal["offline", "online"] = "offline"
    augment: bool = False
    fixed_variance: bool = True
    delta: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in MEMBERSHIP_METHODS:
            raise ConfigError(f"unknown membership method {self.method!r}; choose one of {', '.join(MEMBERSHIP_METHODS)}")
        if self.method in ("lira", "rmia") and self.n_reference < 2:
            raise ConfigError(f"{self.method} needs at least 2 reference models, got {self.n_reference}")


@dataclass
class MembershipResult:
    method: str
    metrics: MembershipMetrics
    member_scores: np.ndarray
    nonmember_scores: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    duration_s: float = 0.0
    reference: ReferenceEnsemble | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attack": "membership", "method": self.method, **self.metrics.to_dict(),
                "queries": self.queries, "duration_s": round(self.duration_s, 3), "params": dict(self.params)}


def _proba(model: ModelAdapter, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([np.asarray(model.predict_proba(x[i : i + batch]), dtype=np.float64)
                           for i in range(0, len(x), batch)])


def _logit_conf(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Stable log(p_y) − log(1 − p_y) from log-probabilities of shape (..., n, k)."""
    n = logp.shape[-2]
    ly = np.take_along_axis(logp, y.reshape((1,) * (logp.ndim - 2) + (n, 1)), axis=-1)[..., 0]
    masked = logp.copy()
    np.put_along_axis(masked, y.reshape((1,) * (logp.ndim - 2) + (n, 1)), -np.inf, axis=-1)
    mx = masked.max(axis=-1, keepdims=True)
    lrest = mx[..., 0] + np.log(np.exp(masked - mx).sum(axis=-1))
    return np.asarray(ly - lrest)


def _check(x: np.ndarray, y: np.ndarray, name: str, n_classes: int) -> None:
    if len(x) != len(y):
        raise InvalidInputError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise InvalidInputError(f"{name} is empty")
    if y.min() < 0 or y.max() >= n_classes:
        raise InvalidInputError(f"{name} labels must lie in [0, {n_classes - 1}], got [{y.min()}, {y.max()}]")


def run_membership(
    model: ModelAdapter,
    x_members: np.ndarray,
    y_members: np.ndarray,
    x_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    config: MembershipConfig | None = None,
    x_pop: np.ndarray | None = None,
    y_pop: np.ndarray | None = None,
    reference_factory: Callable[[], nn.Module] | None = None,
    progress: Callable[[float, float], None] | None = None,
    reference: ReferenceEnsemble | None = None,
) -> MembershipResult:
    """Score members and non-members with one attack and compute its metrics.

    ``reference`` reuses an already trained ensemble (e.g. to run LiRA and RMIA on the same models).
    """
    import time

    cfg = config or MembershipConfig()
    t0 = time.perf_counter()
    k = model.n_classes
    ym, yn = np.asarray(y_members, dtype=np.int64), np.asarray(y_nonmembers, dtype=np.int64)
    _check(x_members, ym, "members", k)
    _check(x_nonmembers, yn, "non-members", k)
    x_all = np.concatenate([x_members, x_nonmembers])
    y_all = np.concatenate([ym, yn])
    params: dict[str, Any] = {k_: v for k_, v in asdict(cfg).items()
                              if k_ in ("method", "seed", "delta")}
    queries = len(x_all)
    if cfg.method in ("loss", "confidence"):
        p = _proba(model, x_all)
        if cfg.method == "loss":
            scores = np.log(np.clip(p[np.arange(len(y_all)), y_all], 1e-300, 1.0))
        else:
            scores = p.max(axis=1)
    elif cfg.method == "label_only":
        scores, queries = _label_only(model, x_all, y_all, cfg)
        params.update(queries_per_sample=cfg.label_only_queries, noise_std=cfg.label_only_noise)
    else:
        if x_pop is None or y_pop is None or len(x_pop) < 10:
            raise ConfigError(f"{cfg.method} needs attacker population data (x_pop/y_pop, >= 10 records) "
                              "to train reference models; add x_pop/y_pop to the .npz")
        factory = reference_factory or proxy_mlp(model.input_spec.shape, k)
        rcfg = ReferenceTrainConfig(n_models=cfg.n_reference, epochs=cfg.reference_epochs,
                                    batch_size=cfg.reference_batch_size, lr=cfg.reference_lr,
                                    subset_fraction=cfg.reference_subset_fraction)
        online = cfg.reference_mode == "online"
        y_pop_i = np.asarray(y_pop, dtype=np.int64)
        train_x = np.concatenate([x_pop, x_all]) if online else x_pop
        train_y = np.concatenate([y_pop_i, y_all]) if online else y_pop_i
        ens = reference or train_reference_models(factory, train_x, train_y, rcfg, cfg.seed, progress)
        views = _views(x_all, model.input_spec.shape) if cfg.augment else [x_all]
        p = _proba(model, x_all)
        logp_target = np.log(np.clip(p, 1e-300, 1.0))
        params.update(n_reference=ens.n_models, reference_epochs=cfg.reference_epochs,
                      reference_lr=cfg.reference_lr, reference_batch_size=cfg.reference_batch_size,
                      reference_arch="target" if reference_factory else "proxy-mlp-256", n_population=len(x_pop),
                      reference_mode=cfg.reference_mode, reference_subset_fraction=cfg.reference_subset_fraction)
        if cfg.method == "lira":
            in_mask = ens.masks[:, len(x_pop):] if online and ens.masks.shape[1] == len(train_x) else None
            scores = np.zeros(len(x_all))
            for i, xv in enumerate(views):
                pv = p if i == 0 else _proba(model, xv)
                phi = _logit_conf(np.log(np.clip(pv, 1e-300, 1.0))[None], y_all)[0]
                ref_phi = _logit_conf(ens.log_proba(xv), y_all)  # (M, n)
                scores += _lira_score(phi, ref_phi, in_mask, cfg.fixed_variance)
            queries = len(x_all) * len(views)
            params.update(views=len(views), fixed_variance=cfg.fixed_variance)
        else:
            ref_logp = ens.log_proba(x_all)  # (M, n, k)
            scores = _rmia(model, ens, logp_target, ref_logp, y_all, x_pop, y_pop_i, cfg)
            queries += min(cfg.rmia_population, len(x_pop))
            params.update(rmia_gamma=cfg.rmia_gamma, rmia_offline_a=cfg.rmia_offline_a,
                          rmia_population=min(cfg.rmia_population, len(x_pop)))
    nm = len(x_members)
    metrics = membership_metrics(scores[:nm], scores[nm:], cfg.delta)
    params.update(n_members=nm, n_nonmembers=len(x_nonmembers))
    res = MembershipResult(cfg.method, metrics, scores[:nm], scores[nm:], params, queries,
                           time.perf_counter() - t0)
    if cfg.method in ("lira", "rmia"):
        res.reference = ens
    return res


def _views(x: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The input and its 1-pixel shifts (wrap-around) for image inputs ``(C, H, W)``; else just the input."""
    if len(shape) != 3 or min(shape[1:]) < 8:
        return [x]
    xs = x.reshape(len(x), *shape)
    return [xs, *(np.roll(xs, s, axis=a) for a in (2, 3) for s in (1, -1))]


def _lira_score(phi: np.ndarray, ref_phi: np.ndarray, in_mask: np.ndarray | None, fixed_variance: bool) -> np.ndarray:
    """Offline: z-score against the OUT fit. Online: log N(φ; IN) − log N(φ; OUT)."""
    out_mask = np.ones_like(ref_phi, dtype=bool) if in_mask is None else ~in_mask
    cnt_out = np.maximum(out_mask.sum(0), 1)
    mu_out = np.where(out_mask, ref_phi, 0).sum(0) / cnt_out
    if fixed_variance:
        sd_out = np.full_like(mu_out, float(np.std(ref_phi[out_mask] - np.broadcast_to(mu_out, ref_phi.shape)[out_mask])) + 1e-6)
    else:
        sd_out = np.sqrt(np.where(out_mask, (ref_phi - mu_out) ** 2, 0).sum(0) / cnt_out) + 1e-6
    if in_mask is None:
        return np.asarray((phi - mu_out) / sd_out)
    cnt_in = in_mask.sum(0)
    mu_in = np.where(cnt_in > 0, np.where(in_mask, ref_phi, 0).sum(0) / np.maximum(cnt_in, 1),
                     ref_phi[in_mask].mean() if in_mask.any() else mu_out)
    resid_in = (ref_phi - mu_in)[in_mask]
    sd_in = float(np.std(resid_in)) + 1e-6 if resid_in.size else sd_out
    if not fixed_variance:
        sd_in = np.sqrt(np.where(in_mask, (ref_phi - mu_in) ** 2, 0).sum(0) / np.maximum(cnt_in, 1)) + 1e-6
    ll_in = -0.5 * ((phi - mu_in) / sd_in) ** 2 - np.log(sd_in)
    ll_out = -0.5 * ((phi - mu_out) / sd_out) ** 2 - np.log(sd_out)
    return np.asarray(ll_in - ll_out)


def _label_only(model: ModelAdapter, x: np.ndarray, y: np.ndarray, cfg: MembershipConfig) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(cfg.seed)
    spec = model.input_spec
    correct = np.zeros(len(x))
    for _ in range(cfg.label_only_queries):
        xn = x + rng.normal(0.0, cfg.label_only_noise, size=x.shape).astype(np.float32)
        if spec.clip_min is not None or spec.clip_max is not None:
            xn = np.clip(xn, spec.clip_min, spec.clip_max)
        correct += _proba(model, xn.astype(np.float32)).argmax(axis=1) == y
    base = _proba(model, x).argmax(axis=1) == y
    # a misclassified point is very unlikely a member: rank it below every correct one
    return correct / cfg.label_only_queries + base.astype(np.float64), len(x) * (cfg.label_only_queries + 1)


def _rmia(model: ModelAdapter, ens: Any, logp_target: np.ndarray, ref_logp: np.ndarray, y: np.ndarray,
          x_pop: np.ndarray, y_pop: np.ndarray, cfg: MembershipConfig) -> np.ndarray:
    a = cfg.rmia_offline_a
    rng = np.random.default_rng(cfg.seed + 1)
    zi = rng.permutation(len(x_pop))[: cfg.rmia_population]
    xz, yz = x_pop[zi], y_pop[zi].astype(np.int64)

    def py(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.exp(np.take_along_axis(logp, labels[..., None] if logp.ndim == 2 else
                                         np.broadcast_to(labels[None, :, None], (*logp.shape[:2], 1)), axis=-1)[..., 0])

    px_theta = py(logp_target, y)
    px = ((1 + a) * py(ref_logp, y).mean(axis=0) + (1 - a)) / 2
    pz_theta = _proba(model, xz)[np.arange(len(yz)), yz]
    pz = ((1 + a) * py(ens.log_proba(xz), yz).mean(axis=0) + (1 - a)) / 2
    ratio_x = px_theta / px
    ratio_z = pz_theta / pz
    zs = np.sort(ratio_z)
    # fraction of z with ratio_x / ratio_z > gamma  ⇔  ratio_z < ratio_x / gamma
    return np.asarray(np.searchsorted(zs, ratio_x / cfg.rmia_gamma, side="left") / len(zs), dtype=np.float64)
