"""Membership-inference metrics: AUC, TPR at low FPR, balanced accuracy, empirical ε lower bound.

Carlini et al., "Membership Inference Attacks From First Principles" (2022) argue for TPR at
low FPR over AUC; we report both. TPR at an FPR is only reported when the non-member set can
resolve it (at least ``1/fpr`` non-members), otherwise ``None`` with the reason.

The empirical ε lower bound follows Jagielski et al. (2020) / Nasr et al. (2021): any
(ε, δ)-DP mechanism satisfies TPR ≤ e^ε·FPR + δ and TNR ≤ e^ε·FNR + δ, so every threshold
gives ε ≥ log((TPR − δ)/FPR). We use one-sided Clopper–Pearson bounds (lower for TPR, upper
for FPR), Bonferroni-corrected over the thresholds tried, so the bound holds with 95 %
confidence rather than being a point estimate of the best threshold.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MembershipMetrics:
    auc: float
    tpr_at_1pct_fpr: float | None
    tpr_at_0_1pct_fpr: float | None
    balanced_accuracy: float
    advantage: float
    empirical_epsilon_lower_bound: float
    n_members: int
    n_nonmembers: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
            "tpr_at_0_1pct_fpr": self.tpr_at_0_1pct_fpr,
            "balanced_accuracy": self.balanced_accuracy,
            "advantage": self.advantage,
            "empirical_epsilon_lower_bound": self.empirical_epsilon_lower_bound,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "notes": list(self.notes),
        }


def roc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for "higher score = member"."""
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores].astype(np.float64)
    s = np.nan_to_num(s, nan=-np.inf)
    s = np.clip(s, -1e300, 1e300)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Largest TPR whose FPR does not exceed ``target``."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _cp_lower(k: int, n: int, alpha: float = 0.05) -> float:
    from scipy.stats import beta

    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def _cp_upper(k: int, n: int, alpha: float = 0.05) -> float:
    from scipy.stats import beta

    return 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))


def empirical_epsilon(
    fpr: np.ndarray, tpr: np.ndarray, n_members: int, n_nonmembers: int, delta: float = 1e-5
) -> float:
    """95 %-confidence lower bound on ε implied by the ROC curve (0 when nothing is implied)."""
    best = 0.0
    # subsample thresholds to keep the beta quantiles cheap; Bonferroni over the thresholds tried
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    alpha = 0.05 / len(idx)
    for i in idx:
        fp, tp = round(fpr[i] * n_nonmembers), round(tpr[i] * n_members)
        fn, tn = n_members - tp, n_nonmembers - fp
        tpr_lo, fpr_hi = _cp_lower(tp, n_members, alpha), _cp_upper(fp, n_nonmembers, alpha)
        tnr_lo, fnr_hi = _cp_lower(tn, n_nonmembers, alpha), _cp_upper(fn, n_members, alpha)
        for num, den in ((tpr_lo - delta, fpr_hi), (tnr_lo - delta, fnr_hi)):
            if num > 0 and den > 0:
                best = max(best, math.log(num / den))
    return float(best)


def membership_metrics(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, delta: float = 1e-5
) -> MembershipMetrics:
    """All headline numbers of a membership attack from its scores (higher = more likely member)."""
    from sklearn.metrics import roc_auc_score

    m, n = np.asarray(member_scores, dtype=np.float64), np.asarray(nonmember_scores, dtype=np.float64)
    if len(m) == 0 or len(n) == 0:
        from bastion.core.errors import InvalidInputError

        raise InvalidInputError("membership metrics need at least one member and one non-member")
    fpr, tpr, _ = roc(m, n)
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    s = np.clip(np.nan_to_num(np.r_[m, n], nan=-np.inf), -1e300, 1e300)
    auc = float(roc_auc_score(y, s))
    notes: list[str] = []
    t1: float | None = tpr_at_fpr(fpr, tpr, 0.01)
    t01: float | None = tpr_at_fpr(fpr, tpr, 0.001)
    if len(n) < 100:
        t1 = None
        notes.append(f"tpr_at_1pct_fpr is null: {len(n)} non-members cannot resolve 1% FPR (need >= 100)")
    if len(n) < 1000:
        t01 = None
        notes.append(f"tpr_at_0_1pct_fpr is null: {len(n)} non-members cannot resolve 0.1% FPR (need >= 1000)")
    bal = float(np.max((tpr + 1.0 - fpr) / 2.0))
    return MembershipMetrics(
        auc=auc,
        tpr_at_1pct_fpr=t1,
        tpr_at_0_1pct_fpr=t01,
        balanced_accuracy=bal,
        advantage=2.0 * bal - 1.0,
        empirical_epsilon_lower_bound=empirical_epsilon(fpr, tpr, len(m), len(n), delta),
        n_members=len(m),
        n_nonmembers=len(n),
        notes=notes,
    )


def roc_plots_png(member_scores: np.ndarray, nonmember_scores: np.ndarray, title: str) -> dict[str, bytes]:
    """``{"roc.png": ..., "roc_log.png": ...}``: linear ROC and log-log ROC (low-FPR regime)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc(member_scores, nonmember_scores)
    out: dict[str, bytes] = {}
    for name, log in (("roc.png", False), ("roc_log.png", True)):
        fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
        if log:
            lo = 1.0 / max(len(nonmember_scores), 1)
            ax.loglog(np.maximum(fpr, lo / 2), np.maximum(tpr, lo / 2), lw=1.6, label="attack")
            grid = np.logspace(math.log10(lo / 2), 0, 50)
            ax.loglog(grid, grid, "k--", lw=0.8, label="chance")
            ax.set_xlim(lo / 2, 1)
            ax.set_ylim(lo / 2, 1)
        else:
            ax.plot(fpr, tpr, lw=1.6, label="attack")
            ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(title + (" (log scale)" if log else ""), fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        out[name] = buf.getvalue()
    return out
