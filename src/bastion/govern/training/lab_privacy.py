"""Lab 3: measure membership leakage, then train with DP-SGD and show it shrink."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.govern.training.base import Lab, LabCheck, read_json

README = """# Lab 3 — membership inference, then differential privacy

1. Attack the digits demo model: `bastion attack membership --demo digits --format json > {workdir}/membership.json`.
2. Train a DP-SGD model on the digits training set:
   `bastion harden dp --model-spec digits-mlp --data demo:digits --epsilon 3 --delta 1e-5 --out {workdir}/dp_model.pt`
   (the privacy statement `dp_model.pt.privacy.json` is written beside it).
3. Check: `bastion learn check 3 --dir {workdir}` — Bastion re-measures the DP model itself.
ATLAS AML.T0024.000 Infer Training Data Membership; OWASP ML04; GDPR Art. 32.
"""


class PrivacyLab(Lab):
    number = 3
    slug = "membership-then-dp"
    title = "Run a membership-inference attack, then train with differential privacy"
    goal = "measure membership leakage, then ship a DP-SGD model with ε ≤ 8, test accuracy ≥ 0.80, MIA AUC ≤ 0.60"
    readme = README

    def check(self, workdir: Path) -> LabCheck:
        from sklearn.metrics import roc_auc_score

        from bastion.datasets import load_demo_data
        from bastion.defenses.dp import read_privacy_statement
        from bastion.models.loaders import load_model

        mia_p, model_p = workdir / "membership.json", workdir / "dp_model.pt"
        if not mia_p.is_file():
            return LabCheck(3, False, 0.0, "missing membership.json (step 1)")
        auc_before = read_json(mia_p).get("auc")
        if not isinstance(auc_before, int | float):
            raise InvalidInputError(f"{mia_p}: no numeric 'auc' (save the JSON of 'bastion attack membership')")
        if not model_p.is_file():
            return LabCheck(3, False, 0.3, "step 1 done; missing dp_model.pt (step 2)", {"auc_before": auc_before})
        statement = read_privacy_statement(model_p)
        if statement is None:
            return LabCheck(3, False, 0.3, "dp_model.pt has no privacy statement: train it with 'bastion harden dp'")
        model = load_model(model_p)
        d = load_demo_data("digits").splits
        assert d.x_test is not None and d.y_test is not None and d.x_train is not None and d.y_train is not None
        p_tr, p_te = model.predict_proba(d.x_train), model.predict_proba(d.x_test)
        acc = float((p_te.argmax(1) == d.y_test).mean())
        loss_tr = -np.log(np.clip(p_tr[np.arange(len(d.y_train)), d.y_train], 1e-12, 1))
        loss_te = -np.log(np.clip(p_te[np.arange(len(d.y_test)), d.y_test], 1e-12, 1))
        labels = np.r_[np.ones(len(loss_tr)), np.zeros(len(loss_te))]
        auc_after = float(roc_auc_score(labels, -np.r_[loss_tr, loss_te]))
        details = {"auc_before": float(auc_before), "auc_after_loss_threshold": round(auc_after, 4),
                   "test_accuracy": round(acc, 4), "epsilon": statement.epsilon, "delta": statement.delta}
        ok = statement.epsilon <= 8 and statement.delta <= 1e-4 and acc >= 0.8 and auc_after <= 0.6
        return LabCheck(3, ok, 1.0 if ok else 0.5,
                        f"DP model: ε={statement.epsilon:.2f}, test accuracy {acc:.2%}, loss-threshold MIA AUC "
                        f"{auc_after:.3f} (before: {float(auc_before):.3f})"
                        + ("" if ok else " — need ε ≤ 8, δ ≤ 1e-4, accuracy ≥ 80%, AUC ≤ 0.60"), details)
