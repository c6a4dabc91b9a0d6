"""Poisoning and backdoor detection on a training set: which samples are suspicious, and why.

Four detectors, combined into one per-sample score and one ``flagged_indices`` list:

- ``confident_learning`` — out-of-fold class probabilities of an RBF SVM on the inputs
  (PCA-reduced when wide), cleanlab's normalized-margin label quality; a sample is
  flagged when another class beats its given label by more than ``label_margin``
  (Northcutt et al. 2021, "Confident Learning", https://arxiv.org/abs/1911.00068).
- ``activation_clustering`` — per class, 2-means on PCA(10) of the model's penultimate
  activations (Chen et al. 2018, https://arxiv.org/abs/1811.03728). Which cluster is poisoned
  is decided by STRIP, not by cluster size, so a backdoor that is half of its target class is
  still found: a class's low-entropy samples (STRIP entropy below ``strip_ratio`` of the data
  set's median, plus its low-entropy activation cluster) are a backdoor when, without them, they
  look like other classes (``excluded_knn_agreement`` below ``max_agreement``).
- ``strip`` — entropy of the model's predictions on inputs superimposed with random other
  samples; a trigger keeps the prediction fixed, so poisoned inputs have near-zero entropy
  (Gao et al. 2019, "STRIP", https://arxiv.org/abs/1902.06531). Also usable at inference
  time on incoming inputs (``strip_entropy``).
- ``spectral_signature`` — per class, squared projection on the top singular vector of the
  centred activations (Tran et al. 2018, https://arxiv.org/abs/1811.00636); reported as a
  score (it ranks, it does not flag on its own).

Examples:
    >>> rep = detect_poisoning(x_train, y_train)               # doctest: +SKIP
    >>> rep.flagged_indices[:5], rep.suspicious_classes         # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.core.model import ModelAdapter

METHODS = ("confident_learning", "activation_clustering", "strip", "spectral_signature")


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

    def flagged(self) -> list[dict[str, Any]]:
        order = sorted(self.flagged_indices, key=lambda i: -float(self.scores[i]))
        return [
            {"index": int(i), "score": round(float(self.scores[i]), 4), "methods": self.flag_methods[i]}
            for i in order
        ]

    def to_dict(self, include_all_scores: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n_samples": self.n_samples,
            "n_flagged": len(self.flagged_indices),
            "flagged_indices": [f["index"] for f in self.flagged()],
            "flagged": self.flagged(),
            "suspicious_classes": self.suspicious_classes,
            "methods": {m: self.details.get(m, {}) for m in self.method_scores},
            "params": self.params,
        }
        if include_all_scores:
            d["scores"] = [round(float(s), 4) for s in self.scores]
        return d


# ----------------------------------------------------------------------------- model
def train_reference_model(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> nn.Module:
    """Train the demo architecture for ``x``'s shape on (possibly poisoned) data (seeded, weights included)."""
    from bastion.attacks.poisoning.surrogate import train_surrogate

    return train_surrogate(x, y, n_classes, seed)


def representations(module: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Penultimate activations: the input of the module's last ``nn.Linear`` (logits if none)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    captured: list[torch.Tensor] = []
    handle = None
    if last and not isinstance(module, torch.jit.ScriptModule):
        handle = last[-1].register_forward_hook(lambda _m, inp, _o: captured.append(inp[0].detach()))
    outs = []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                out = module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)))
                outs.append(out)
    finally:
        if handle is not None:
            handle.remove()
    feats = captured if captured else outs
    return torch.cat(feats).reshape(len(x), -1).float().numpy()


def _proba_fn(model: nn.Module | ModelAdapter) -> Any:
    if isinstance(model, nn.Module):
        def f(xb: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))), 1).numpy()
        return f
    return model.predict_proba


# ----------------------------------------------------------------------------- detectors
def label_quality(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, folds: int = 5) -> np.ndarray:
    """Out-of-fold, Platt-calibrated class probabilities of an RBF SVM on the (PCA-reduced) inputs.

    Measured on digits with 5% flipped labels, these beat logistic-regression probabilities
    (cleanlab's default classifier) and a k-NN + SVM average for confident learning.
    """
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    flat = x.reshape(len(x), -1).astype(np.float64)
    steps: list[Any] = [] if x.ndim >= 3 else [StandardScaler()]
    if flat.shape[1] > 100:
        steps.append(PCA(50, random_state=seed))
    present = np.unique(y)
    counts = np.bincount(y, minlength=n_classes)[present]
    k = int(min(folds, counts.min()))
    if k < 2:
        raise InvalidInputError("every class needs at least 2 samples for out-of-fold label quality")
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    clf = make_pipeline(*steps, SVC(probability=True, random_state=seed))
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        p = cross_val_predict(clf, flat, y, cv=cv, method="predict_proba")
    probs = np.zeros((len(y), n_classes))
    probs[:, present] = p
    return probs


def spectral_signature_scores(reps: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per class: squared projection on the top right-singular vector of centred activations."""
    scores = np.zeros(len(y))
    for c in np.unique(y):
        m = y == c
        if m.sum() < 2:
            continue
        r = reps[m] - reps[m].mean(0)
        _, _, vt = np.linalg.svd(r, full_matrices=False)
        s = (r @ vt[0]) ** 2
        scores[m] = s / (s.max() + 1e-12)
    return scores


def strip_entropy(
    predict_proba: Any, x: np.ndarray, pool: np.ndarray, n_overlays: int = 8, seed: int = 0,
    clip: tuple[float | None, float | None] = (None, None), batch_size: int = 1024,
) -> np.ndarray:
    """Mean prediction entropy of each input superimposed with random ``pool`` samples (STRIP).

    Images are added pixel-wise and clipped to the valid range; tabular rows get the centred
    other row added, so extreme trigger values survive the overlay.
    """
    rng = np.random.default_rng(seed)
    ent = np.zeros(len(x))
    centre = pool.mean(0, keepdims=True) if x.ndim == 2 else 0.0
    for _ in range(n_overlays):
        j = rng.integers(0, len(pool), len(x))
        xo = x + (pool[j] - centre)
        if clip[0] is not None or clip[1] is not None:
            xo = np.clip(xo, clip[0], clip[1])
        xo = xo.astype(np.float32)
        p = np.concatenate([predict_proba(xo[i : i + batch_size]) for i in range(0, len(xo), batch_size)])
        ent += -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)
    return ent / n_overlays


def excluded_knn_agreement(x: np.ndarray, y: np.ndarray, members: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Share of ``members`` whose k nearest non-members (input space, PCA-50) vote for their label.

    Exclusionary reclassification (Chen et al. 2018) without retraining: a backdoor cluster
    holds other classes' inputs plus a trigger, so without it its members look like those
    classes (agreement near 0); a clean sub-population keeps agreeing with its label.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    flat = x.reshape(len(x), -1).astype(np.float64)
    if flat.shape[1] > 50:
        flat = PCA(50, random_state=seed).fit_transform(flat)
    if x.ndim == 2:
        flat = (flat - flat.mean(0)) / (flat.std(0) + 1e-12)
    mask = np.zeros(len(y), dtype=bool)
    mask[members] = True
    others = np.flatnonzero(~mask)
    if len(others) < k or len(members) == 0:
        return 1.0
    nn_index = NearestNeighbors(n_neighbors=k).fit(flat[others])
    _, nb = nn_index.kneighbors(flat[members])
    votes = y[others][nb]
    majority = np.array([np.bincount(v).argmax() for v in votes])
    return float(np.mean(majority == y[members]))


def activation_clusters(reps: np.ndarray, y: np.ndarray, components: int, seed: int, min_size: int) -> np.ndarray:
    """Per class 2-means on PCA(``components``) of activations; -1 where a class is too small."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    labels = np.full(len(y), -1)
    with threadpool_limits(1):
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) < min_size:
                continue
            r = reps[idx]
            n_comp = int(min(components, r.shape[1], len(idx) - 1))
            proj = PCA(n_comp, random_state=seed).fit_transform(r) if n_comp >= 1 else r
            labels[idx] = KMeans(2, n_init=4, random_state=seed).fit_predict(proj)
    return labels


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
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim < 2 or len(x) != len(y):
        raise InvalidInputError(f"x {x.shape} and y {y.shape} must have the same number of samples")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise InvalidInputError("labels y must be integers (class ids)")
    y = y.astype(np.int64)
    if len(y) < 10 or y.min() < 0:
        raise InvalidInputError("need at least 10 samples with class ids >= 0")
    k = int(n_classes or y.max() + 1)
    if clip is None:
        clip = (0.0, 1.0) if x.ndim >= 3 and x.min() >= 0 and x.max() <= 1 else (None, None)
    trained = model is None
    module: nn.Module | None
    if model is None:
        module = train_reference_model(x, y, k, seed=cfg.seed)
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
    entropy = strip_entropy(_proba_fn(model), x, x, cfg.strip_overlays, cfg.seed, clip)
    ref_entropy = float(np.median(entropy)) + 1e-12
    strip_score = np.clip(1.0 - entropy / ref_entropy, 0.0, 1.0)
    strip_threshold = cfg.strip_ratio * ref_entropy

    # activations: spectral signatures + activation clustering, cluster picked by STRIP
    method_scores: dict[str, np.ndarray] = {"confident_learning": 1.0 - quality, "strip": strip_score}
    details: dict[str, Any] = {
        "confident_learning": {"label_margin": cfg.label_margin, "n_flagged": int(label_flag.sum()),
                               "classifier": "svm(rbf), out-of-fold, Platt", "cv_folds": cfg.cv_folds},
        "strip": {"overlays": cfg.strip_overlays, "median_entropy": round(ref_entropy, 4),
                  "threshold": round(strip_threshold, 5)},
    }
    backdoor_flag = np.zeros(n, dtype=bool)
    suspicious: list[int] = []
    if module is not None:
        reps = representations(module, x)
        method_scores["spectral_signature"] = spectral_signature_scores(reps, y)
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
                suspicious.append(c)
                backdoor_flag[members] = True
        ac_score = np.zeros(n)
        ac_score[backdoor_flag] = 1.0
        method_scores["activation_clustering"] = ac_score
        details["activation_clustering"] = {"components": cfg.ac_components, "classes": per_class,
                                            "n_flagged": int(backdoor_flag.sum())}
        details["spectral_signature"] = {"representation": "penultimate" if reps.shape[1] != k else "logits"}
    else:
        backdoor_flag = entropy < strip_threshold
        details["strip"]["n_flagged"] = int(backdoor_flag.sum())

    flag_methods: dict[int, list[str]] = {}
    for i in np.flatnonzero(label_flag | backdoor_flag):
        ms = []
        if label_flag[i]:
            ms.append("confident_learning")
        if backdoor_flag[i]:
            ms.append("activation_clustering+strip" if module is not None else "strip")
        flag_methods[int(i)] = ms
    combined = np.maximum(np.clip(margin, 0.0, 1.0), np.where(backdoor_flag, 0.5 + 0.5 * strip_score, 0.0))
    combined = np.maximum(combined, 0.5 * method_scores.get("spectral_signature", np.zeros(n)) * strip_score)
    params = {"seed": cfg.seed, "n_classes": k, "model_trained_here": trained, "label_margin": cfg.label_margin,
              "strip_overlays": cfg.strip_overlays, "strip_ratio": cfg.strip_ratio,
              "max_agreement": cfg.max_agreement,
              "ac_components": cfg.ac_components, "clip": list(clip)}
    if trained:
        from bastion.attacks.poisoning.surrogate import default_architecture

        params["architecture"] = default_architecture(tuple(x.shape[1:]))[0]
    return PoisonReport(
        n_samples=n, flagged_indices=sorted(flag_methods), scores=combined, flag_methods=flag_methods,
        method_scores=method_scores, suspicious_classes=suspicious, params=params, details=details,
        model=module if trained else None,
    )


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
