"""The verdict vocabulary: safe only when every file was read to its end; never 'safe' by omission."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest

from bastion.artifacts.scan import ensure_safe, scan_path
from bastion.artifacts.scan.report import VERDICTS
from bastion.cli.main import main
from bastion.core.errors import UnsafeArtifactError, UnsupportedFormatError


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--format", "json"])
    code = exc.value.code if isinstance(exc.value.code, int) else 0
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name,content,verdict,code,reason", [
    ("empty.pt", b"", "unscanned", 3, "empty file"),
    ("notes.txt", b"a README, not a model\n", "unscanned", 3, "text"),
    ("blob.bin", bytes(range(7, 200)), "unscanned", 3, "unknown binary"),
    ("broken.pkl", pickle.dumps({"a": list(range(50))}, protocol=2)[:-20], "error", 2, "PICKLE_MALFORMED"),
    ("bad.zip", b"PK\x03\x04" + b"\x00" * 40, "error", 2, "ARCHIVE_MALFORMED"),
])
def test_files_not_read_to_the_end_are_never_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                                  content: bytes, verdict: str, code: int, reason: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    rc, doc = _cli(["model", "scan", str(p)], capsys)
    assert (rc, doc["verdict"]) == (code, verdict)
    assert reason in doc["verdict_reason"] or reason in (doc["files"][0]["reason"] or "")
    assert doc["files"][0]["verdict"] == verdict


def test_encrypted_zip_member_is_error_not_safe(tmp_path: Path) -> None:
    """A member really encrypted (unreadable bytes behind the flag) is an error; never scanned as safe."""
    p = tmp_path / "locked.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("weights.pkl", b"\x13\x37" * 64)  # ciphertext-like bytes
    data = bytearray(p.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        data[i + off] |= 0x1
    p.write_bytes(bytes(data))
    report = scan_path(p)
    assert report.verdict == "error" and "ARCHIVE_MEMBER_UNREADABLE" in report.verdict_and_reason[1]
    with pytest.raises(UnsafeArtifactError):
        ensure_safe(p)


def test_directory_with_model_text_and_unknown_blob(tmp_path: Path) -> None:
    import numpy as np

    d = tmp_path / "repo"
    d.mkdir()
    np.save(d / "w.npy", np.ones(3))
    (d / "README.md").write_text("# my model\n")
    (d / "config.json").write_text('{"layers": 2}')
    assert scan_path(d).verdict == "safe"  # text beside a model is read and inert
    (d / "extra.bin").write_bytes(bytes(range(7, 200)))
    verdict, reason = scan_path(d).verdict_and_reason
    assert verdict == "unscanned" and "extra.bin" in reason


def test_ensure_safe_refuses_empty_and_text(tmp_path: Path) -> None:
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match="empty file"):
        ensure_safe(tmp_path / "e.pt")


def test_vocabulary_is_closed(tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes(pickle.dumps([1, 2]))
    assert scan_path(tmp_path / "x.pkl").verdict == "safe"
    assert set(VERDICTS) == {"safe", "unsafe", "error", "unscanned"}
