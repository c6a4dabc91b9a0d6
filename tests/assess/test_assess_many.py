"""``bastion assess-many``: a manifest of models, one report directory each, errors kept per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.assess.fleet import load_manifest
from bastion.core.errors import ConfigError


def test_manifest_validation(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("models:\n  - {name: a, demo: digits}\n  - {name: a, demo: digits}\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_manifest(bad)
    bad.write_text("models:\n  - {name: a, dmeo: digits}\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_manifest(bad)


def test_assess_many_runs_each_model_and_reports_failures(tmp_path: Path) -> None:
    from bastion.cli.main import app, build_app

    build_app()
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(
        "defaults: {profile: quick, only: [supply_chain.scan]}\n"
        "models:\n"
        "  - {name: digits, demo: digits}\n"
        "  - {name: cancer, demo: breast-cancer-sklearn}\n"
        "  - {name: missing, model: nowhere.onnx, data: nothing.npz}\n"
    )
    res = CliRunner().invoke(app, ["assess-many", str(manifest), "--out", str(tmp_path / "out"), "--format", "json"])
    assert res.exit_code == 2, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["digits"]["status"] == "ok" and rows["cancer"]["status"] == "ok"
    assert rows["missing"]["status"] == "error" and "does not exist" in rows["missing"]["error"]
    for name in ("digits", "cancer"):
        doc = json.loads((tmp_path / "out" / name / "assessment.json").read_text())
        assert [r["check_id"] for r in doc["results"]] == ["supply_chain.scan"]
