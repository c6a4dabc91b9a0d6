"""Fixtures for the assessment tests: tiny models saved in every format, and test-only checks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.assess.registry import CHECKS, CheckContext, Profile, register_check
from bastion.core.results import CheckResult, Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target


def tiny_cnn_module() -> nn.Sequential:
    """Conv + BatchNorm + pools + Linear: exercises most of the ONNX converter's ops.

    Built from stock torch layers: the supply-chain scanner treats TorchScript classes defined
    in test modules (``__torch__.tests.*``) as untrusted, as it should.
    """
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    )


@pytest.fixture(scope="module")
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    m = tiny_cnn_module()
    bn = m[1]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def saved_models(tiny_cnn: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same TinyCNN as TorchScript, torch.export (.pt2) and ONNX files."""
    d = tmp_path_factory.mktemp("models")
    x = torch.rand(4, 1, 8, 8)
    paths = {"torchscript": d / "cnn.pt", "torch-export": d / "cnn.pt2", "onnx": d / "cnn.onnx"}
    torch.jit.save(torch.jit.script(tiny_cnn), str(paths["torchscript"]))
    ep = torch.export.export(tiny_cnn, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(ep, str(paths["torch-export"]))
    torch.onnx.export(tiny_cnn, (x,), str(paths["onnx"]), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return paths


@pytest.fixture(scope="module")
def image_npz(tmp_path_factory: pytest.TempPathFactory, tiny_cnn: nn.Module) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        y = tiny_cnn(torch.from_numpy(x)).argmax(1).numpy()
    p = tmp_path_factory.mktemp("data") / "eval.npz"
    np.savez(p, x=x, y=y)
    return p


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
