"""`bastion harden …` and `bastion explain` through the CLI: JSON keys, files written, bad input → exit 2."""

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


def test_adversarial_training_cli_writes_model_sidecar_and_record(tmp_path: Path, capsys, bastion_home) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    out = tmp_path / "robust.pt"
    code, stdout, _ = _run(["harden", "adversarial-training", "--model-spec", "tabular-mlp", "--data",
                            str(tmp_path / "d.npz"), "--method", "pgd", "--eps", "0.1", "--epochs", "2",
                            "--steps", "2", "--bf16", "attack", "--budget-clock", "cpu", "--time-budget", "600",
                            "--out", str(out), "--format", "json"], capsys)
    assert code == 0
    res = json.loads(stdout)
    assert {"model", "sidecar", "training_record", "best_epoch", "epochs_run", "test"} <= set(res)
    side = json.loads(Path(res["sidecar"]).read_text())
    assert side["defense"]["name"] == "adversarial_training" and side["input_spec"]["shape"] == [6]
    record = json.loads(Path(res["training_record"]).read_text())
    assert len(record["curve"]) == 2 and record["config"]["eps"] == 0.1
    assert record["config"]["bf16"] == "attack" and record["config"]["budget_clock"] == "cpu"
    assert record["cpu_s"] > 0 and record["curve"][-1]["load_avg"] is not None

    from bastion.models.loaders import load_model

    assert load_model(out).predict_proba(x[:3]).shape == (3, 2)


def test_harden_bad_input_exits_2_without_traceback(tmp_path: Path, capsys, bastion_home) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["harden", "adversarial-training", "--model-spec", "no-such-arch", "--demo", "digits",
                         "--out", str(tmp_path / "m.pt")], capsys)
    assert code == 2 and "Traceback" not in err and "no-such-arch" in err
    code, _, err = _run(["harden", "adversarial-training", "--model-spec", "digits-mlp", "--demo", "digits",
                         "--eps", "-1", "--out", str(tmp_path / "m.pt")], capsys)
    assert code == 2 and "eps" in err
    assert not (tmp_path / "m.pt").exists()


def test_sanitize_and_smooth_cli(tmp_path: Path, capsys, bastion_home) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = _run(["harden", "sanitize", "--demo", "digits", "--defense", "feature-squeezing",
                            "--bit-depth", "3", "--median", "0", "--out", str(tmp_path / "fs.pt"), "--format", "json"],
                           capsys)
    assert code == 0
    res = json.loads(stdout)
    assert res["defense"] == "feature_squeezing" and res["params"]["threshold"] >= 0
    code, stdout, _ = _run(["harden", "sanitize", "--demo", "digits", "--defense", "lid", "--eps", "0.1",
                            "--out", str(tmp_path / "lid.pt"), "--format", "json"], capsys)
    assert code == 0
    res = json.loads(stdout)
    assert res["defense"] == "lid_detector" and res["params"]["fit_eps"] == 0.1 and res["params"]["layers"] >= 3
    assert res["params"]["calibration"]["samples"] > 100
    code, stdout, _ = _run(["harden", "smooth", "--demo", "digits", "--sigma", "0.25", "--samples", "8",
                            "--certify", "10", "--out", str(tmp_path / "rs.pt"), "--format", "json"], capsys)
    assert code == 0
    cert = json.loads(stdout)["certificate"]
    assert cert["samples"] == 10 and cert["radius_mean"] >= 0 and 0 <= cert["abstain_rate"] <= 1


def test_explain_cli_json_and_html(tmp_path: Path, capsys, bastion_home) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = _run(["explain", "--demo", "breast-cancer-sklearn", "--index", "2", "--samples", "60"], capsys)
    assert code == 0
    res = json.loads(stdout)
    assert res["global"]["method"] == "tree" and res["local"]["index"] == 2
    assert res["local"]["lime"]["weights"] and len(res["global"]["top_features"]) == 10
    out = tmp_path / "e.html"
    code, _, _ = _run(["explain", "--demo", "breast-cancer-sklearn", "--samples", "60", "--format", "html",
                       "--out", str(out)], capsys)
    page = out.read_text()
    assert code == 0 and "data:image/png;base64," in page and "What the model relies on" in page
    code, _, err = _run(["explain", "--demo", "breast-cancer-sklearn", "--index", "100000"], capsys)
    assert code == 2 and "out of range" in err


def test_explain_cli_lime_for_images(tmp_path: Path, capsys, bastion_home) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = _run(["explain", "--demo", "digits", "--index", "1", "--samples", "8", "--method", "lime"], capsys)
    assert code == 0
    lime = json.loads(stdout)["local"]["lime"]
    assert lime["method"] == "lime_image" and lime["segments"] == 64 and lime["top_segments"]
    assert "weight_map" not in lime
    out = tmp_path / "lime.html"
    code, _, _ = _run(["explain", "--demo", "digits", "--samples", "8", "--method", "lime", "--format", "html",
                       "--out", str(out)], capsys)
    page = out.read_text()
    assert code == 0 and "LIME (local surrogate over 64 grid superpixels" in page and 'alt="lime"' in page
