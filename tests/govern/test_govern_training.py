"""Training labs: lab 1 (adversarial example) and lab 5 (malicious checkpoint) end to end, lab 2's checker,
quizzes and completion records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bastion.core.errors import InvalidInputError
from bastion.govern.training import LABS, grade_quiz, lab, quiz
from bastion.govern.training.lab_supply import MARKER
from bastion.govern.training.records import list_records, record_completion, team_coverage


def test_six_labs_each_with_a_quiz() -> None:
    assert sorted(LABS) == [1, 2, 3, 4, 5, 6]
    for n in LABS:
        qs = quiz(n)
        assert len(qs) == 3 and all(0 <= q.answer < len(q.choices) for q in qs)


def test_lab1_goal_is_verified_with_the_model(bastion_home: Path, tmp_path: Path) -> None:
    from bastion.attacks.evasion import PGD
    from bastion.models.zoo import demo_target

    lab1, work = lab(1), tmp_path / "lab1"
    work.mkdir()
    lab1.start(work, seed=3)
    assert not lab1.check(work).passed  # nothing submitted
    with np.load(work / "target.npz") as t:
        x, y, eps = t["x"], t["y"], float(t["eps"])
    np.savez(work / "adv.npz", x_adv=x)
    unchanged = lab1.check(work)
    assert not unchanged.passed and unchanged.details["predicted_label"] == int(y[0])
    np.savez(work / "adv.npz", x_adv=np.clip(x + 0.5, 0, 1))
    assert "too large" in lab1.check(work).message
    module = demo_target("digits").model.module  # type: ignore[attr-defined]
    x_adv = PGD(eps=eps, steps=40, restarts=2, seed=0)(module, torch.from_numpy(x), torch.from_numpy(y).long())
    np.savez(work / "adv.npz", x_adv=x_adv.numpy())
    result = lab1.check(work)
    assert result.passed, result.message
    assert result.details["linf"] <= eps + 1e-6 and result.details["predicted_label"] != int(y[0])


def test_lab5_rejects_only_the_payload_and_never_runs_it(bastion_home: Path, tmp_path: Path) -> None:
    from bastion.artifacts.scan import scan_path

    lab5, work = lab(5), tmp_path / "lab5"
    work.mkdir()
    lab5.start(work)
    report = scan_path(work / "models")
    (work / "scan.json").write_text(json.dumps(report.to_dict()))
    decision = {"scan_report": "scan.json", "reject": ["models/classifier_v1.pt"],
                "accept": ["models/classifier_v2.pt", "models/classifier_v1.safetensors"]}
    (work / "decision.yaml").write_text(yaml.safe_dump(decision))
    wrong = lab5.check(work)
    assert not wrong.passed and wrong.score == 0.0
    decision.update(reject=["models/classifier_v2.pt"], accept=["models/classifier_v1.pt",
                                                                "models/classifier_v1.safetensors"])
    (work / "decision.yaml").write_text(yaml.safe_dump(decision))
    right = lab5.check(work)
    assert right.passed and right.score == 1.0
    assert not (work / MARKER).exists()
    (work / MARKER).touch()  # as if someone had torch.load-ed the file
    assert "LOADED" in lab5.check(work).message


def test_lab2_checker_measures_detection_against_the_real_poison(tmp_path: Path) -> None:
    lab2, work = lab(2), tmp_path / "lab2"
    work.mkdir()
    lab2.start(work)
    with np.load(work / "clean.npz") as c:
        x, y = c["x"], c["y"].copy()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[idx] = (y[idx] + 1) % 10
    np.savez(work / "poisoned.npz", x=x, y=y)
    (work / "flagged.json").write_text(json.dumps({"flagged_indices": [int(i) for i in idx[: int(len(idx) * 0.8)]]}))
    good = lab2.check(work)
    assert good.passed and good.details["recall"] == pytest.approx(0.8, abs=0.01)
    (work / "flagged.json").write_text(json.dumps({"flagged_indices": list(range(200))}))
    assert not lab2.check(work).passed
    (work / "flagged.json").write_text(json.dumps({"flagged_indices": "all"}))
    with pytest.raises(InvalidInputError):
        lab2.check(work)


def test_quiz_grading() -> None:
    right = [chr(ord("a") + q.answer) for q in quiz(5)]
    assert grade_quiz(5, right)["passed"] and grade_quiz(5, right)["score"] == 1.0
    wrong = ["c" if a != "c" else "a" for a in right]
    assert not grade_quiz(5, wrong)["passed"]
    with pytest.raises(InvalidInputError):
        grade_quiz(5, ["a"])
    with pytest.raises(InvalidInputError):
        grade_quiz(5, ["z", "a", "a"])


def test_records_and_team_coverage(bastion_home: Path) -> None:
    record_completion("ada", "platform", 1, "lab", 1.0, True)
    record_completion("ada", "platform", 1, "quiz", 1.0, True)
    record_completion("bob", "platform", 1, "lab", 0.0, False)
    record_completion("eve", "fraud", 5, "quiz", 1.0, True)
    cov = {c["team"]: c for c in team_coverage()}
    assert cov["platform"]["learners"] == 2 and cov["platform"]["completed_per_lab"][1] == 1
    assert cov["platform"]["coverage"] == pytest.approx(1 / 12, abs=1e-3)
    assert cov["fraud"]["completions"] == 0
    assert cov["platform"]["completed_by_learner"] == {"ada": [1], "bob": []}
    assert len(list_records(team="platform")) == 3
    with pytest.raises(InvalidInputError):
        record_completion("ada", "platform", 7, "lab", 1.0, True)
    with pytest.raises(InvalidInputError):
        record_completion("ada", "", 1, "lab", 1.0, True)


def test_learn_cli(cli: Callable, bastion_home: Path, tmp_path: Path) -> None:
    work = tmp_path / "w5"
    res = cli(["learn", "start", "5", "--dir", str(work), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "models/classifier_v2.pt" in json.loads(res.stdout)["files"]
    res = cli(["learn", "check", "5", "--dir", str(work), "--learner", "ada", "--team", "ml", "--format", "json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["passed"] is False
    res = cli(["learn", "quiz", "5", "--answers", "b,b,a", "--learner", "ada", "--team", "ml", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["passed"]
    res = cli(["learn", "records", "--team", "ml", "--format", "json"])
    doc = json.loads(res.stdout)
    assert len(doc["records"]) == 2 and doc["coverage"][0]["team"] == "ml"
    res = cli(["learn", "list", "--learner", "ada", "--format", "json"])
    lab5 = next(r for r in json.loads(res.stdout)["labs"] if r["lab"] == 5)
    assert lab5["quiz_passed"] and not lab5["goal_passed"]
    assert cli(["learn", "start", "9"]).exit_code == 2
    assert cli(["learn", "check", "1", "--dir", str(tmp_path / "never-started")]).exit_code == 2


def test_labs_3_and_4_report_missing_work_without_crashing(tmp_path: Path) -> None:
    w3, w4 = tmp_path / "l3", tmp_path / "l4"
    w3.mkdir()
    w4.mkdir()
    lab(3).start(w3)
    assert not lab(3).check(w3).passed
    (w3 / "membership.json").write_text(json.dumps({"auc": 0.71}))
    partial = lab(3).check(w3)
    assert not partial.passed and partial.score == 0.3 and partial.details["auc_before"] == 0.71
    (w3 / "membership.json").write_text(json.dumps({"accuracy": 1}))
    with pytest.raises(InvalidInputError, match="auc"):
        lab(3).check(w3)
    lab(4).start(w4)
    assert "stolen.pt" in lab(4).check(w4).message
