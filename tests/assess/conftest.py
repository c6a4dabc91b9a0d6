"""Fixtures for the assessment tests: test-only checks, the digits demo target, a progress recorder (the tiny
models live in ``tests/conftest.py``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bastion.assess.registry import CHECKS, Check, CheckContext, Profile, register_check
from bastion.assess.target import build_target
from bastion.core.results import CheckResult, Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target


@dataclass
class FakeCheck:
    """A test-only check; ``profiles=()`` keeps it out of every profile (selected with ``only``)."""

    id: str
    title: str = "Fake check"
    controls: list[str] = field(default_factory=lambda: ["owasp-ml:ML01:2023"])
    profiles: tuple[Profile, ...] = ()
    severity: Severity | None = Severity.HIGH
    boom: bool = False
    with_png: bool = True

    def applies(self, target: Target) -> bool:
        return True

    def run(self, target: Target, ctx: CheckContext) -> CheckResult:
        if self.boom:
            raise RuntimeError("the attack diverged")
        for i in range(3):
            ctx.progress(i + 1, 3)
        x, y = target.data.eval_split()
        acc = float((target.model.predict_proba(x[:20]).argmax(1) == y[:20]).mean())
        curve = [{"eps": e, "robust_accuracy": max(0.0, acc - 2 * e)} for e in (0.0, 0.1, 0.2, 0.3)]
        findings = []
        if self.severity is not None:
            findings.append(Finding(
                id=f"{self.id}.weak", severity=self.severity, title="Accuracy collapses under small perturbations",
                evidence={"clean_accuracy": acc, "robust_accuracy": curve[-1]["robust_accuracy"], "eps": 0.3},
                recommendation="bastion harden adversarial-training --model M --data D",
                controls=["mitre-atlas:AML.T0015", "owasp-ml:ML01:2023"],
            ))
        artifacts = {}
        if self.with_png:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([p["eps"] for p in curve], [p["robust_accuracy"] for p in curve])
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
            artifacts["robustness_curve.png"] = buf.getvalue()
        return CheckResult(
            check_id=self.id, title=self.title, status=Status.FAIL if findings else Status.PASS,
            metrics={"clean_accuracy": acc, "robust_accuracy": curve[-1]["robust_accuracy"], "curve": curve},
            params={"eps": [p["eps"] for p in curve], "samples": 20, "seed": ctx.seed, "options": dict(ctx.options)},
            findings=findings, artifacts=artifacts, summary=f"accuracy {acc:.2f} → {curve[-1]['robust_accuracy']:.2f}",
        )


class ProgressRecorder:
    """A ``ProgressReporter`` that writes down every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, check: Check) -> None:
        self.events.append(("started", check.id))

    def progress(self, check_id: str, done: float, total: float) -> None:
        self.events.append(("progress", f"{check_id}:{done:g}/{total:g}"))

    def finished(self, result: CheckResult) -> None:
        self.events.append(("finished", result.check_id))


@pytest.fixture
def recorder() -> ProgressRecorder:
    return ProgressRecorder()


@pytest.fixture(scope="module")
def digits_target() -> Target:
    return build_target(demo="digits")


@pytest.fixture
def fake_checks() -> Iterator[dict[str, FakeCheck]]:
    """Register test-only checks under ``test_assess.*`` and remove them afterwards."""
    checks = {
        "weak": FakeCheck("test_assess.weak"),
        "boom": FakeCheck("test_assess.boom", title="Exploding check", boom=True),
        "clean": FakeCheck("test_assess.clean", title="Clean check", severity=None, with_png=False),
    }
    for c in checks.values():
        register_check(c)
    try:
        yield checks
    finally:
        for c in checks.values():
            CHECKS.pop(c.id, None)
