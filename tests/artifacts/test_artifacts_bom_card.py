"""CycloneDX 1.6 ML-BOM (schema-validated) and the Markdown/HTML model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.artifacts.bom import build_bom, validate_bom
from bastion.artifacts.card import CardInfo, render_card
from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.results import Assessment, CheckResult, Finding
from bastion.core.severity import Severity, Status


@pytest.fixture
def assessment_file(tmp_path: Path) -> Path:
    res = CheckResult("evasion.pgd_linf", "PGD", Status.WARN, metrics={"robust_accuracy": 0.4375, "clean_accuracy": 0.97},
                      params={"eps": 0.1, "steps": 20, "seed": 0},
                      findings=[Finding("evasion.low", Severity.HIGH, "robust accuracy <script>x</script> low",
                                        recommendation="bastion harden adversarial-training")])
    a = Assessment(target={"name": "demo:digits", "model_format": "torchscript", "n_classes": 10, "white_box": True,
                           "input_spec": {"shape": [1, 8, 8], "dtype": "float32", "clip_min": 0.0, "clip_max": 1.0},
                           "metadata": {"data_kind": "image"},
                           "fingerprints": {"model": "ab" * 32, "data": "cd" * 32}},
                   profile="quick", seed=0, results=[res])
    p = tmp_path / "assessment.json"
    p.write_text(json.dumps(a.to_dict()))
    return p


def test_bom_is_valid_cyclonedx_16_with_model_card(corpus: dict[str, Any], assessment_file: Path) -> None:
    doc = build_bom(corpus["benign"]["state_dict.pt"], assessment=assessment_file)
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    comps = {c["bom-ref"]: c for c in doc["components"]}
    model = comps["model"]
    assert model["type"] == "machine-learning-model" and model["hashes"][0]["alg"] == "SHA-256"
    assert comps["dataset-data"]["hashes"][0]["content"] == "cd" * 32
    assert "pypi-torch" in comps
    metrics = {m["type"]: m for m in model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics["evasion.pgd_linf.robust_accuracy"]["value"] == "0.4375"
    assert "eps=0.1" in metrics["evasion.pgd_linf.robust_accuracy"]["slice"]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert {"dataset-data", "pypi-torch"} <= set(deps["model"])
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert props["bastion:scan:verdict"] == "safe"


def test_bom_schema_validation_rejects_broken_documents(corpus: dict[str, Any]) -> None:
    doc = build_bom(corpus["benign"]["random_forest.joblib"])
    validate_bom(doc)
    doc["components"][0]["type"] = "not-a-type"
    with pytest.raises(InvalidInputError, match=r"CycloneDX 1\.6"):
        validate_bom(doc)


def test_bom_of_directory_lists_files(corpus: dict[str, Any]) -> None:
    doc = build_bom(corpus["benign"]["state_dict.pt"].parent)
    model = next(c for c in doc["components"] if c["bom-ref"] == "model")
    assert len(model["components"]) == len(corpus["benign"])


def test_model_card_markdown_and_html(tmp_path: Path, corpus: dict[str, Any], assessment_file: Path) -> None:
    info = tmp_path / "card.yaml"
    info.write_text("model_details: {name: digits-mlp, owners: ML team}\n"
                    "intended_use: {primary_uses: [demos]}\nfactors: [stroke width]\ncaveats: 8x8 inputs only\n")
    md, html = render_card(model=corpus["benign"]["state_dict.pt"], assessment=assessment_file, info=info)
    for section in ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                    "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"):
        assert f"## {section}" in md and f"<h2>{section}</h2>" in html
    assert "| evasion.pgd_linf.robust_accuracy | 0.4375 |" in md
    assert "digits-mlp" in md and "stroke width" in html and "8x8 inputs only" in md
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "bastion harden adversarial-training" in md


def test_card_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_detials: {name: x}\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        CardInfo.from_yaml(bad)
    with pytest.raises(InvalidInputError):
        render_card()


def test_bom_and_card_cli(tmp_path: Path, corpus: dict[str, Any], assessment_file: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["model", "bom", str(corpus["benign"]["model.onnx"]), "--assessment", str(assessment_file),
              "--format", "cyclonedx-json"])
    assert exc.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert any(c["name"] == "onnxruntime" for c in doc["components"])
    with pytest.raises(SystemExit) as exc:
        main(["model", "card", "--assessment", str(assessment_file), "--out", str(tmp_path / "card"),
              "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert Path(out["markdown"]).is_file() and Path(out["html"]).is_file()
