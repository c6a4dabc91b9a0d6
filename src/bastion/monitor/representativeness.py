"""Is a training set representative of the population the model will serve?

``representativeness(train, reference, groups, label)`` compares two tables column by column:

- **coverage** — the share of the reference's probability mass that lies in bins (continuous: the
  reference's deciles; categorical: its categories) where the training set has at least one row;
  missing categories and empty bins are named;
- **group and class balance** — per value of each ``groups`` column and of the label: its share in the
  training set against the reference, and the *representation ratio* (train share / reference share);
- **intersectional cells** — every combination of the ``groups`` columns (and the label, when given):
  training count, the count the reference's share predicts, and the cells below ``min_count``;
- **shift tests**, with the drift monitor's statistics (:mod:`bastion.monitor.stats`): two-sample KS on
  continuous columns, chi-square on categorical ones, Bonferroni-adjusted over the columns, PSI and
  Wasserstein distance as effect sizes, and MMD² (RBF, median bandwidth) over all numeric columns with a
  permutation p-value.

Findings carry the catalog ids of EU AI Act Art. 10(3) (data "relevant, sufficiently representative",
statistical properties "as regards the persons or groups of persons"), Art. 10(4) (the setting the
system will be used in) and NIST AI RMF MEASURE-2.11 (fairness and bias evaluated). Thresholds are in
``THRESHOLDS`` and in the result's ``params``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bastion.core.errors import InvalidInputError
from bastion.core.results import Finding
from bastion.core.severity import Severity
from bastion.monitor import stats

ART10_3 = "eu-ai-act:Art10(3)"
ART10_4 = "eu-ai-act:Art10(4)"
MEASURE_2_11 = "nist-ai-rmf:MEASURE-2.11"
MAX_CATEGORIES = 10
THRESHOLDS: dict[str, Any] = {
    "coverage_medium_below": 0.90, "coverage_high_below": 0.75,
    "group_ratio_medium_below": 0.80, "group_ratio_high_below": 0.50,
    "cell_ratio_medium_below": 0.50, "cell_ratio_high_below": 0.25, "min_count": 20, "missing_cell_reference_share": 0.01,
    "shift_alpha": 0.01, "under_alpha": 0.01, "psi_low": 0.10, "psi_medium": 0.25, "class_tv_medium": 0.10,
}


@dataclass
class RepresentativenessResult:
    n_train: int
    n_reference: int
    groups: list[str]
    label: str | None
    coverage: list[dict[str, Any]]
    balance: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    shift: list[dict[str, Any]]
    mmd: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        worst = self.max_severity
        return {"n_train": self.n_train, "n_reference": self.n_reference, "groups": self.groups, "label": self.label,
                "verdict": "representative" if worst is None or worst < Severity.MEDIUM else "not_representative",
                "max_severity": None if worst is None else worst.value, "coverage": self.coverage,
                "balance": self.balance, "cells": self.cells, "shift": self.shift, "mmd": self.mmd,
                "findings": [f.to_dict() for f in self.findings], "params": self.params,
                "duration_s": round(self.duration_s, 3)}


def _is_categorical(ref: pd.Series, train: pd.Series) -> bool:
    if not (pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(train)):
        return True
    return bool(pd.concat([ref, train]).nunique() <= MAX_CATEGORIES)


def _coverage(col: str, ref: pd.Series, train: pd.Series, categorical: bool) -> dict[str, Any]:
    if categorical:
        ref_share = ref.astype(str).value_counts(normalize=True)
        seen = set(train.astype(str))
        missing = [str(k) for k in ref_share.index if k not in seen]
        cov = float(ref_share[[k for k in ref_share.index if k in seen]].sum())
        return {"column": col, "kind": "categorical", "coverage": cov, "missing": missing, "bins": len(ref_share)}
    edges = np.unique(np.quantile(ref.to_numpy(float), np.linspace(0, 1, 11)))
    r = np.histogram(np.clip(ref, edges[0], edges[-1]), edges)[0] / len(ref)
    t = np.histogram(train[(train >= edges[0]) & (train <= edges[-1])], edges)[0]
    empty = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g}]" for i in range(len(r)) if t[i] == 0 and r[i] > 0]
    return {"column": col, "kind": "continuous", "coverage": float(r[t > 0].sum()), "missing": empty,
            "bins": len(r), "reference_range": [float(ref.min()), float(ref.max())],
            "train_range": [float(train.min()), float(train.max())]}


def _shift(col: str, ref: pd.Series, train: pd.Series, categorical: bool) -> dict[str, Any]:
    if categorical:
        cats = sorted(set(ref.astype(str)) | set(train.astype(str)))
        rc = ref.astype(str).value_counts().reindex(cats, fill_value=0).to_numpy()
        tc = train.astype(str).value_counts().reindex(cats, fill_value=0).to_numpy()
        p = stats.chi2_pvalue(rc, tc) if len(cats) > 1 else 1.0
        rs, ts = rc / rc.sum() + 1e-6, tc / tc.sum() + 1e-6
        return {"column": col, "test": "chi2", "pvalue": p, "psi": float(np.sum((ts - rs) * np.log(ts / rs))),
                "total_variation": float(0.5 * np.abs(rs - ts).sum()), "wasserstein": None}
    r, t = ref.to_numpy(float), train.to_numpy(float)
    d = stats.KSReference(r[:, None]).statistic(t[:, None])
    p = float(stats.ks_pvalue(d, len(r), len(t))[0])
    return {"column": col, "test": "ks", "statistic": float(d[0]), "pvalue": p, "psi": stats.psi(r, t),
            "wasserstein": stats.wasserstein(r, t), "total_variation": None}


def _mmd(ref: pd.DataFrame, train: pd.DataFrame, n_perm: int, seed: int) -> dict[str, Any]:
    num = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c]) and pd.api.types.is_numeric_dtype(train[c])]
    if not num:
        return {"mmd2": None, "pvalue": None, "columns": []}
    rng = np.random.default_rng(seed)
    r, t = ref[num].to_numpy(float), train[num].to_numpy(float)
    mu, sd = r.mean(0), r.std(0) + 1e-12
    r, t = (r - mu) / sd, (t - mu) / sd
    r = r[rng.choice(len(r), min(len(r), 300), replace=False)]
    t = t[rng.choice(len(t), min(len(t), 300), replace=False)]
    both = np.vstack([r, t])
    gamma2 = stats.median_bandwidth(both, seed=seed)
    observed = stats.mmd2(r, t, gamma2)
    null = []
    for _ in range(n_perm):
        perm = rng.permutation(len(both))
        null.append(stats.mmd2(both[perm[:len(r)]], both[perm[len(r):]], gamma2))
    return {"mmd2": observed, "pvalue": float((1 + np.sum(np.array(null) >= observed)) / (n_perm + 1)),
            "permutations": n_perm, "columns": num, "bandwidth2": gamma2}


def _balance(col: str, ref: pd.Series, train: pd.Series, n_train: int) -> list[dict[str, Any]]:
    rs = ref.astype(str).value_counts(normalize=True)
    tc = train.astype(str).value_counts()
    out = []
    for v in sorted(set(rs.index) | set(tc.index)):
        r_share = float(rs.get(v, 0.0))
        t_share = float(tc.get(v, 0)) / max(n_train, 1)
        out.append({"column": col, "value": v, "train_count": int(tc.get(v, 0)), "train_share": t_share,
                    "reference_share": r_share, "ratio": (t_share / r_share) if r_share > 0 else None})
    return out


def _cells(cols: list[str], ref: pd.DataFrame, train: pd.DataFrame) -> list[dict[str, Any]]:
    rs = ref[cols].astype(str).value_counts(normalize=True)
    tc = train[cols].astype(str).value_counts()
    levels = [sorted(set(ref[c].astype(str)) | set(train[c].astype(str))) for c in cols]
    out = []
    for combo in itertools.product(*levels):
        key = combo if len(cols) > 1 else combo[0]
        r_share = float(rs.get(key, 0.0))
        n = int(tc.get(key, 0))
        out.append({"cell": dict(zip(cols, combo, strict=True)), "train_count": n, "reference_share": r_share,
                    "expected_count": r_share * len(train),
                    "ratio": (n / (r_share * len(train))) if r_share > 0 else None})
    return out


def _band_groups(train: pd.DataFrame, reference: pd.DataFrame,
                 cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """A numeric group column with more than 10 values (age) becomes the reference's quartile bands, the same
    bands in both tables (the continuous column itself stays in the coverage and shift tests)."""
    train, reference, banded = train.copy(), reference.copy(), {}
    for c in set(train.columns) & set(reference.columns):  # 2.0 in a float array is the category "2"
        a, b = train[c], reference[c]
        if all(pd.api.types.is_numeric_dtype(v) and v.notna().all() and np.equal(v, np.round(v)).all() for v in (a, b)):
            train[c], reference[c] = a.astype(np.int64), b.astype(np.int64)
    for c in cols:
        if _is_categorical(reference[c], train[c]):
            continue
        edges = np.unique(np.quantile(reference[c].to_numpy(float), np.linspace(0, 1, 5)))
        names = [f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)]

        def band(v: pd.Series, edges: np.ndarray = edges, names: list[str] = names) -> pd.Series:
            idx = np.clip(np.searchsorted(edges, v.to_numpy(float), side="right") - 1, 0, len(names) - 1)
            return pd.Series(np.asarray(names)[idx], index=v.index)

        train[f"{c}_band"], reference[f"{c}_band"] = band(train[c]), band(reference[c])
        banded[c] = f"{c}_band"
    return train, reference, banded


def representativeness(train: pd.DataFrame, reference: pd.DataFrame, groups: list[str] | None = None,
                       label: str | None = None, min_count: int | None = None, n_perm: int = 200,
                       seed: int = 0) -> RepresentativenessResult:
    """Compare ``train`` with ``reference`` (see the module docstring); columns are those both tables share."""
    t0 = time.perf_counter()
    groups = list(groups or [])
    min_count = int(min_count if min_count is not None else THRESHOLDS["min_count"])
    if train.empty or reference.empty:
        raise InvalidInputError("both the training table and the reference need rows")
    for c in [*groups, *([label] if label else [])]:
        for name, df in (("training table", train), ("reference", reference)):
            if c not in df.columns:
                raise InvalidInputError(f"the {name} has no column {c!r}; columns: {', '.join(map(str, df.columns))}")
    train, reference, banded = _band_groups(train, reference, groups)
    groups = [banded.get(g, g) for g in groups]
    common = [c for c in reference.columns if c in train.columns and c != "split" and c not in banded.values()]
    if not common:
        raise InvalidInputError("the training table and the reference share no column")
    coverage, shift = [], []
    for c in common:
        ref_c, tr_c = reference[c].dropna(), train[c].dropna()
        if ref_c.empty or tr_c.empty:
            continue
        cat = _is_categorical(ref_c, tr_c)
        coverage.append(_coverage(c, ref_c, tr_c, cat))
        shift.append(_shift(c, ref_c, tr_c, cat))
    for s in shift:
        s["pvalue_bonferroni"] = min(1.0, s["pvalue"] * len(shift))
    balance = [row for c in [*groups, *([label] if label else [])] for row in _balance(c, reference[c], train[c], len(train))]
    cell_cols = [*groups, *([label] if label and label not in groups else [])]
    cells = _cells(cell_cols, reference, train) if len(cell_cols) >= 2 else []
    res = RepresentativenessResult(len(train), len(reference), groups, label, coverage, balance, cells, shift,
                                   _mmd(reference[common], train[common], n_perm, seed),
                                   params={"min_count": min_count, "thresholds": THRESHOLDS, "n_perm": n_perm,
                                           "seed": seed, "coverage_bins": "reference deciles / categories"})
    res.findings = sorted(_findings(res, min_count), key=lambda f: f.severity.rank, reverse=True)
    res.duration_s = time.perf_counter() - t0
    return res


def _under_p(n: int, total: int, share: float) -> float:
    """One-sided binomial p-value of seeing at most ``n`` of ``total`` rows when the reference share is ``share``
    (small p: the group is under-represented beyond sampling chance)."""
    from scipy.stats import binomtest

    if share <= 0 or total == 0:
        return 1.0
    return float(binomtest(int(n), int(total), min(float(share), 1.0), alternative="less").pvalue)


def _name(cell: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def _findings(r: RepresentativenessResult, min_count: int) -> list[Finding]:
    th, out = THRESHOLDS, []
    rec = ("sample the training set stratified on the under-represented groups (or collect more of them), "
           "then re-run bastion data representativeness")
    for c in r.coverage:
        if c["coverage"] < th["coverage_medium_below"]:
            sev = Severity.HIGH if c["coverage"] < th["coverage_high_below"] else Severity.MEDIUM
            out.append(Finding("data.representativeness.coverage", sev,
                               f"{c['column']}: training data covers {c['coverage']:.0%} of the reference's "
                               f"distribution; not seen: {', '.join(c['missing'][:5])}",
                               evidence=c, recommendation=rec, controls=[ART10_3, ART10_4]))
    for b in r.balance:
        is_label = b["column"] == r.label and b["column"] not in r.groups
        ratio = b["ratio"]
        if ratio is None or ratio >= th["group_ratio_medium_below"] or \
                _under_p(b["train_count"], r.n_train, b["reference_share"]) >= th["under_alpha"]:
            continue
        sev = Severity.HIGH if ratio < th["group_ratio_high_below"] else Severity.MEDIUM
        what = "class" if is_label else "group"
        out.append(Finding(f"data.representativeness.{'class' if is_label else 'group'}_imbalance", sev,
                           f"{what} {b['column']}={b['value']} is {b['train_share']:.0%} of the training data but "
                           f"{b['reference_share']:.0%} of the reference (ratio {ratio:.2f})",
                           evidence=b, recommendation=rec,
                           controls=[ART10_3] if is_label else [ART10_3, MEASURE_2_11]))
    for c in r.cells:
        exp, n, ratio = c["expected_count"], c["train_count"], c["ratio"]
        significant = _under_p(n, r.n_train, c["reference_share"]) < th["under_alpha"]
        if n == 0 and c["reference_share"] >= th["missing_cell_reference_share"] and significant:
            sev, why = Severity.HIGH, f"absent from the training data (the reference predicts {exp:.0f} rows)"
        elif ratio is not None and ratio < th["cell_ratio_medium_below"] and significant:
            sev = Severity.HIGH if ratio < th["cell_ratio_high_below"] else Severity.MEDIUM
            why = f"{n} rows where the reference predicts {exp:.0f} (ratio {ratio:.2f})"
        else:
            continue
        c["flagged"] = True
        out.append(Finding("data.representativeness.intersection", sev, f"intersectional group {_name(c['cell'])}: {why}",
                           evidence=c, recommendation=rec, controls=[ART10_3, MEASURE_2_11]))
    small = [c for c in r.cells if c["train_count"] < min_count and not c.get("flagged")]
    if small:
        out.append(Finding("data.representativeness.small_cells", Severity.LOW,
                           f"{len(small)} intersectional groups have fewer than {min_count} training rows "
                           "(metrics measured on them will be uncertain)",
                           evidence={"cells": [c["cell"] for c in small][:20]}, recommendation=rec,
                           controls=[ART10_3]))
    for s in r.shift:
        if s["pvalue_bonferroni"] >= th["shift_alpha"] or s["psi"] < th["psi_low"]:
            continue
        sev = Severity.MEDIUM if s["psi"] >= th["psi_medium"] else Severity.LOW
        out.append(Finding("data.representativeness.shift", sev,
                           f"{s['column']}: distribution differs from the reference ({s['test']} p={s['pvalue']:.2g}, "
                           f"Bonferroni {s['pvalue_bonferroni']:.2g}; PSI {s['psi']:.2f})",
                           evidence=s, recommendation=rec, controls=[ART10_4, ART10_3]))
    return out
