"""`bastion assess` through the CLI: reports written, --fail-on exit codes, bad input → exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bastion.cli.main import main

BASTION = [sys.executable, "-c", "from bastion.cli.main import main; main()"]


def _run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize(("fail_on", "only", "code"), [
    ("high", "test_assess.weak", 1),
    ("critical", "test_assess.weak", 0),
    ("info", "test_assess.clean", 0),
])
def test_fail_on_exit_codes(fake_checks, tmp_path: Path, capsys, fail_on: str, only: str, code: int) -> None:  # type: ignore[no-untyped-def]
    rc, out, _ = _run_in_process(["assess", "--demo", "digits", "--out", str(tmp_path), "--only", only,
                                  "--fail-on", fail_on, "--format", "json"], capsys)

    assert rc == code
    summary = json.loads(out)  # json mode: only the summary on stdout
    assert summary["reports"]["html"].endswith("report.html")
    assert {p.name for p in tmp_path.iterdir()} >= {"assessment.json", "report.html", "assessment.sarif"}


def test_options_reach_the_checks(fake_checks, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc, _, _ = _run_in_process(["assess", "--demo", "digits", "--out", str(tmp_path), "--only", "test_assess.clean",
                                "--option", "eps=[0.05, 0.1]", "--option", "attack=pgd", "--format", "json"], capsys)
    doc = json.loads((tmp_path / "assessment.json").read_text())
    assert rc == 0 and doc["results"][0]["params"]["options"] == {"eps": [0.05, 0.1], "attack": "pgd"}


def test_nothing_to_do_exits_3(fake_checks, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(type(fake_checks["clean"]), "applies", lambda self, target: False)
    rc, out, _ = _run_in_process(["assess", "--demo", "digits", "--out", str(tmp_path), "--only", "test_assess",
                                  "--format", "json"], capsys)
    assert rc == 3 and json.loads(out)["checks"] == {"pass": 0, "warn": 0, "fail": 0, "error": 0, "skipped": 0}


def test_text_mode_prints_where_the_report_is(fake_checks, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc, out, err = _run_in_process(["assess", "--demo", "digits", "--out", str(tmp_path), "--only", "test_assess.clean"],
                                   capsys)
    assert rc == 0
    assert f"Report: {(tmp_path / 'report.html').resolve()}" in out
    assert "test_assess.clean" in out and "Verdict" in out, "the results table is a result: stdout"
    assert "Assessing" in err, "progress and notes go to stderr"


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "missing.onnx", "--data", "d.npz"], "does not exist"),
    (["--demo", "cifar"], "unknown demo 'cifar'"),
    (["--demo", "digits", "--profile", "extreme"], "unknown --profile"),
    (["--demo", "digits", "--fail-on", "urgent"], "unknown severity"),
    (["--model", "m.bin", "--data", "d.npz"], "cannot tell the model format"),
    (["--demo", "digits", "--only", "nope.nothing"], "no check named"),
    (["--demo", "digits", "--compare", "no-such-dir"], "no assessment at"),
    (["--demo", "digits", "--option", "eps"], "KEY=VALUE"),
])
def test_bad_input_exits_2(tmp_path: Path, capsys, monkeypatch, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4)), y=np.zeros(3))
    (tmp_path / "m.bin").write_bytes(b"\x01\x02 not a model")
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_in_process(["assess", *args, "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and out == ""
    assert message in " ".join(err.split())
    assert not (tmp_path / "out" / "assessment.json").exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.full((3, 4), np.nan), y=np.zeros(3))
    proc = subprocess.run([*BASTION, "assess", "--model", "m.onnx", "--data", "d.npz", "--out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert proc.returncode == 2
    assert "NaN" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_demo_digits_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run([*BASTION, "assess", "--demo", "digits", "--out", str(tmp_path), "--profile", "quick",
                           "--format", "json", "--fail-on", "medium"], capture_output=True, text=True, timeout=300)
    summary = json.loads(proc.stdout)
    order = ["none", "info", "low", "medium", "high", "critical"]
    expected = 1 if order.index(summary["max_severity"]) >= order.index("medium") else 0
    assert proc.returncode == expected, proc.stderr
    doc = json.loads((tmp_path / "assessment.json").read_text())
    assert doc["target"]["name"] == "demo:digits" and doc["results"]
    assert all(r["status"] != "error" for r in doc["results"]), [r["error"] for r in doc["results"]]
    html = (tmp_path / "report.html").read_text()
    assert summary["verdict"] and 'id="verdict"' in html
