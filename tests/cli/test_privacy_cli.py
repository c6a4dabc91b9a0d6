"""`bastion attack membership|attribute|inversion|extraction` and `bastion harden dp` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.cli.main import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_membership_json_keys_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["attack", "membership", "--demo", "digits", "--max-records", "300", "--n-reference", "8",
                       "--out", str(tmp_path), "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0
    for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "balanced_accuracy", "params"):
        assert key in doc
    assert doc["tpr_at_0_1pct_fpr"] is None  # 300 non-members cannot resolve 0.1% FPR
    assert doc["params"]["method"] == "lira" and doc["params"]["n_nonmembers"] == 300  # the default attack
    assert doc["params"]["reference_arch"].startswith("clone:") and doc["params"]["n_reference"] == 8
    assert {p.name for p in tmp_path.iterdir()} == {"result.json", "roc.png", "roc_log.png"}


def test_membership_through_label_only_policy(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["attack", "membership", "--demo", "digits", "--max-records", "200", "--method", "label_only",
                       "--policy", "label_only", "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["method"] == "label_only" and doc["params"]["policy"] == "label_only"


def test_membership_online_lira_trains_on_the_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["attack", "membership", "--demo", "digits", "--max-records", "100", "--method", "lira",
                       "--reference-mode", "online", "--n-reference", "4", "--reference-epochs", "3",
                       "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["method"] == "lira"
    p = doc["params"]
    # no population carved out of the non-members; each reference model trains on half the 200 candidates
    assert p["n_nonmembers"] == 100 and p["population"] is None
    assert p["reference_pool"] == "candidates" and p["reference_set_size"] == 100
    assert p["in_models_per_record"] == [2, 2] and p["variance"] == "shrunk"
    assert p["lira_scorer"] == "gaussian"  # 4 models x 200 records: too few pairs for the learned scorer


def test_extraction_curve_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["attack", "extraction", "--demo", "digits", "--budget", "300", "--schedule", "100,300",
                       "--epochs", "5", "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0
    assert [p["queries"] for p in doc["curve"]] == [100, 300]
    assert 0.0 <= doc["fidelity"] <= 1.0 and doc["queries_used"] == 300


def test_attribute_and_inversion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["attack", "attribute", "--demo", "breast-cancer", "--sensitive", "mean radius",
                       "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["sensitive_column"] == 0
    assert {"attack_accuracy", "baseline_accuracy", "advantage"} <= set(doc)
    rc, out, _ = _run(["attack", "inversion", "--demo", "digits", "--steps", "20", "--out", str(tmp_path),
                       "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and 0.0 <= doc["inversion_accuracy"] <= 1.0
    assert (tmp_path / "inversion.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv", [
    ["attack", "membership", "--demo", "digits", "--method", "telepathy"],
    ["attack", "membership", "--demo", "nope"],
    ["attack", "membership", "--demo", "digits", "--method", "lira", "--variance", "median"],
    ["attack", "membership", "--demo", "digits", "--method", "lira", "--lira-scorer", "oracle"],
    ["attack", "extraction", "--demo", "digits", "--strategy", "psychic"],
    ["attack", "attribute", "--demo", "breast-cancer", "--sensitive", "no such column"],
    ["attack", "inversion", "--demo", "breast-cancer"],
    ["harden", "dp", "--model-spec", "resnet-9000", "--data", "builtin:digits", "--epsilon", "1", "--out", "x.pt"],
    ["harden", "dp", "--model-spec", "digits-mlp", "--data", "builtin:digits", "--epsilon", "-1", "--out", "x.pt"],
])
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _out, err = _run([*argv, "--format", "json"], capsys)
    assert rc == 2
    assert "error:" in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()


def test_harden_dp_writes_model_and_statement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    out = tmp_path / "m.pt"
    rc, stdout, _ = _run(["harden", "dp", "--model-spec", "softmax-regression", "--data", str(tmp_path / "d.npz"),
                          "--epsilon", "3", "--delta", "1e-5", "--epochs", "5", "--batch-size", "100", "--out", str(out),
                          "--accountant", "rdp", "--format", "json"], capsys)
    doc = json.loads(stdout)
    assert rc == 0
    assert doc["epsilon"] <= 3.0 + 1e-6 and doc["delta"] == 1e-5 and doc["test_accuracy"] > 0.7
    stmt = json.loads((tmp_path / "m.pt.privacy.json").read_text())
    assert stmt["epsilon"] == doc["epsilon"] and stmt["noise_multiplier"] > 0
    # the assessment reads the claimed epsilon back when attacking the saved model
    rc, stdout, _ = _run(["attack", "membership", "--model", str(out), "--data", str(tmp_path / "d.npz"),
                          "--format", "json"], capsys)
    assert rc == 0 and json.loads(stdout)["claimed_epsilon"] == doc["epsilon"]
