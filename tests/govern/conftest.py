"""Fixtures for governance tests: a synthetic assessment file and a questionnaire writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bastion.core.results import Assessment, CheckResult, Finding
from bastion.core.severity import Severity, Status


def make_assessment(robust_accuracy: float = 0.12, mia_auc: float = 0.52, created_at: str = "2026-01-01T00:00:00+00:00") -> Assessment:
    evasion = CheckResult(
        check_id="evasion.robustness", title="Robustness curve", status=Status.FAIL,
        metrics={"robust_accuracy": robust_accuracy, "clean_accuracy": 0.97},
        params={"eps": 0.1, "steps": 10, "samples": 64, "seed": 0},
        findings=[Finding("evasion.low_robustness", Severity.HIGH, "Robust accuracy collapses at eps=0.1",
                          {"robust_accuracy": robust_accuracy}, "bastion harden adversarial-training",
                          ["mitre-atlas:AML.T0015", "owasp-ml:ML01:2023"])],
        controls=["mitre-atlas:AML.T0015", "eu-ai-act:Art15(5)"],
    )
    mia = CheckResult(check_id="privacy.membership", title="Membership inference", status=Status.PASS,
                      metrics={"auc": mia_auc}, params={"samples": 200, "seed": 0})
    scan = CheckResult(check_id="supply_chain.scan", title="Model file scan", status=Status.PASS)
    target = {"name": "digits", "model_format": "torchscript", "model_path": "/models/digits.pt", "n_classes": 10,
              "white_box": True, "input_spec": {"shape": [1, 8, 8], "dtype": "float32", "clip_min": 0.0, "clip_max": 1.0},
              "n_train": 1347, "n_test": 450, "data_path": "builtin:digits",
              "fingerprints": {"model": "ab" * 32, "data": "cd" * 32}}
    return Assessment(target=target, profile="quick", seed=0, results=[evasion, mia, scan],
                      created_at=created_at)


@pytest.fixture
def assessment_file(tmp_path: Path) -> Path:
    p = tmp_path / "run" / "assessment.json"
    p.parent.mkdir()
    p.write_text(json.dumps(make_assessment().to_dict()))
    return p


@pytest.fixture
def write_answers(tmp_path: Path) -> Callable[[dict], Path]:
    def write(doc: dict) -> Path:
        p = tmp_path / f"answers-{len(list(tmp_path.glob('answers-*')))}.yaml"
        p.write_text(yaml.safe_dump(doc))
        return p

    return write


@pytest.fixture
def assessment_factory() -> Callable[..., Assessment]:
    return make_assessment


class CliResult:
    def __init__(self, code: int, stdout: str, output: str) -> None:
        self.exit_code, self.stdout, self.output = code, stdout, output


@pytest.fixture
def cli() -> Callable[[list[str]], CliResult]:
    """Invoke ``bastion`` in-process the way ``bastion.cli.main.main`` does (BastionError → its exit code)."""
    from typer.testing import CliRunner

    from bastion.cli.main import build_app
    from bastion.core.errors import BastionError

    app = build_app()
    runner = CliRunner()

    def invoke(args: list[str]) -> CliResult:
        res = runner.invoke(app, args)
        code = res.exception.exit_code if isinstance(res.exception, BastionError) else res.exit_code
        return CliResult(code, res.stdout, res.output)

    return invoke
