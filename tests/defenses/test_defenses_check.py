"""The adaptive defence check: a squeezing-only wrapper is reported as masking gradients, never robust."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bastion.assess.checks.defenses import adaptive_defense_check
from bastion.assess.registry import CheckContext
from bastion.core.severity import Severity, Status
from bastion.core.target import DataSplits, Target
from bastion.defenses.sanitizers import FeatureSqueezing, defense_block, save_model
from bastion.models.loaders import load_model
from bastion.models.zoo import demo_target


def test_squeezing_only_defence_is_flagged_as_gradient_masking(tmp_path: Path) -> None:
    demo = demo_target("digits")
    wrapper = FeatureSqueezing(demo.model.module, bit_depth=1, median_kernel=0)  # type: ignore[attr-defined]
    path = tmp_path / "squeezed.pt"
    save_model(wrapper, path, demo.model.input_spec, 10, defense=defense_block("feature_squeezing", {"bit_depth": 1}))
    model = load_model(path)
    assert getattr(model, "module").bastion_defense == "feature_squeezing"
    x, y = demo.data.x_test, demo.data.y_test
    assert x is not None and y is not None
    target = Target("squeezed", model, DataSplits(x_test=np.asarray(x[:48]), y_test=np.asarray(y[:48])),
                    demo.metadata, model_path=str(path))
    check = adaptive_defense_check
    assert check.applies(target) and not check.applies(demo)

    result = check.run(target, CheckContext(profile="quick", options={"reference_eps": 0.15}))

    m = result.metrics
    assert m["adaptive_attack"] == "bpda-pgd"
    assert m["robust_accuracy"] <= m["adaptive_robust_accuracy"] < m["naive_robust_accuracy"]
    assert m["gradient_masking"] and result.status == Status.FAIL
    masking = [f for f in result.findings if f.id == "defenses.gradient_masking"]
    assert masking and masking[0].severity == Severity.HIGH
    assert "bastion harden adversarial-training" in masking[0].recommendation
    assert result.artifacts["defense_adaptive.png"][:4] == b"\x89PNG"


def test_lid_detector_is_attacked_detector_aware_and_reported_bypassed(tmp_path: Path) -> None:
    from bastion.defenses.sanitizers import LIDDetector, calibrate_threshold

    demo = demo_target("digits")
    x_tr, y_tr = demo.data.x_train, demo.data.y_train
    assert x_tr is not None and y_tr is not None
    det = LIDDetector.fit(demo.model.module, x_tr[:600], y_tr[:600], eps=0.15, n_reference=200, n_fit=200)  # type: ignore[attr-defined]
    thr = calibrate_threshold(det, x_tr[600:], fpr=0.05)
    path = tmp_path / "lid.pt"
    save_model(det, path, demo.model.input_spec, 10, defense=defense_block("lid_detector", {"threshold": thr}))
    model = load_model(path)
    x, y = demo.data.x_test, demo.data.y_test
    assert x is not None and y is not None
    target = Target("lid", model, DataSplits(x_test=np.asarray(x[:48]), y_test=np.asarray(y[:48])),
                    demo.metadata, model_path=str(path))
    result = adaptive_defense_check.run(target, CheckContext(profile="quick", options={"reference_eps": 0.15}))
    m = result.metrics
    assert m["defense"] == "lid_detector" and 0.0 <= m["detection_auc"] <= 1.0
    assert m["robust_accuracy"] <= m["naive_robust_accuracy"]
    # a detector never makes the model robust: the detector-aware attack evades it on many inputs
    assert m["adaptive_evasion_rate"] >= 0.3
    assert any(f.id == "defenses.detector_bypassed" and f.severity == Severity.HIGH for f in result.findings)
