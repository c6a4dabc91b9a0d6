"""Data checks run by ``bastion assess`` when the target has training data.

- ``data.label_quality`` — confident learning (out-of-fold SVM probabilities, cleanlab
  label quality): share of training labels that look flipped.
- ``data.poisoning`` — backdoor screening of the training set with the target's own model:
  STRIP entropy + activation clustering + spectral signatures (white-box torch models).
- ``data.anomalies`` — IsolationForest over the training features: share of outlying rows.
- ``data.pii`` — PII in a tabular data file (CSV/TSV/Parquet ``data_path``), offline Presidio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check
from bastion.core.results import Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

POISON_CONTROLS = ["mitre-atlas:AML.T0020", "mitre-atlas:AML.M0007", "owasp-ml:ML02:2023", "eu-ai-act:Art10",
                   "eu-ai-act:Art15(5)", "nist-ai-rmf:MEASURE-2.7"]
BACKDOOR_CONTROLS = ["mitre-atlas:AML.T0020", "mitre-atlas:AML.T0043.004", "mitre-atlas:AML.M0007",
                     "owasp-ml:ML02:2023", "eu-ai-act:Art15(5)", "nist-ai-rmf:MEASURE-2.7"]
ANOMALY_CONTROLS = ["mitre-atlas:AML.M0007", "owasp-ml:ML02:2023", "eu-ai-act:Art10(2)"]
PII_CONTROLS = ["gdpr:Art5", "gdpr:Art25", "gdpr:Art32", "eu-ai-act:Art10(5)"]


def _train(target: Target) -> tuple[np.ndarray, np.ndarray]:
    x, y = target.data.x_train, target.data.y_train
    assert x is not None and y is not None
    return np.asarray(x, dtype=np.float32), np.asarray(y).astype(np.int64)


def _subsample(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(len(y))
    if len(y) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
    return x[idx], y[idx], idx


@check(id="data.label_quality", title="Training-label quality (confident learning: flipped or mislabelled samples)",
       controls=POISON_CONTROLS, profiles=("standard", "thorough"),
       applies=lambda target: target.data.has_train and target.metadata.task == "classification")
def label_quality_check(target: Target, ctx: CheckContext) -> Outcome:
    from bastion.data.poisoning import label_quality

    limit = int(ctx.option("label_quality_samples", 3000 if ctx.profile == "standard" else 20000))
    margin = float(ctx.option("label_margin", 0.5))
    x, y, idx = _subsample(*_train(target), limit=limit, seed=ctx.seed)
    probs = label_quality(x, y, max(target.model.n_classes, int(y.max()) + 1), seed=ctx.seed)
    ar = np.arange(len(y))
    other = probs.copy()
    other[ar, y] = -1
    gap = other.max(1) - probs[ar, y]
    flagged = idx[gap > margin]
    share = len(flagged) / max(len(y), 1)
    findings = []
    if share > 0.01:
        findings.append(Finding(
            id="data.label_quality.suspect_labels",
            severity=Severity.HIGH if share > 0.05 else Severity.MEDIUM,
            title=f"{len(flagged)} training labels ({share:.1%}) look flipped or wrong",
            evidence={"flagged_indices": flagged[:200].tolist(), "share": round(share, 4)},
            recommendation="review or drop them: `bastion data poison DATA.npz --format json` ranks every suspect",
            controls=POISON_CONTROLS,
        ))
    return Outcome(
        Status.WARN if findings else Status.PASS, f"{len(flagged)} of {len(y)} labels suspect ({share:.1%})",
        metrics={"suspect_label_share": round(share, 4), "suspect_labels": len(flagged), "samples": len(y)},
        params={"label_margin": margin, "samples": len(y), "seed": ctx.seed, "classifier": "svm-rbf out-of-fold"},
        findings=findings,
    )


@check(id="data.poisoning",
       title="Backdoor screening of the training set (STRIP + activation clustering + spectral signatures)",
       controls=BACKDOOR_CONTROLS, profiles=("standard", "thorough"),
       applies=lambda target: target.data.has_train and target.is_white_box)
def backdoor_check(target: Target, ctx: CheckContext) -> Outcome:
    from bastion.data.poisoning import PoisonConfig, detect_poisoning

    limit = int(ctx.option("poisoning_samples", 4000 if ctx.profile == "standard" else 50000))
    x, y, idx = _subsample(*_train(target), limit=limit, seed=ctx.seed)
    spec = target.model.input_spec
    cfg = PoisonConfig(seed=ctx.seed, confident_learning=False, loss_dynamics=bool(ctx.option("loss_dynamics", False)),
                       strip_overlays=int(ctx.option("strip_overlays", 4 if ctx.profile == "standard" else 8)))
    rep = detect_poisoning(x, y, model=target.model, n_classes=target.model.n_classes, config=cfg,
                           clip=(spec.clip_min, spec.clip_max))
    flagged = idx[np.asarray(rep.flagged_indices, dtype=np.int64)] if rep.flagged_indices else np.zeros(0, int)
    findings = []
    artifacts: dict[str, bytes] = {}
    if rep.suspicious_classes:
        findings.append(Finding(
            id="data.poisoning.backdoor",
            severity=Severity.CRITICAL,
            title=f"Backdoor suspected: {len(flagged)} training samples of class(es) {rep.suspicious_classes} "
                  "keep their prediction under input perturbation (trigger behaviour)",
            evidence={"suspicious_classes": rep.suspicious_classes, "flagged_indices": flagged[:200].tolist(),
                      "activation_clustering": rep.details.get("activation_clustering", {}).get("classes", [])},
            recommendation="remove the flagged samples and retrain: `bastion data poison DATA.npz --out triage/` "
                           "lists them with saliency maps of the trigger",
            controls=BACKDOOR_CONTROLS,
        ))
        module = getattr(target.model, "module", None)
        if module is not None and x.ndim >= 3:
            from bastion.data.poisoning import trigger_saliency_png

            artifacts["trigger_saliency.png"] = trigger_saliency_png(module, x, y, rep.flagged_indices)
    return Outcome(
        Status.FAIL if findings else Status.PASS,
        f"{len(flagged)} samples flagged; suspicious classes {rep.suspicious_classes or 'none'}",
        metrics={"flagged_samples": len(flagged), "flagged_share": round(len(flagged) / max(len(y), 1), 4),
                 "suspicious_classes": rep.suspicious_classes,
                 "strip_median_entropy": rep.details["strip"]["median_entropy"],
                 "class_p_values": {str(c): float(f"{p:.3g}") for c, p in rep.class_p_values.items()}},
        params={**rep.params, "samples": len(y)}, findings=findings, artifacts=artifacts,
    )


@check(id="data.anomalies", title="Outlying training rows (IsolationForest)", controls=ANOMALY_CONTROLS,
       applies=lambda target: target.data.has_train and target.metadata.data_kind == "tabular")
def anomaly_check(target: Target, ctx: CheckContext) -> Outcome:
    import pandas as pd

    from bastion.data.validation import score_anomalies

    x, _ = _train(target)
    names = target.metadata.feature_names or [f"f{i}" for i in range(x.reshape(len(x), -1).shape[1])]
    df = pd.DataFrame(x.reshape(len(x), -1), columns=names[: x.reshape(len(x), -1).shape[1]])
    rep = score_anomalies(df, top=10, seed=ctx.seed)
    share = rep["outlier_share"]
    severe = [r for r in rep["top"] if any("range" in w["why"] or "extremely" in w["why"] for w in r["reasons"])]
    findings = []
    if severe:
        findings.append(Finding(
            id="data.anomalies.extreme_rows", severity=Severity.LOW,
            title=f"{len(severe)} training rows have extreme feature values",
            evidence={"rows": severe[:10]},
            recommendation="inspect them: `bastion data anomalies TRAIN.csv --format json`",
            controls=ANOMALY_CONTROLS,
        ))
    return Outcome(Status.WARN if findings else Status.PASS,
                   f"{rep['n_outliers']} of {rep['n_rows']} rows outlying ({share:.1%})",
                   metrics={"outlier_share": share, "outliers": rep["n_outliers"]}, params=rep["params"],
                   findings=findings)


def _has_table(target: Target) -> bool:
    p = target.data_path
    return bool(p) and Path(str(p)).suffix.lower() in (".csv", ".tsv", ".parquet") and Path(str(p)).is_file()


@check(id="data.pii", title="Personal data in the training table (offline Presidio)", controls=PII_CONTROLS,
       applies=_has_table)
def pii_check(target: Target, ctx: CheckContext) -> Outcome:
    from bastion.data.privacy.pii import scan_dataframe
    from bastion.data.tables import read_table

    sample = int(ctx.option("pii_sample", 200 if ctx.profile == "quick" else 1000))
    rep: dict[str, Any] = scan_dataframe(read_table(str(target.data_path), text=True), sample=sample, seed=ctx.seed)
    findings = [
        Finding(
            id="data.pii.column", severity=Severity.HIGH if set(c["entities"]) & {"US_SSN", "CREDIT_CARD",
                                                                                   "IBAN_CODE"} else Severity.MEDIUM,
            title=f"column {c['column']} holds {', '.join(c['entities'])}",
            evidence={"column": c["column"], "entities": c["entities"]},
            recommendation=f"anonymise it: `bastion data pii {target.data_path} --suggest-policy policy.yaml`, review, "
                           f"then `bastion data anonymize {target.data_path} --policy policy.yaml --out OUT`",
            controls=PII_CONTROLS,
        )
        for c in rep["columns"] if c["contains_pii"]
    ]
    return Outcome(
        Status.FAIL if findings else Status.PASS, f"PII in {len(rep['pii_columns'])} column(s)",
        metrics={"pii_columns": len(rep["pii_columns"]), "sporadic_columns": len(rep["sporadic_columns"]),
                 "entity_counts": rep["entity_counts"]},
        params=rep["params"], findings=findings,
    )
