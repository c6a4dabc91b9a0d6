"""Integrity manifests: exact row diffs, signatures, CLI exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bastion.artifacts.keys import generate_keypair
from bastion.cli.main import build_app
from bastion.data.integrity import build_manifest, manifest_root, verify_manifest, write_manifest

runner = CliRunner()


def _write_csv(path: Path, rows: list[tuple[int, str, int]]) -> None:
    path.write_text("id,name,value\n" + "".join(f"{i},{n},{v}\n" for i, n, v in rows))


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[tuple[int, str, int]]]:
    rows = [(i, f"name{i}", i * 10) for i in range(50)]
    d = tmp_path / "data"
    d.mkdir()
    _write_csv(d / "table.csv", rows)
    (d / "notes.txt").write_text("hello")
    return d, rows


def test_sequence_diff_reports_exact_rows(dataset: tuple[Path, list], tmp_path: Path) -> None:
    d, rows = dataset
    m = build_manifest([d])
    new = list(rows)
    new[7] = (7, "tampered", 70)          # modified
    new.insert(20, (999, "injected", 1))  # inserted (shifts every later row)
    del new[40]                           # deletes original row 39
    _write_csv(d / "table.csv", new)

    report = verify_manifest([d], m)

    change = report["modified"][0]
    assert report["ok"] is False and change["path"] == "table.csv"
    assert change["modified"] == [{"row": 7, "old_row": 7}]
    assert change["inserted"] == [{"row": 20}]
    assert change["deleted"] == [{"old_row": 39}]


def test_key_columns_diff_reports_keys(dataset: tuple[Path, list]) -> None:
    d, rows = dataset
    m = build_manifest([d], key_columns=["id"])
    new = [r for r in rows if r[0] != 3]
    new[10] = (new[10][0], "changed", 0)
    new.append((500, "late", 5))
    _write_csv(d / "table.csv", new)

    change = verify_manifest([d], m)["modified"][0]

    assert change["deleted"] == [{"old_row": 3, "key": {"id": "3"}}]
    assert change["inserted"] == [{"row": 49, "key": {"id": "500"}}]
    assert change["modified"] == [{"row": 10, "old_row": 11, "key": {"id": "11"}}]


def test_files_added_removed_and_npz_rows(tmp_path: Path) -> None:
    d = tmp_path / "set"
    d.mkdir()
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez(d / "train.npz", x_train=x, y_train=np.arange(10))
    (d / "a.txt").write_text("a")
    m = build_manifest([d])
    x[4, 1] = -1
    np.savez(d / "train.npz", x_train=x, y_train=np.arange(10))
    (d / "a.txt").unlink()
    (d / "b.txt").write_text("b")

    r = verify_manifest([d], m)

    assert r["added"] == ["b.txt"] and r["removed"] == ["a.txt"]
    tables = {t["name"]: t for t in r["modified"][0]["tables"]}
    assert tables["x_train"]["modified"] == [{"row": 4, "old_row": 4}]
    assert tables["y_train"]["modified"] == []


def test_unchanged_data_verifies_and_merkle_root_changes_with_any_leaf() -> None:
    leaves = [bytes([i]) * 16 for i in range(7)]
    root = manifest_root(leaves)
    for i in range(7):
        changed = list(leaves)
        changed[i] = b"\xff" * 16
        assert manifest_root(changed) != root


def test_signature_valid_then_tampered_manifest(dataset: tuple[Path, list], tmp_path: Path) -> None:
    d, _ = dataset
    priv, pub = generate_keypair(tmp_path / "k")
    out = tmp_path / "m.json"
    write_manifest(build_manifest([d]), out, key=str(priv))
    assert verify_manifest([d], out, pub=pub)["signature"]["status"] == "valid"

    m = json.loads(out.read_text())
    m["files"][0]["sha256"] = "0" * 64  # forge a digest
    out.write_text(json.dumps(m))
    r = verify_manifest([d], out, pub=pub)
    assert r["signature"]["status"] == "invalid" and r["ok"] is False


def test_cli_exit_codes(dataset: tuple[Path, list], tmp_path: Path) -> None:
    d, rows = dataset
    app = build_app()
    runner.invoke(app, ["keys", "generate", "--out", str(tmp_path / "k")])
    m = tmp_path / "m.json"
    res = runner.invoke(app, ["data", "manifest", str(d), "--out", str(m), "--key", str(tmp_path / "k")])
    assert res.exit_code == 0, res.output
    ok = runner.invoke(app, ["data", "verify", str(d), "--manifest", str(m), "--pub", str(tmp_path / "k.pub"),
                             "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    _write_csv(d / "table.csv", rows[:-1])
    diff = runner.invoke(app, ["data", "verify", str(d), "--manifest", str(m), "--format", "json"])
    assert diff.exit_code == 1
    assert json.loads(diff.stdout)["modified"][0]["deleted"] == [{"old_row": 49}]
    bad = subprocess.run(
        [sys.executable, "-m", "bastion.cli.main", "data", "verify", str(d), "--manifest", str(tmp_path / "no.json")],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2 and "no.json" in bad.stderr and "Traceback" not in bad.stderr
