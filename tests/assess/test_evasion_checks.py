"""The evasion checks on demo targets: curve falls with eps, masking is flagged, black-box targets work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from bastion.assess.checks.evasion import (
    CONTROLS,
    gradient_masking_check,
    robustness_curve_check,
    severity_for,
    worst_case_check,
)
from bastion.assess.registry import CheckContext, load_checks
from bastion.attacks.evasion import run_evasion
from bastion.core.model import InputSpec
from bastion.core.severity import Severity, Status
from bastion.core.target import Target
from bastion.models.adapters import TorchAdapter
from bastion.models.zoo import demo_target


class Quantised(nn.Module):
    """Rounds inputs to 5 grey levels before the network: gradients are zero, the model is not robust."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 4) / 4)


@pytest.fixture(scope="module")
def digits() -> Target:
    return demo_target("digits")


def ctx(**options: object) -> tuple[CheckContext, list[tuple[float, float]]]:
    calls: list[tuple[float, float]] = []
    c = CheckContext(profile="quick", seed=0, options=dict(options),
                     progress=lambda done, total: calls.append((done, total)))
    return c, calls


def test_checks_are_registered() -> None:
    checks = load_checks()
    assert {"evasion.robustness_curve", "evasion.worst_case", "evasion.gradient_masking"} <= set(checks)


def test_controls_are_real_atlas_ids_and_in_the_catalog(shared_dir: Path) -> None:
    from bastion.govern.catalog import is_known_ref

    atlas = yaml.safe_load((shared_dir / "data" / "mitre-atlas" / "ATLAS.yaml").read_text())
    ids = {t["id"] for m in atlas["matrices"] for t in m.get("techniques", [])}
    ids |= {t["id"] for t in atlas.get("techniques", [])}
    for ref in CONTROLS:
        assert is_known_ref(ref), ref
        if ref.startswith("mitre-atlas:"):
            assert ref.split(":", 1)[1] in ids


def test_robust_accuracy_falls_with_eps_on_digits(digits: Target) -> None:
    # reference budget 0.3, where the drop is far past the HIGH threshold whatever the exact weights
    # (the cached demo model's weights differ in the last bits with the thread count it was trained with)
    c, calls = ctx(samples=60, eps=[0.02, 0.1, 0.3], reference_eps=0.3)
    res = robustness_curve_check.run(digits, c)
    accs = [p["robust_accuracy"] for p in res.metrics["curve"]]
    assert [p["eps"] for p in res.metrics["curve"]] == [0.02, 0.1, 0.3]
    assert accs[0] > accs[1] > accs[2]
    assert accs[2] <= 0.05
    assert res.metrics["robust_accuracy"] == accs[2] < res.metrics["clean_accuracy"]
    assert res.artifacts["robustness_curve.png"].startswith(b"\x89PNG")
    assert res.artifacts["adversarial_examples.png"].startswith(b"\x89PNG")
    assert res.status == Status.FAIL and res.findings[0].severity >= Severity.HIGH
    assert "bastion harden adversarial-training --demo digits --model-spec digits-mlp" in res.findings[0].recommendation
    assert res.params["samples"] == 60 and res.params["steps"] == 10 and res.params["seed"] == 0
    assert calls and calls[-1][0] == calls[-1][1]


def test_pgd_beats_fgsm_on_digits(digits: Target) -> None:
    x, y = digits.data.eval_split()
    fgsm = run_evasion(digits.model, x, y, "fgsm", "linf", 0.1, samples=150)
    pgd = run_evasion(digits.model, x, y, "pgd", "linf", 0.1, samples=150)
    assert pgd.robust_accuracy < fgsm.robust_accuracy


def test_masking_model_is_flagged_high_and_square_breaks_it(digits: Target) -> None:
    masked = Quantised(digits.model.module)  # type: ignore[attr-defined]
    target = Target(name="masked-digits", model=TorchAdapter(masked, digits.model.input_spec, n_classes=10),
                    data=digits.data, metadata=digits.metadata)
    c, _ = ctx(samples=60, masking_samples=60)
    res = gradient_masking_check.run(target, c)
    ids = {f.id for f in res.findings}
    assert "evasion.gradient_masking.zero_or_nan_gradients" in ids
    assert "evasion.gradient_masking.blackbox_beats_whitebox" in ids
    assert res.status == Status.FAIL
    assert any(f.severity == Severity.HIGH and "gradient masking" in f.title.lower() for f in res.findings)
    assert res.metrics["blackbox_success_rate"] > res.metrics["whitebox_success_rate"]
    # the honest model gets no high flag
    honest = gradient_masking_check.run(digits, ctx(samples=60, masking_samples=60)[0])
    assert not any(f.severity == Severity.HIGH for f in honest.findings)


def test_black_box_sklearn_target_uses_square(digits: Target) -> None:
    target = demo_target("breast-cancer-sklearn")
    assert not gradient_masking_check.applies(target)
    c, _ = ctx(samples=40)
    res = worst_case_check.run(target, c)
    assert res.metrics["ensemble"] == ["square"]
    assert res.metrics["robust_accuracy"] < res.metrics["clean_accuracy"]
    assert res.params["eps_scale_unit"] == "per-feature std"


def test_hsj_on_sklearn_demo_is_label_only_and_bounded() -> None:
    target = demo_target("breast-cancer-sklearn")
    x, y = target.data.eval_split()
    r = run_evasion(target.model, x, y, "hsj", "l2", 3.0, steps=8, samples=15)
    assert r.robust_accuracy < r.clean_accuracy
    assert np.linalg.norm((r.x_adv - x[:15]).reshape(15, -1), axis=1).max() <= 3.0 + 1e-4
    assert r.queries is not None and r.queries > 0


@pytest.mark.parametrize(("clean", "robust", "expected"), [
    (0.9, 0.1, Severity.HIGH), (0.9, 0.6, Severity.MEDIUM), (0.9, 0.8, Severity.LOW), (0.9, 0.88, None),
    (0.0, 0.0, None),
])
def test_severity_thresholds(clean: float, robust: float, expected: Severity | None) -> None:
    assert severity_for(clean, robust) == expected


def test_tabular_grid_scales_with_feature_std() -> None:
    from bastion.assess.checks.evasion import plan_for

    target = demo_target("breast-cancer")
    plan = plan_for(target, ctx()[0])
    assert target.model.input_spec.clip_min is None
    assert 0.5 < plan.scale < 1.5  # standardised features
    assert plan.reference_eps == pytest.approx(0.1 * plan.scale, rel=1e-4)
    spec = InputSpec(shape=(1, 8, 8), clip_min=0.0, clip_max=2.0)
    t2 = Target(name="x", model=TorchAdapter(demo_target("digits").model.module, spec, n_classes=10),  # type: ignore[attr-defined]
                data=demo_target("digits").data)
    assert plan_for(t2, ctx()[0]).reference_eps == pytest.approx(0.2)
