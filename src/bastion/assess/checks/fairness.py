"""Outcome bias across groups (``fairness.group_metrics``), measured with fairlearn's ``MetricFrame``.

For the declared sensitive features (``bastion assess --sensitive COL``; several columns give
intersectional groups) the check predicts the evaluation split and reports, per group: accuracy,
selection rate (share predicted positive), true- and false-positive rate, and count; between groups:
the demographic-parity difference and ratio (selection rate), the equalised-odds difference (largest
TPR or FPR gap) and ratio, and the accuracy difference — each with a 95 % bootstrap interval
(``MetricFrame(n_boot=…)``: rows resampled with replacement, percentile interval).

Severities (thresholds in ``params.thresholds``; a finding is capped at ``low`` when its 95 % interval
reaches the passing side, i.e. the gap is not distinguishable from chance on this many rows):

- demographic-parity ratio (lowest / highest selection rate) < 0.80 — the four-fifths rule of the US
  Uniform Guidelines on Employee Selection (29 CFR 1607.4(D)) — **high**; < 0.90 **low**;
- equalised-odds difference ≥ 0.20 **high**, ≥ 0.10 **medium**, ≥ 0.05 **low**;
- accuracy difference ≥ 0.10 **medium**, ≥ 0.05 **low**.

The check passes when no finding is above ``low``, warns at ``medium`` and fails at ``high``. The positive
class is ``--option positive_class=K`` (default 1; multi-class models are measured one
class against the rest). A numeric sensitive column with more than 10 distinct values (e.g. age) is cut
into ``--option sensitive_bins=4`` quantile bands, named by their ranges.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check, worst_status
from bastion.core.results import Finding
from bastion.core.severity import Severity
from bastion.core.target import Target

FAIRNESS_CONTROLS = ["nist-ai-rmf:MEASURE-2.11", "eu-ai-act:Art10(2)"]
N_BOOT = {"quick": 100, "standard": 200, "thorough": 1000}
DP_RATIO = ((0.80, Severity.HIGH), (0.90, Severity.LOW))  # below the bound
EO_DIFF = ((0.20, Severity.HIGH), (0.10, Severity.MEDIUM), (0.05, Severity.LOW))  # at or above
ACC_DIFF = ((0.10, Severity.MEDIUM), (0.05, Severity.LOW))
MAX_LEVELS = 10


def sensitive_columns(target: Target, x: np.ndarray, split: str, bins: int) -> dict[str, np.ndarray]:
    """Group labels per declared sensitive feature: a model input column (by feature name), or a side column
    the target carries in ``metadata.extra["sensitive_values"][col][split]``."""
    from bastion.core.errors import InvalidInputError

    names = list(target.metadata.feature_names)
    side = (target.metadata.extra or {}).get("sensitive_values", {})
    out: dict[str, np.ndarray] = {}
    for col in target.metadata.sensitive_features:
        if col in names and x.ndim == 2 and x.shape[1] == len(names):
            raw = np.asarray(x[:, names.index(col)])
        elif col in side and side[col].get(split) is not None:
            raw = np.asarray(side[col][split])
        else:
            raise InvalidInputError(f"sensitive feature {col!r} is neither a model feature ({', '.join(names) or 'none named'}) "
                                    "nor a column of the data table")
        if len(raw) != len(x):
            raise InvalidInputError(f"sensitive feature {col!r} has {len(raw)} values for {len(x)} samples")
        out[col] = group_labels(raw, bins)
    return out


def group_labels(raw: np.ndarray, bins: int) -> np.ndarray:
    """Categorical labels as text; a numeric column with more than 10 values cut into quantile bands."""
    if raw.dtype.kind in "fiu" and len(np.unique(raw)) > MAX_LEVELS:
        edges = np.unique(np.quantile(raw.astype(float), np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, raw, side="right") - 1, 0, len(edges) - 2)
        labels = np.array([f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == len(edges) - 2 else ')'}"
                           for i in range(len(edges) - 1)])
        return labels[idx]
    if raw.dtype.kind == "f" and np.all(np.equal(raw, np.round(raw))):
        raw = raw.astype(np.int64)
    return raw.astype(str)


def _grade(value: float, bounds: tuple[tuple[float, Severity], ...], below: bool) -> Severity | None:
    for thr, sev in bounds:
        if (value < thr) if below else (value >= thr):
            return sev
    return None


def _cap(sev: Severity | None, ci_passes: bool) -> Severity | None:
    """Cap at low when the 95 % interval reaches the passing side."""
    if sev is None or not ci_passes:
        return sev
    return min(sev, Severity.LOW)


def _has_groups(target: Target) -> bool:
    return bool(target.metadata.sensitive_features) and (target.data.has_test or target.data.has_train) \
        and target.metadata.task == "classification"


@check(id="fairness.group_metrics", title="Outcome bias across groups (fairlearn MetricFrame)",
       controls=FAIRNESS_CONTROLS, applies=_has_groups)
def group_metrics_check(target: Target, ctx: CheckContext) -> Outcome:
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    split = "test" if target.data.has_test else "train"
    x, y = target.data.eval_split()
    positive = int(ctx.option("positive_class", 1))
    bins = int(ctx.option("sensitive_bins", 4))
    n_boot = int(ctx.option("fairness_bootstrap", N_BOOT[ctx.profile]))
    groups = sensitive_columns(target, np.asarray(x), split, bins)
    pred = target.model.predict_proba(np.asarray(x, np.float32)).argmax(1)
    y_true, y_pred = (np.asarray(y) == positive).astype(int), (pred == positive).astype(int)
    ctx.progress(1, 3)
    metrics = {"accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate,
               "fpr": false_positive_rate, "count": count}
    mf = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=pd.DataFrame(groups),
                     n_boot=n_boot, ci_quantiles=[0.025, 0.975], random_state=ctx.seed)
    ctx.progress(2, 3)
    diff, ratio = mf.difference(), mf.ratio()
    (diff_lo, diff_hi), (ratio_lo, ratio_hi) = mf.difference_ci(), mf.ratio_ci()
    by_group = mf.by_group.reset_index()
    group_cols = list(groups)
    per_group = [{"group": {c: str(r[c]) for c in group_cols},
                  **{m: (None if pd.isna(r[m]) else float(r[m])) for m in metrics}} for _, r in by_group.iterrows()]
    ci = {m: {"difference": [float(diff_lo[m]), float(diff_hi[m])], "ratio": [float(ratio_lo[m]), float(ratio_hi[m])]}
          for m in ("accuracy", "selection_rate", "tpr", "fpr")}
    eo_metric = "tpr" if float(diff["tpr"]) >= float(diff["fpr"]) else "fpr"
    summary_metrics = {
        "demographic_parity_difference": float(diff["selection_rate"]),
        "demographic_parity_ratio": float(ratio["selection_rate"]),
        "equalized_odds_difference": float(max(diff["tpr"], diff["fpr"])),
        "equalized_odds_ratio": float(min(ratio["tpr"], ratio["fpr"])),
        "accuracy_difference": float(diff["accuracy"]),
        "overall": {m: float(v) for m, v in mf.overall.items()},
    }
    findings = _findings(summary_metrics, ci, eo_metric, per_group, group_cols)
    out_metrics: dict[str, Any] = {**summary_metrics, "ci95": ci, "by_group": per_group,
                                   "groups": len(per_group), "samples": len(y_true), "split": split}
    ctx.progress(3, 3)
    return Outcome(
        worst_status(findings),
        (f"{len(per_group)} groups of {', '.join(group_cols)}: selection-rate ratio "
         f"{summary_metrics['demographic_parity_ratio']:.2f} (95% CI {ci['selection_rate']['ratio'][0]:.2f}–"
         f"{ci['selection_rate']['ratio'][1]:.2f}), equalised-odds difference "
         f"{summary_metrics['equalized_odds_difference']:.2f}"),
        out_metrics, findings=findings,
        params={"sensitive_features": group_cols, "positive_class": positive, "n_boot": n_boot,
                "ci_quantiles": [0.025, 0.975], "seed": ctx.seed, "sensitive_bins": bins,
                "thresholds": {"demographic_parity_ratio_below": [t for t, _ in DP_RATIO],
                               "equalized_odds_difference_at_least": [t for t, _ in EO_DIFF],
                               "accuracy_difference_at_least": [t for t, _ in ACC_DIFF]}},
        artifacts={"fairness_by_group.png": _plot(per_group, group_cols, positive)},
    )


def _findings(m: dict[str, Any], ci: dict[str, Any], eo_metric: str, per_group: list[dict[str, Any]],
          cols: list[str]) -> list[Finding]:
    def name(g: dict[str, Any]) -> str:
        return ", ".join(f"{c}={g['group'][c]}" for c in cols)

    rates = [g for g in per_group if g["selection_rate"] is not None]
    lo_g = min(rates, key=lambda g: g["selection_rate"]) if rates else None
    hi_g = max(rates, key=lambda g: g["selection_rate"]) if rates else None
    out = []
    sev = _cap(_grade(m["demographic_parity_ratio"], DP_RATIO, below=True),
               ci["selection_rate"]["ratio"][1] >= DP_RATIO[0][0])
    if sev is not None and lo_g and hi_g:
        out.append(Finding(
            "fairness.demographic_parity", sev,
            f"selection-rate ratio {m['demographic_parity_ratio']:.2f} (four-fifths rule: ≥ 0.80): "
            f"{name(lo_g)} {lo_g['selection_rate']:.0%} vs {name(hi_g)} {hi_g['selection_rate']:.0%} predicted positive",
            evidence={"ratio": m["demographic_parity_ratio"], "ci95": ci["selection_rate"]["ratio"],
                      "difference": m["demographic_parity_difference"]},
            recommendation="check the training data's group balance (bastion data representativeness TRAIN "
                           "--reference POP --groups COL), retrain on a stratified sample, then re-run bastion assess",
            controls=list(FAIRNESS_CONTROLS)))
    eo_ci = ci[eo_metric]["difference"]
    sev = _cap(_grade(m["equalized_odds_difference"], EO_DIFF, below=False), eo_ci[0] < EO_DIFF[-1][0])
    if sev is not None:
        out.append(Finding(
            "fairness.equalized_odds", sev,
            f"equalised-odds difference {m['equalized_odds_difference']:.2f} ({eo_metric.upper()} gap between groups)",
            evidence={"difference": m["equalized_odds_difference"], "metric": eo_metric, "ci95": eo_ci,
                      "ratio": m["equalized_odds_ratio"]},
            recommendation="compare error rates per group (fairness_by_group.png); rebalance or reweight the "
                           "training data, or post-process thresholds per group (fairlearn ThresholdOptimizer)",
            controls=list(FAIRNESS_CONTROLS)))
    sev = _cap(_grade(m["accuracy_difference"], ACC_DIFF, below=False),
               ci["accuracy"]["difference"][0] < ACC_DIFF[-1][0])
    if sev is not None:
        out.append(Finding(
            "fairness.accuracy_gap", sev, f"accuracy differs by {m['accuracy_difference']:.2f} between groups",
            evidence={"difference": m["accuracy_difference"], "ci95": ci["accuracy"]["difference"]},
            recommendation="collect more data for the worst-served group; re-run bastion assess",
            controls=list(FAIRNESS_CONTROLS)))
    return out


def _plot(per_group: list[dict[str, Any]], cols: list[str], positive: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["\n".join(str(g["group"][c]) for c in cols) for g in per_group]
    names = ("accuracy", "selection_rate", "tpr", "fpr")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) + 2), 3.2))
    w = 0.8 / len(names)
    for i, m in enumerate(names):
        vals = [np.nan if g[m] is None else g[m] for g in per_group]
        ax.bar(np.arange(len(labels)) + i * w - 0.4 + w / 2, vals, w, label=m.replace("_", " "))
    ax.axhline(0.8 * max((g["selection_rate"] or 0) for g in per_group), color="grey", ls=":", lw=1,
               label="4/5 of top selection rate")
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"per group ({', '.join(cols)}); positive class {positive}", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()

