"""``bastion tour DIR`` writes every input of the README tour; the suspicious files are caught, never run."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bastion.cli.main import main


def test_tour_writes_inputs_that_work_and_refuses_a_full_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.artifacts.scan import scan_path
    from bastion.models.loaders import load_model

    d = tmp_path / "tour"
    with pytest.raises(SystemExit) as exc:
        main(["tour", str(d), "--format", "json"])
    assert exc.value.code in (0, None)
    files = set(json.loads(capsys.readouterr().out)["files"])
    assert {"digits.pt", "digits-v2.pt", "digits.npz", "suspicious/evil.pt", "suspicious/bypass.pkl",
            "data/people.csv", "ref.npz", "shifted.npz", "digits.yaml", "keys/release", "bastion.yaml"} <= files
    assert stat.S_IMODE((d / "keys" / "release").stat().st_mode) == 0o600
    model = load_model(d / "digits.pt")  # the sidecar gives shape and range: no data needed
    assert model.input_spec.shape == (1, 8, 8) and model.input_spec.range_source == "sidecar"
    report = scan_path(d / "suspicious")
    assert report.to_dict()["verdict"] == "unsafe"
    assert {f["max_severity"] for f in report.to_dict()["files"]} == {"critical"}
    assert not (d / "PWNED-if-this-exists").exists()
    with pytest.raises(SystemExit) as exc:
        main(["tour", str(d)])
    assert exc.value.code == 2 and "not empty" in capsys.readouterr().err
