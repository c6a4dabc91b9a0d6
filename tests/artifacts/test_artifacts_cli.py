"""``bastion model scan|sign|verify`` through the real entry point: JSON keys and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.cli.main import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    code = exc.value.code if isinstance(exc.value.code, int) else 0
    return code, capsys.readouterr().out


def test_scan_exit_codes_and_json(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = run(["model", "scan", str(corpus["malicious"]["os_system.pkl"]), "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["verdict"] == "unsafe" and doc["max_severity"] == "critical"
    f = doc["files"][0]
    assert f["format"] == "pickle"
    assert {"severity", "code", "message", "location", "global", "module", "name"} <= set(f["findings"][0])
    assert f["findings"][0]["module"] == "posix" and f["findings"][0]["name"] == "system"
    code, out = run(["model", "scan", str(corpus["benign"]["state_dict.pt"]), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["verdict"] == "safe"
    # medium only: passes the default --fail-on high, fails --fail-on medium
    ref = tmp_path / "ref.pkl"
    ref.write_bytes(b"\x80\x04\x8c\x06mypkg_\x8c\x05Thing\x93N\x85.")
    assert run(["model", "scan", str(ref)], capsys)[0] == 0
    assert run(["model", "scan", str(ref), "--fail-on", "medium"], capsys)[0] == 1
    assert run(["model", "scan", str(ref), "--fail-on", "medium", "--allow", "mypkg_:Thing"], capsys)[0] == 0
    txt = tmp_path / "notes.txt"
    txt.write_text("just text")
    assert run(["model", "scan", str(txt)], capsys)[0] == 3
    assert run(["model", "scan", str(tmp_path / "missing.pt")], capsys)[0] == 2


def test_scan_sarif(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["model", "scan", str(corpus["malicious"]["torch_os_hop.pkl"]), "--format", "sarif"], capsys)
    sarif = json.loads(out)
    assert code == 1 and sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["level"] == "error"


def test_sign_verify_cli(tmp_path: Path, corpus: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k"
    assert run(["keys", "generate", "--out", str(key)], capsys)[0] == 0
    model = tmp_path / "m.safetensors"
    model.write_bytes(corpus["benign"]["weights.safetensors"].read_bytes())
    code, out = run(["model", "sign", str(model), "--key", str(key), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["scan"]["verdict"] == "safe"
    code, out = run(["model", "verify", str(model), "--key", f"{key}.pub", "--require-attestation",
                     "--max-severity", "medium", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["verified"] is True
    model.write_bytes(model.read_bytes() + b"\0")
    code, _ = run(["model", "verify", str(model), "--key", f"{key}.pub"], capsys)
    assert code == 2
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(corpus["malicious"]["os_system.pkl"].read_bytes())
    assert run(["model", "sign", str(evil), "--key", str(key)], capsys)[0] == 2


def test_one_key_grammar_trusted_key_repeatable_and_old_spellings_deprecated(
        tmp_path: Path, corpus: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    key, other = tmp_path / "k", tmp_path / "other"
    for k in (key, other):
        assert run(["keys", "generate", "--out", str(k)], capsys)[0] == 0
    model = tmp_path / "m.safetensors"
    model.write_bytes(corpus["benign"]["weights.safetensors"].read_bytes())
    assert run(["model", "sign", str(model), "--key", str(key)], capsys)[0] == 0
    # any one of the trusted keys may have signed it
    code, out = run(["model", "verify", str(model), "--trusted-key", f"{other}.pub", "--trusted-key", f"{key}.pub",
                     "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["verified"] is True
    assert run(["model", "verify", str(model), "--trusted-key", f"{other}.pub"], capsys)[0] == 2
    # the old spelling still works, with a note on stderr
    with pytest.raises(SystemExit) as exc:
        main(["model", "verify", str(model), "--key", f"{key}.pub"])
    assert exc.value.code in (0, None) and "deprecated: --key" in capsys.readouterr().err
    # data manifests: the same flag
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.csv").write_text("id,v\n1,2\n2,3\n")
    man = tmp_path / "m.json"
    assert run(["data", "manifest", str(data), "--out", str(man), "--key", str(key)], capsys)[0] == 0
    code, out = run(["data", "verify", str(data), "--manifest", str(man), "--trusted-key", f"{other}.pub",
                     "--trusted-key", f"{key}.pub", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["signature"]["status"] == "valid"
    code, out = run(["data", "verify", str(data), "--manifest", str(man), "--trusted-key", f"{other}.pub",
                     "--format", "json"], capsys)
    assert code == 1 and json.loads(out)["signature"]["status"] == "invalid"
    assert run(["model", "verify", str(model)], capsys)[0] == 2, "no key at all: a clear error"
