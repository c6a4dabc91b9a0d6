"""``bastion attack evasion``: JSON keys, --save-adv, bad input → exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.cli.main import main

REQUIRED = {"attack", "norm", "eps", "steps", "samples", "clean_accuracy", "robust_accuracy", "duration_s",
            "samples_per_s"}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_json_output_has_the_issue_keys_and_saves_adv(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      bastion_home: Path) -> None:
    npz = tmp_path / "adv.npz"
    code, out, _ = run_cli(["attack", "evasion", "--demo", "digits", "--attack", "apgd-ce", "--eps", "0.1",
                            "--steps", "10", "--samples", "30", "--save-adv", str(npz), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert REQUIRED <= set(doc)
    assert doc["attack"] == "apgd-ce" and doc["samples"] == 30 and doc["steps"] == 10
    assert doc["robust_accuracy"] < doc["clean_accuracy"]
    saved = np.load(npz)
    assert saved["x_adv"].shape == (30, 1, 8, 8)
    assert np.abs(saved["x_adv"] - saved["x"]).max() <= 0.1 + 1e-6
    assert int(saved["success"].sum()) == doc["n_success"]


def test_own_model_and_npz_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], bastion_home: Path) -> None:
    import shutil

    from bastion.models.zoo import demo_model_path, demo_target

    model = tmp_path / "digits.pt"
    shutil.copy(demo_model_path("digits"), model)
    x, y = demo_target("digits").data.eval_split()
    np.savez(tmp_path / "eval.npz", x=x[:40], y=y[:40])
    code, out, _ = run_cli(["attack", "evasion", "--model", str(model), "--data", str(tmp_path / "eval.npz"),
                            "--clip-min", "0", "--clip-max", "1", "--attack", "square", "--eps", "0.2",
                            "--steps", "100", "--format", "json"], capsys)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["samples"] == 40 and doc["queries"] > 0 and doc["robust_accuracy"] < doc["clean_accuracy"]


@pytest.mark.parametrize("args", [
    ["--demo", "breast-cancer-sklearn", "--attack", "pgd"],  # white-box on a black-box model
    ["--demo", "digits", "--eps", "-1"],
    ["--demo", "nope"],
    ["--demo", "digits", "--samples", "0"],
    ["--demo", "digits", "--save-adv", "out.txt"],
    ["--model", "/does/not/exist.pt", "--data", "/nope.npz"],
])
def test_bad_input_exits_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture[str],
                                         bastion_home: Path) -> None:
    code, out, err = run_cli(["attack", "evasion", *args, "--format", "json"], capsys)
    assert code == 2
    assert out == ""
    assert "error:" in err and "Traceback" not in err
