"""Poisoning and backdoor detection on a training set: which samples are suspicious, and why.

Seven detectors, each a per-sample score, combined into one ranked list (``combine``):

- ``confident_learning`` — out-of-fold SVM probabilities, cleanlab's label quality (``labels``);
  flags label flips (another class beats the given label by more than ``label_margin``).
- ``strip`` — prediction entropy under superimposition (``strip``): a trigger keeps the
  prediction fixed (Gao et al. 2019).
- ``activation_clustering`` — per class 2-means on activations; the low-STRIP-entropy part of a
  class is a backdoor when, without it, its members look like other classes (Chen et al. 2018).
- ``spectral_signature`` — top-singular-vector projection per class (Tran et al. 2018).
- ``spectre`` — robust (MCD) whitening + quantum-entropy score per class (Hayase et al. 2021).
- ``class_outlier`` — robust Mahalanobis distance to the class core; per class a binomial test.
- ``loss_dynamics`` — anti-backdoor learning's signal (Li et al. 2021,
  https://arxiv.org/abs/2110.11571): a backdoor is learned faster than the task, so poisoned
  samples have the lowest training loss in the first epochs. Read from the reference model's
  training (no extra cost), or from a short probe when the model is the user's.

None of them looks for a trigger's shape. Each score becomes a robust z, per sample a weighted
Stouffer p-value, per class a suspicion p-value; a sample is flagged for a backdoor when its
class is suspicious (p below ``class_alpha`` / classes) and its p-value survives a
Benjamini–Hochberg cut at ``fdr`` within that class, or by the activation-clustering rule.
Weights and thresholds were chosen on the BadNets, Blended and SIG attacks of
``bench/poison_suite.py`` and are reported on the held-out WaNet, label-consistent, clean-label
and tabular attacks too.

Examples:
    >>> rep = detect_poisoning(x_train, y_train)               # doctest: +SKIP
    >>> rep.flagged_indices[:5], rep.suspicious_classes         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.core.model import ModelAdapter
from bastion.data.poisoning.activations import (
    activation_clusters,
    class_outlier_test,
    spectral_signature_scores,
    spectre_scores,
)
from bastion.data.poisoning.combine import benjamini_hochberg, class_suspicion, robust_z, stouffer_p
from bastion.data.poisoning.labels import excluded_knn_agreement, label_quality
from bastion.data.poisoning.reference import fit_reference, proba_fn, representations
from bastion.data.poisoning.strip import strip_entropy

METHODS = ("confident_learning", "activation_clustering", "strip", "spectral_signature", "spectre",
           "class_outlier", "loss_dynamics")
# Stouffer weights of the backdoor evidence (chosen on badnets/blended/sig of bench/poison_suite.py).
# class_alpha is strict because the binomial class test ignores over-dispersion: on clean data a class
# the model predicts with unusual confidence already reaches very small p-values, while the target class
# of a 5-10 % backdoor on the tuning attacks reaches far smaller ones (bench/poison_suite.py reports whether
# the target class is found).
DEFAULT_WEIGHTS = {"strip": 1.0, "spectre": 1.0, "class_outlier": 0.5, "spectral_signature": 0.5,
                   "loss_dynamics": 1.0}


@dataclass(frozen=True)
class PoisonConfig:
    """Detector parameters (all recorded in the report's ``params``)."""

    seed: int = 0
    label_margin: float = 0.5
    strip_overlays: int = 8
    strip_ratio: float = 0.25
    max_agreement: float = 0.2
    ac_components: int = 10
    min_class_size: int = 20
    cv_folds: int = 5
    confident_learning: bool = True
    loss_dynamics: bool = True
    probe_epochs: int = 5
    early_fraction: float = 0.2
    fdr: float = 0.05
    class_alpha: float = 1e-20
    tail_z: float = 3.0
    weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_WEIGHTS.items())


@dataclass
class PoisonReport:
    """What ``detect_poisoning`` found. ``scores`` has one combined score per sample (0..1)."""

    n_samples: int
    flagged_indices: list[int]
    scores: np.ndarray
    flag_methods: dict[int, list[str]]
    method_scores: dict[str, np.ndarray]
    suspicious_classes: list[int]
    params: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    p_values: np.ndarray | None = None
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    class_p_values: dict[int, float] = field(default_factory=dict)

    def flagged(self) -> list[dict[str, Any]]:
        order = sorted(self.flagged_indices, key=lambda i: -float(self.scores[i]))
        out = []
        for i in order:
            item: dict[str, Any] = {"index": int(i), "score": round(float(self.scores[i]), 4),
                                    "methods": self.flag_methods[i]}
            if self.p_values is not None:
                item["p_value"] = float(f"{float(self.p_values[i]):.4g}")
            if self.evidence:
                item["evidence"] = {m: round(float(z[i]), 2) for m, z in self.evidence.items()}
            out.append(item)
        return out

    def ranked(self, top: int | None = None) -> list[int]:
        """All sample indices, most suspicious first."""
        order = np.argsort(-self.scores, kind="stable")
        return [int(i) for i in order[:top]]

    def to_dict(self, include_all_scores: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n_samples": self.n_samples,
            "n_flagged": len(self.flagged_indices),
            "flagged_indices": [f["index"] for f in self.flagged()],
            "flagged": self.flagged(),
            "suspicious_classes": self.suspicious_classes,
            "class_suspicion": self.details.get("class_suspicion", []),
            "methods": {m: self.details.get(m, {}) for m in self.method_scores},
            "params": self.params,
        }
        if include_all_scores:
            d["scores"] = [round(float(s), 4) for s in self.scores]
        return d


def _loss_signal(x: np.ndarray, y: np.ndarray, k: int, cfg: PoisonConfig, trace: np.ndarray | None) -> np.ndarray:
    """Minus the log of each sample's mean training loss over the first epochs (high = learned fast)."""
    if trace is None:
        trace = fit_reference(x, y, k, seed=cfg.seed, epochs=cfg.probe_epochs).loss_trace
    early = trace[: max(1, round(cfg.early_fraction * len(trace)))].mean(0)
    return np.asarray(-np.log(early + 1e-6), dtype=np.float64)


def _check_inputs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim < 2 or len(x) != len(y):
        raise InvalidInputError(f"x {x.shape} and y {y.shape} must have the same number of samples")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise InvalidInputError("labels y must be integers (class ids)")
    y = y.astype(np.int64)
    if len(y) < 10 or y.min() < 0:
        raise InvalidInputError("need at least 10 samples with class ids >= 0")
    return x, y


# ----------------------------------------------------------------------------- combined
def detect_poisoning(
    x: np.ndarray,
    y: np.ndarray,
    model: nn.Module | ModelAdapter | None = None,
    n_classes: int | None = None,
    config: PoisonConfig | None = None,
    clip: tuple[float | None, float | None] | None = None,
) -> PoisonReport:
    """Score every training sample for poisoning; flag label flips and backdoor triggers.

    ``model`` is the model trained on this data (an ``nn.Module``, a ``TorchAdapter`` or any
    ``ModelAdapter``); without it the demo architecture for the data's shape is trained here.
    """
    cfg = config or PoisonConfig()
    x, y = _check_inputs(x, y)
    k = int(n_classes or y.max() + 1)
    if clip is None:
        clip = (0.0, 1.0) if x.ndim >= 3 and x.min() >= 0 and x.max() <= 1 else (None, None)
    trained = model is None
    module: nn.Module | None
    trace = None
    architecture = None
    if model is None:
        ref = fit_reference(x, y, k, seed=cfg.seed)
        module, trace, architecture = ref.module, ref.loss_trace, ref.architecture
        model = module
    else:
        module = model if isinstance(model, nn.Module) else getattr(model, "module", None)
    n = len(y)
    ar = np.arange(n)

    # confident learning (labels)
    if cfg.confident_learning:
        probs = label_quality(x, y, k, seed=cfg.seed, folds=cfg.cv_folds)
        from cleanlab.rank import get_label_quality_scores

        quality = get_label_quality_scores(y, probs, method="normalized_margin")
        other = probs.copy()
        other[ar, y] = -1
        margin = other.max(1) - probs[ar, y]
    else:
        quality, margin = np.ones(n), np.zeros(n)
    label_flag = margin > cfg.label_margin

    # STRIP
    entropy = strip_entropy(proba_fn(model), x, x, cfg.strip_overlays, cfg.seed, clip)
    ref_entropy = float(np.median(entropy)) + 1e-12
    strip_score = np.clip(1.0 - entropy / ref_entropy, 0.0, 1.0)
    strip_threshold = cfg.strip_ratio * ref_entropy

    method_scores: dict[str, np.ndarray] = {"confident_learning": 1.0 - quality, "strip": strip_score}
    details: dict[str, Any] = {
        "confident_learning": {"label_margin": cfg.label_margin, "n_flagged": int(label_flag.sum()),
                               "classifier": "svm(rbf), out-of-fold, Platt", "cv_folds": cfg.cv_folds},
        "strip": {"overlays": cfg.strip_overlays, "median_entropy": round(ref_entropy, 4),
                  "threshold": round(strip_threshold, 5)},
    }
    # robust z of every backdoor signal: higher = more suspicious
    z: dict[str, np.ndarray] = {"strip": robust_z(-np.log(entropy + 1e-6))}
    if cfg.loss_dynamics:
        loss_sig = _loss_signal(x, y, k, cfg, trace)
        method_scores["loss_dynamics"] = loss_sig
        z["loss_dynamics"] = robust_z(loss_sig)
        details["loss_dynamics"] = {"source": "reference training" if trace is not None else
                                    f"probe of {cfg.probe_epochs} epochs", "early_fraction": cfg.early_fraction}
    backdoor_flag = np.zeros(n, dtype=bool)
    suspicious: set[int] = set()
    if module is not None:
        reps = representations(module, x)
        method_scores["spectral_signature"] = spectral_signature_scores(reps, y)
        z["spectral_signature"] = robust_z(method_scores["spectral_signature"], y)
        method_scores["spectre"] = spectre_scores(reps, y, seed=cfg.seed, min_size=cfg.min_class_size)
        z["spectre"] = robust_z(np.log(method_scores["spectre"] + 1e-6), y)
        outliers = class_outlier_test(reps, y, seed=cfg.seed, min_size=cfg.min_class_size)
        method_scores["class_outlier"] = outliers.distance
        z["class_outlier"] = robust_z(np.log(outliers.distance + 1e-6), y)
        details["spectre"] = {"alpha": 4.0, "covariance": "MinCovDet"}
        details["class_outlier"] = {"tail_threshold": round(outliers.tail_threshold, 4), "classes": outliers.classes}
        details["spectral_signature"] = {"representation": "penultimate" if reps.shape[1] != k else "logits"}
        backdoor_flag, per_class = _activation_clustering(x, y, reps, entropy, strip_threshold, k, cfg)
        suspicious |= {c["class"] for c in per_class if c["suspicious_cluster"] is not None}
        ac_score = np.zeros(n)
        ac_score[backdoor_flag] = 1.0
        method_scores["activation_clustering"] = ac_score
        details["activation_clustering"] = {"components": cfg.ac_components, "classes": per_class,
                                            "n_flagged": int(backdoor_flag.sum())}
    else:
        backdoor_flag = entropy < strip_threshold
        details["strip"]["n_flagged"] = int(backdoor_flag.sum())
    ac_flag = backdoor_flag.copy()

    # combination: per-sample Stouffer p-value, per-class suspicion, BH within suspicious classes
    weights = dict(cfg.weights)
    p_sample = stouffer_p(z, weights)
    classes = class_suspicion({m: v for m, v in z.items() if weights.get(m, 0) > 0}, y, cfg.tail_z,
                              cfg.min_class_size)
    n_tested = max(len(classes), 1)
    combined_flag = np.zeros(n, dtype=bool)
    for c in classes:
        c["suspicious"] = c["p_value"] < cfg.class_alpha / n_tested
        if c["suspicious"]:
            suspicious.add(c["class"])
            hit = benjamini_hochberg(p_sample, cfg.fdr, among=y == c["class"])
            c["n_flagged"] = int(hit.sum())
            combined_flag |= hit
    details["class_suspicion"] = classes
    backdoor_flag = ac_flag | combined_flag

    flag_methods: dict[int, list[str]] = {}
    for i in np.flatnonzero(label_flag | backdoor_flag):
        ms = []
        if label_flag[i]:
            ms.append("confident_learning")
        if ac_flag[i]:
            ms.append("activation_clustering+strip" if module is not None else "strip")
        if combined_flag[i]:
            ms.append("combined:" + "+".join(m for m in z if z[m][i] > cfg.tail_z) if
                      any(z[m][i] > cfg.tail_z for m in z) else "combined")
        flag_methods[int(i)] = ms
    backdoor_score = 1.0 - p_sample
    combined = np.maximum(np.clip(margin, 0.0, 1.0), np.where(backdoor_flag, 0.5 + 0.5 * backdoor_score,
                                                               0.5 * backdoor_score))
    class_p = {int(c["class"]): float(c["p_value"]) for c in classes}
    params = {"seed": cfg.seed, "n_classes": k, "model_trained_here": trained, "label_margin": cfg.label_margin,
              "strip_overlays": cfg.strip_overlays, "strip_ratio": cfg.strip_ratio,
              "max_agreement": cfg.max_agreement, "ac_components": cfg.ac_components, "clip": list(clip),
              "fdr": cfg.fdr, "class_alpha": cfg.class_alpha, "tail_z": cfg.tail_z, "weights": weights,
              "loss_dynamics": cfg.loss_dynamics}
    if architecture is not None:
        params["architecture"] = architecture
    return PoisonReport(
        n_samples=n, flagged_indices=sorted(flag_methods), scores=combined, flag_methods=flag_methods,
        method_scores=method_scores, suspicious_classes=sorted(suspicious), params=params, details=details,
        model=module if trained else None, p_values=p_sample, evidence=z, class_p_values=class_p,
    )


def _activation_clustering(x: np.ndarray, y: np.ndarray, reps: np.ndarray, entropy: np.ndarray,
                           strip_threshold: float, k: int, cfg: PoisonConfig) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Activation clustering with the cluster picked by STRIP and confirmed by excluded k-NN agreement."""
    flag = np.zeros(len(y), dtype=bool)
    clusters = activation_clusters(reps, y, cfg.ac_components, cfg.seed, cfg.min_class_size)
    per_class = []
    for c in range(k):
        idx = np.flatnonzero(y == c)
        if len(idx) < cfg.min_class_size or (clusters[idx] < 0).all():
            continue
        meds = [float(np.median(entropy[idx[clusters[idx] == j]])) if (clusters[idx] == j).any() else np.inf
                for j in (0, 1)]
        j = int(np.argmin(meds))
        sizes = [int((clusters[idx] == t).sum()) for t in (0, 1)]
        # candidates: every low-entropy sample of the class, plus the low-entropy cluster if any
        members = idx[entropy[idx] < strip_threshold]
        if meds[j] < strip_threshold:
            members = np.union1d(members, idx[clusters[idx] == j])
        agreement = None
        if len(members) >= max(5, 0.05 * len(idx)):  # trigger-like: do they look like their label without them?
            agreement = excluded_knn_agreement(x, y, members, seed=cfg.seed)
        bad = agreement is not None and agreement < cfg.max_agreement
        per_class.append({"class": c, "cluster_sizes": sizes, "cluster_median_entropy": [round(m, 5) for m in meds],
                          "low_entropy_candidates": len(members),
                          "candidate_label_agreement": None if agreement is None else round(agreement, 4),
                          "suspicious_cluster": j if bad else None})
        if bad:
            flag[members] = True
    return flag, per_class


def trigger_saliency_png(module: nn.Module, x: np.ndarray, y: np.ndarray, indices: list[int], top: int = 8) -> bytes:
    """A PNG: the top flagged images, their saliency maps, and the mean saliency (where a trigger shows)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bastion.explain.saliency import saliency_maps

    sel = np.asarray(indices[:top], dtype=np.int64)
    if len(sel) == 0 or x.ndim < 3:
        raise InvalidInputError("trigger saliency needs image data and at least one flagged sample")
    sal = saliency_maps(module, x[sel], y[sel], method="gradient")
    imgs = x[sel].reshape(len(sel), *x.shape[-2:]) if x.shape[1] == 1 else x[sel].mean(1)
    smaps = sal.reshape(len(sel), -1, *x.shape[-2:]).sum(1)
    fig, axes = plt.subplots(2, len(sel) + 1, figsize=(1.6 * (len(sel) + 1), 3.4))
    axes = np.atleast_2d(axes)
    for c in range(len(sel)):
        axes[0, c].imshow(imgs[c], cmap="gray")
        axes[0, c].set_title(f"#{int(sel[c])} y={int(y[sel[c]])}", fontsize=7)
        axes[1, c].imshow(smaps[c], cmap="hot")
    axes[0, -1].imshow(imgs.mean(0), cmap="gray")
    axes[0, -1].set_title("mean input", fontsize=7)
    axes[1, -1].imshow(smaps.mean(0), cmap="hot")
    axes[1, -1].set_title("mean saliency", fontsize=7)
    for a in axes.ravel():
        a.axis("off")
    fig.suptitle("Flagged samples and input-gradient saliency (a trigger shows as a hot spot)", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
