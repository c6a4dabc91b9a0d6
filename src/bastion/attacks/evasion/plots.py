"""Pictures for reports: the robustness curve (accuracy vs eps) and a clean-vs-adversarial gallery."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np


def _figure_png(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def robustness_curve_png(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    clean_accuracy: float,
    reference_eps: float | None = None,
    xlabel: str = "ε (L∞)",
    title: str = "Accuracy under attack",
) -> bytes:
    """Accuracy against the perturbation budget, one line per attack, PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, points in curves.items():
        pts = sorted(points)
        ax.plot([0.0] + [p[0] for p in pts], [clean_accuracy] + [p[1] for p in pts], marker="o", label=name)
    if reference_eps is not None:
        ax.axvline(reference_eps, color="grey", linestyle="--", linewidth=1, label=f"reference ε = {reference_eps:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _figure_png(fig)


def _as_image(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = np.transpose(x, (1, 2, 0))
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    return x


def gallery_png(
    x_clean: np.ndarray,
    x_adv: np.ndarray,
    y: np.ndarray,
    pred_adv: np.ndarray,
    class_names: Sequence[str] = (),
    n: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> bytes:
    """Rows: clean input, adversarial input, perturbation (amplified). Shape ``(n, C, H, W)`` inputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(n, len(x_clean))
    fig, axes = plt.subplots(3, max(k, 1), figsize=(1.4 * max(k, 1), 4.6), squeeze=False)

    def name(c: int) -> str:
        return class_names[c] if 0 <= c < len(class_names) else str(c)

    lo, hi = value_range
    for j in range(k):
        clean, adv = _as_image(x_clean[j]), _as_image(x_adv[j])
        diff = adv - clean
        span = float(np.abs(diff).max()) or 1.0
        cmap = "gray" if clean.ndim == 2 else None
        axes[0, j].imshow(np.clip(clean, lo, hi), cmap=cmap, vmin=lo, vmax=hi)
        axes[0, j].set_title(f"true {name(int(y[j]))}", fontsize=7)
        axes[1, j].imshow(np.clip(adv, lo, hi), cmap=cmap, vmin=lo, vmax=hi)
        axes[1, j].set_title(f"→ {name(int(pred_adv[j]))}", fontsize=7, color="red" if pred_adv[j] != y[j] else "black")
        axes[2, j].imshow(diff if diff.ndim == 2 else (diff / span + 1) / 2, cmap="RdBu" if diff.ndim == 2 else None,
                          vmin=-span, vmax=span)
        for i in range(3):
            axes[i, j].axis("off")
    axes[0, 0].text(-0.3, 0.5, "clean", transform=axes[0, 0].transAxes, rotation=90, va="center", fontsize=8)
    axes[1, 0].text(-0.3, 0.5, "adversarial", transform=axes[1, 0].transAxes, rotation=90, va="center", fontsize=8)
    axes[2, 0].text(-0.3, 0.5, "change", transform=axes[2, 0].transAxes, rotation=90, va="center", fontsize=8)
    return _figure_png(fig)
