"""SHAP and LIME explanations for any Bastion model, chosen to fit the model.

Explainer choice (``method="auto"``):

==========================================  ======================================
model                                       SHAP explainer
==========================================  ======================================
scikit-learn trees / boosted trees           ``TreeExplainer`` (exact, fast)
scikit-learn linear models                   ``LinearExplainer`` (exact)
torch module (white-box)                     ``GradientExplainer`` (expected gradients)
anything else (black-box, remote)            ``KernelExplainer`` on ``predict_proba``
==========================================  ======================================

Attributions are reported for the class each row is predicted as (binary tree/linear models:
SHAP explains the positive-class margin, negated for rows predicted as class 0, so values always
point towards the predicted class and still sum to that class's margin minus the base value). LIME gives a
local view of one input: ``lime_tabular`` rules for rows, ``lime_image`` superpixel weights for images
(grid superpixels by default, so 28×28 and 8×8 greyscale images get meaningful segments).

References: Lundberg & Lee 2017 (https://arxiv.org/abs/1705.07874); Ribeiro et al. 2016 (LIME).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bastion.core.errors import DependencyError, InvalidInputError
from bastion.core.model import ModelAdapter

ShapMethod = Literal["auto", "tree", "linear", "gradient", "kernel"]

_TREE_NAMES = ("Forest", "Tree", "Boosting", "XGB", "LGBM", "CatBoost")
_LINEAR_NAMES = ("LogisticRegression", "LinearSVC", "RidgeClassifier", "SGDClassifier", "LinearDiscriminant")


@dataclass
class Explanation:
    """SHAP attributions of ``n`` rows: ``values[i, j]`` = contribution of feature j to row i's output."""

    method: str
    values: np.ndarray
    base_values: np.ndarray
    explained_class: np.ndarray
    feature_names: list[str]
    output: str
    duration_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def importance(self) -> np.ndarray:
        """Mean |SHAP| per feature (global importance)."""
        return np.abs(self.values).mean(axis=0)

    def top_features(self, k: int = 10) -> list[dict[str, Any]]:
        imp = self.importance
        order = np.argsort(-imp)[:k]
        return [{"feature": self.feature_names[j], "mean_abs_shap": float(imp[j])} for j in order]

    def local(self, i: int, k: int = 10) -> list[dict[str, Any]]:
        order = np.argsort(-np.abs(self.values[i]))[:k]
        return [{"feature": self.feature_names[j], "shap": float(self.values[i, j])} for j in order]

    def to_dict(self, k: int = 10) -> dict[str, Any]:
        return {"method": self.method, "output": self.output, "samples": int(self.values.shape[0]),
                "duration_s": round(self.duration_s, 3), "top_features": self.top_features(k), "params": self.params}


def _require_shap() -> Any:
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - shap is in the explain extra
        raise DependencyError.missing("shap", "explain") from exc
    return shap


def choose_method(model: ModelAdapter) -> str:
    est = getattr(model, "estimator", None)
    if est is not None:
        name = type(est).__name__
        if any(t in name for t in _TREE_NAMES):
            return "tree"
        if any(t in name for t in _LINEAR_NAMES):
            return "linear"
        return "kernel"
    if getattr(model, "module", None) is not None:
        return "gradient"
    return "kernel"


def explain_shap(model: ModelAdapter, x: np.ndarray, background: np.ndarray, feature_names: list[str] | None = None,
                 method: ShapMethod = "auto", seed: int = 0, kernel_nsamples: int = 200,
                 gradient_nsamples: int = 20) -> Explanation:
    """SHAP values of rows ``x`` against ``background`` data, with the explainer that fits ``model``."""
    import time

    shap = _require_shap()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidInputError(f"explain needs a non-empty batch of rows; got shape {x.shape}")
    flat = x.reshape(len(x), -1)
    bg = np.asarray(background, dtype=np.float32)
    names = list(feature_names or []) or [f"x{j}" for j in range(flat.shape[1])]
    if len(names) != flat.shape[1]:
        names = [f"x{j}" for j in range(flat.shape[1])]
    chosen = choose_method(model) if method == "auto" else method
    proba = model.predict_proba(x)
    pred = proba.argmax(1)
    t0 = time.perf_counter()
    params: dict[str, Any] = {"background": len(bg), "seed": seed}
    if chosen in ("tree", "linear"):
        est = model.estimator  # type: ignore[attr-defined]
        bg_flat = bg.reshape(len(bg), -1)
        if chosen == "tree":
            explainer = shap.TreeExplainer(est)  # tree-path-dependent: no background needed, exact and fast
        else:
            explainer = shap.LinearExplainer(est, bg_flat)
        sv = explainer(flat)
        values, base = _select(np.asarray(sv.values), np.asarray(sv.base_values), pred)
        output = "margin (log-odds) of the predicted class"
    elif chosen == "gradient":
        import torch

        torch.manual_seed(seed)
        module = model.module  # type: ignore[attr-defined]
        explainer = shap.GradientExplainer(module, torch.from_numpy(bg[:100]))
        # only the top-ranked output (= the predicted class): one gradient pass per sample, not one per class
        raw, ranks = explainer.shap_values(torch.from_numpy(x), nsamples=gradient_nsamples, rseed=seed,
                                           ranked_outputs=1, output_rank_order="max")
        arr = np.stack(raw, axis=-1) if isinstance(raw, list) else np.asarray(raw)
        values = arr.reshape(len(x), -1)
        pred = np.asarray(ranks).reshape(-1).astype(np.int64)
        with torch.no_grad():
            bl = module(torch.from_numpy(bg[:100])).mean(0).numpy()
        base = bl[pred]
        output = "logit"
        params["nsamples"] = gradient_nsamples
    elif chosen == "kernel":
        summary = shap.kmeans(bg.reshape(len(bg), -1), min(10, len(bg)))
        shape = x.shape[1:]

        def f(z: np.ndarray) -> np.ndarray:
            return model.predict_proba(np.asarray(z, dtype=np.float32).reshape(-1, *shape))

        explainer = shap.KernelExplainer(f, summary)
        raw = explainer.shap_values(flat, nsamples=kernel_nsamples, silent=True)
        arr = np.stack(raw, axis=-1) if isinstance(raw, list) else np.asarray(raw)
        values = arr[np.arange(len(x)), :, pred]
        base = np.asarray(explainer.expected_value)[pred]
        output = "probability"
        params["nsamples"] = kernel_nsamples
    else:
        raise InvalidInputError(f"unknown SHAP method {method!r}; use auto, tree, linear, gradient or kernel")
    return Explanation(chosen, values.astype(np.float64), np.asarray(base, dtype=np.float64).reshape(-1),
                       pred, names, output, time.perf_counter() - t0, params)


def _select(values: np.ndarray, base: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row values for the predicted class (multi-output) or the single margin (binary)."""
    n = values.shape[0]
    if values.ndim == 3:
        return values[np.arange(n), :, pred], (base[np.arange(n), pred] if base.ndim == 2 else base[pred])
    # binary models explain the positive-class margin: flip it for rows predicted as class 0
    sign = np.where(pred == 0, -1.0, 1.0)
    return values * sign[:, None], np.broadcast_to(base, (n,)) * sign


def explain_lime(model: ModelAdapter, row: np.ndarray, training: np.ndarray, feature_names: list[str] | None = None,
                 class_names: list[str] | None = None, num_features: int = 10, num_samples: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
    """LIME (tabular) explanation of one row for its predicted class: rules and weights."""
    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError as exc:  # pragma: no cover
        raise DependencyError.missing("lime", "explain") from exc
    shape = np.asarray(row).shape
    train = np.asarray(training, dtype=np.float64).reshape(len(training), -1)
    names = list(feature_names or []) or [f"x{j}" for j in range(train.shape[1])]
    explainer = LimeTabularExplainer(train, feature_names=names, class_names=class_names or None,
                                     discretize_continuous=True, random_state=seed, mode="classification")

    def f(z: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(z, dtype=np.float32).reshape(-1, *shape))

    pred = int(f(np.asarray(row).reshape(1, -1)).argmax(1)[0])
    exp = explainer.explain_instance(np.asarray(row, dtype=np.float64).reshape(-1), f, labels=(pred,),
                                     num_features=num_features, num_samples=num_samples)
    return {"method": "lime_tabular", "explained_class": pred, "intercept": float(exp.intercept[pred]),
            "local_prediction": float(np.ravel(exp.local_pred)[0]), "score": float(exp.score),
            "weights": [{"rule": r, "weight": float(w)} for r, w in exp.as_list(label=pred)],
            "params": {"num_samples": num_samples, "num_features": num_features, "seed": seed}}


def grid_segments(height: int, width: int, cell: int | None = None) -> np.ndarray:
    """Square-grid superpixels for small greyscale images (28×28 → 4-px cells, 8×8 → 2-px cells).

    quickshift/SLIC, LIME's defaults, are made for natural colour photos; on 8×8 digits they give one
    or two segments. A grid gives ~7×7 comparable segments on any small image.
    """
    c = cell or max(1, round(min(height, width) / 7))
    rows, cols = np.arange(height) // c, np.arange(width) // c
    return (rows[:, None] * (cols.max() + 1) + cols[None, :]).astype(np.int64)


def explain_lime_image(model: ModelAdapter, image: np.ndarray, class_names: list[str] | None = None,
                       num_samples: int = 1000, num_features: int = 10, segmentation: str = "grid",
                       cell: int | None = None, hide_value: float | None = 0.0, seed: int = 0) -> dict[str, Any]:
    """LIME (``lime_image``) of one (C, H, W) image for its predicted class.

    Superpixels come from ``segmentation``: ``grid`` (default, fits 28×28 / 8×8 greyscale) or
    ``quickshift`` (scikit-image, LIME's default, for larger colour images). Hidden superpixels are
    set to ``hide_value`` (the background, 0, for MNIST-like data; ``None`` = segment mean).
    Returns the per-segment weights, the signed per-pixel weight map and the surrogate's fit.
    """
    try:
        from lime import lime_image
    except ImportError as exc:  # pragma: no cover
        raise DependencyError.missing("lime", "explain") from exc
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise InvalidInputError(f"LIME for images needs a (1|3, H, W) image; got shape {np.asarray(image).shape}")
    n_ch, h, w = img.shape
    if segmentation == "grid":
        cell = cell or max(1, round(min(h, w) / 7))
        segments = grid_segments(h, w, cell)

        def segment_fn(_: np.ndarray) -> np.ndarray:
            return segments
    elif segmentation == "quickshift":
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        segment_fn = SegmentationAlgorithm("quickshift", kernel_size=2, max_dist=10, ratio=0.2, random_seed=seed)
    else:
        raise InvalidInputError(f"unknown segmentation {segmentation!r}; use grid or quickshift")
    rgb = np.repeat(img, 3, axis=0) if n_ch == 1 else img
    rgb = np.transpose(rgb, (1, 2, 0)).astype(np.float64)

    def f(batch: np.ndarray) -> np.ndarray:
        arr = np.transpose(np.asarray(batch, dtype=np.float32), (0, 3, 1, 2))
        return model.predict_proba(arr[:, :1] if n_ch == 1 else arr)

    pred = int(f(rgb[None]).argmax(1)[0])
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with contextlib.redirect_stderr(io.StringIO()):  # lime's tqdm progress bar
        exp = explainer.explain_instance(rgb, f, labels=(pred,), top_labels=None, hide_color=hide_value,
                                         num_samples=num_samples, segmentation_fn=segment_fn, batch_size=256,
                                         random_seed=seed)
    seg = np.asarray(exp.segments)
    weights = dict(exp.local_exp[pred])
    wmap = np.zeros((h, w), dtype=np.float64)
    for sid, wt in weights.items():
        wmap[seg == sid] = wt
    top = sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:num_features]
    segs = []
    for sid, wt in top:
        rr, cc = np.nonzero(seg == sid)
        segs.append({"segment": int(sid), "weight": float(wt), "pixels": int(rr.size),
                     "rows": [int(rr.min()), int(rr.max())], "cols": [int(cc.min()), int(cc.max())]})
    names = class_names or []
    return {"method": "lime_image", "explained_class": pred,
            "explained_class_name": names[pred] if pred < len(names) else str(pred),
            "intercept": float(exp.intercept[pred]), "local_prediction": float(np.ravel(exp.local_pred[pred])[0])
            if isinstance(exp.local_pred, dict) else float(np.ravel(exp.local_pred)[0]),
            "score": float(exp.score[pred]) if isinstance(exp.score, dict) else float(exp.score),
            "segmentation": segmentation, "segments": len(np.unique(seg)), "top_segments": segs,
            "weight_map": wmap, "params": {"num_samples": num_samples, "hide_value": hide_value, "seed": seed,
                                           "cell": cell if segmentation == "grid" else None}}


def _fig_png(fig: Any, title: str | None) -> bytes:
    """Tightened figure (with ``title`` as its suptitle when given) as PNG bytes (closes it)."""
    import matplotlib.pyplot as plt

    if title is not None:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def signed_map_png(image: np.ndarray, weight_map: np.ndarray, title: str) -> bytes:
    """The input beside a signed attribution map (red: towards the class, blue: away)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(image)
    img = img.mean(axis=0) if img.ndim == 3 else img
    lim = float(np.abs(weight_map).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(6.0, 2.3))
    axes[0].imshow(img, cmap="gray")
    axes[0].set_title("input", fontsize=8)
    axes[1].imshow(weight_map, cmap="bwr", vmin=-lim, vmax=lim)
    axes[1].set_title("LIME weights", fontsize=8)
    axes[2].imshow(img, cmap="gray")
    axes[2].imshow(np.ma.masked_where(weight_map <= 0.2 * lim, weight_map), cmap="Reds", alpha=0.6, vmin=0, vmax=lim)
    axes[2].set_title("supporting regions", fontsize=8)
    for ax in axes:
        ax.axis("off")
    return _fig_png(fig, title)


def summary_plot_png(exp: Explanation, x: np.ndarray, max_display: int = 15) -> bytes:
    """SHAP beeswarm summary plot as PNG bytes (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shap = _require_shap()
    plt.figure()
    shap.summary_plot(exp.values, np.asarray(x).reshape(len(x), -1), feature_names=exp.feature_names,
                      max_display=max_display, show=False, plot_size=(7, 5))
    plt.title(f"SHAP summary ({exp.method}, output: {exp.output})", fontsize=10)
    buf = io.BytesIO()
    plt.tight_layout()
    plt.savefig(buf, format="png", dpi=90)
    plt.close("all")
    return buf.getvalue()


def local_bar_png(items: list[dict[str, Any]], title: str, key: str = "shap", label: str = "feature") -> bytes:
    """Horizontal bar chart of one row's attributions (red pushes towards the class, blue away)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * max(3, len(items)) + 1))
    vals = [it[key] for it in items][::-1]
    ax.barh([str(it[label])[:40] for it in items][::-1], vals, color=["#c0392b" if v > 0 else "#2e86c1" for v in vals])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_title(title, fontsize=10)
    return _fig_png(fig, None)


def heatmap_png(maps: np.ndarray, titles: list[str], title: str, cols: int = 4) -> bytes:
    """Attribution heat maps (images: channel-summed magnitude) in a grid of ``cols`` columns.

    A grid keeps every panel legible when the PNG is shown at a page's width (one row of 16 panels was
    2,592 px wide and unreadable once shrunk to fit).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(maps)
    ncols = max(1, min(cols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.0 * nrows + 0.3), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, m, t in zip(axes.ravel(), maps, titles, strict=False):
        img = np.abs(m).sum(axis=0) if m.ndim == 3 else np.abs(m)
        ax.imshow(img, cmap="hot")
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    return _fig_png(fig, title)
