"""The explain checks: sensitive-feature reliance finding, SHAP artifacts, adversarial attribution shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bastion.assess.checks.explain import adversarial_attribution_check, sensitive_feature_check, shap_check
from bastion.assess.registry import CheckContext
from bastion.core.model import InputSpec
from bastion.core.severity import Severity, Status
from bastion.core.target import DataSplits, Target, TargetMetadata
from bastion.models.adapters import SklearnAdapter
from bastion.models.zoo import demo_target

NAMES = ["income", "age", "gender", "tenure"]


def _target(relies_on_gender: bool, sensitive: list[str]) -> Target:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    logit = 2 * x[:, 0] + (3 * x[:, 2] if relies_on_gender else 0.0)
    y = (logit + 0.2 * rng.normal(size=400) > 0).astype(np.int64)
    model = SklearnAdapter(LogisticRegression().fit(x[:300], y[:300]), InputSpec(shape=(4,)))
    meta = TargetMetadata(data_kind="tabular", feature_names=NAMES, sensitive_features=sensitive,
                          class_names=["deny", "grant"])
    return Target("credit", model, DataSplits(x[:300], y[:300], x[300:], y[300:]), meta)


def test_sensitive_feature_finding_fires_with_attribution_share() -> None:
    check = sensitive_feature_check
    target = _target(relies_on_gender=True, sensitive=["gender"])
    assert check.applies(target)
    result = check.run(target, CheckContext(profile="quick"))
    assert result.status in (Status.FAIL, Status.WARN)
    finding = result.findings[0]
    assert finding.severity >= Severity.MEDIUM and finding.evidence["share"] > 0.3
    assert result.metrics["rank"]["gender"] == 1


def test_sensitive_feature_check_passes_when_not_relied_on() -> None:
    target = _target(relies_on_gender=False, sensitive=["gender"])
    result = sensitive_feature_check.run(target, CheckContext(profile="quick"))
    assert result.status == Status.PASS and result.metrics["sensitive_share"] < 0.05
    assert not sensitive_feature_check.applies(_target(False, sensitive=[]))


def test_shap_check_renders_summary_and_local_plots() -> None:
    result = shap_check.run(_target(True, ["gender"]), CheckContext(profile="quick"))
    assert {"shap_summary.png", "local_shap_row0.png", "local_lime_row0.png"} <= set(result.artifacts)
    assert all(png[:4] == b"\x89PNG" for png in result.artifacts.values())
    assert result.metrics["top_features"][0]["feature"] == "gender"


def test_shap_check_on_images_adds_lime_superpixels() -> None:
    result = shap_check.run(demo_target("digits"), CheckContext(profile="quick", options={"explain_samples": 8}))
    assert {"shap_attribution_maps.png", "local_lime_row0.png"} <= set(result.artifacts)
    lime = result.metrics["local_row0"]["lime"]
    assert lime["method"] == "lime_image" and lime["segments"] == 64 and lime["top_segments"]


@pytest.mark.slow
def test_adversarial_attribution_shift_on_digits() -> None:
    target = demo_target("digits")
    result = adversarial_attribution_check.run(target, CheckContext(profile="quick", options={"explain_samples": 32}))
    m = result.metrics
    assert 0.0 <= m["top10pct_overlap_mean"] <= 1.0 and m["fooled_fraction"] > 0.2
    assert m["cosine_similarity_mean"] < 0.999
    assert "attributions_clean_vs_adversarial.png" in result.artifacts
