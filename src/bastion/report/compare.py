"""Before/after comparison of two assessments (``bastion assess … --compare BEFORE_DIR``).

Headline numbers are every scalar metric present in both runs for the same check; where both
runs have a robustness curve (``metrics["curve"]``: ``[{eps, robust_accuracy}, …]``) the curves
are overlaid in one plot per check. The hardening workflow uses this to show what a defence bought.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from bastion.core.results import Assessment
from bastion.core.severity import Severity


@dataclass
class MetricDelta:
    check_id: str
    metric: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        return {"check_id": self.check_id, "metric": self.metric, "before": self.before,
                "after": self.after, "delta": self.delta}


@dataclass
class Comparison:
    """What changed between two assessments."""

    before: dict[str, Any]
    after: dict[str, Any]
    metrics: list[MetricDelta] = field(default_factory=list)
    findings: dict[str, dict[str, int]] = field(default_factory=dict)
    curves: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "metrics": [m.to_dict() for m in self.metrics],
                "findings": self.findings, "curves": self.curves}


def _ident(a: Assessment) -> dict[str, Any]:
    return {"target": a.target.get("name"), "created_at": a.created_at, "profile": a.profile,
            "model_sha256": a.target.get("fingerprints", {}).get("model"),
            "max_severity": a.summary()["max_severity"], "verdict": a.summary()["verdict"]}


def _curve(metrics: dict[str, Any]) -> list[dict[str, float]] | None:
    curve = metrics.get("curve")
    if not isinstance(curve, list) or not curve:
        return None
    try:
        return sorted(({"eps": float(p["eps"]), "robust_accuracy": float(p["robust_accuracy"])} for p in curve),
                      key=lambda p: p["eps"])
    except (KeyError, TypeError, ValueError):
        return None


def curve_plot(check_id: str, before: list[dict[str, float]], after: list[dict[str, float]]) -> bytes:
    """PNG of two robustness curves overlaid (accuracy vs eps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for pts, label, style in ((before, "before", "o--"), (after, "after", "s-")):
        ax.plot([p["eps"] for p in pts], [p["robust_accuracy"] for p in pts], style, label=label)
    ax.set_xlabel("perturbation budget ε")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{check_id}: before vs after")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def compare_assessments(before: Assessment, after: Assessment, plots: bool = True) -> Comparison:
    """Metric deltas, finding counts and overlaid curves between ``before`` and ``after``."""
    cmp = Comparison(before=_ident(before), after=_ident(after))
    for res in after.results:
        old = before.result(res.check_id)
        if old is None:
            continue
        for key, val in res.metrics.items():
            prev = old.metrics.get(key)
            if isinstance(val, int | float) and not isinstance(val, bool) and isinstance(prev, int | float) \
                    and not isinstance(prev, bool):
                cmp.metrics.append(MetricDelta(res.check_id, key, float(prev), float(val)))
        cb, ca = _curve(old.metrics), _curve(res.metrics)
        if cb and ca:
            cmp.curves[res.check_id] = {"before": cb, "after": ca}
            if plots:
                cmp.plots[f"{res.check_id}.png"] = curve_plot(res.check_id, cb, ca)
    for label, a in (("before", before), ("after", after)):
        counts = {s.value: 0 for s in Severity}
        for f in a.findings:
            counts[f.severity.value] += 1
        cmp.findings[label] = counts
    return cmp
