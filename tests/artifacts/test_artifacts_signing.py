"""Signing with OpenSSF model-signing bundles, per-file tamper detection and evidence attestations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bastion.artifacts.keys import generate_keypair
from bastion.artifacts.signing import attestation_path_for, sign_model, verify_model
from bastion.core.errors import SignatureError, UnsafeArtifactError
from bastion.core.severity import Severity


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    torch.save(torch.nn.Linear(4, 2).state_dict(), d / "weights.pt")
    (d / "config.json").write_text('{"layers": 1}')
    return d


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "release")


def _assessment(tmp_path: Path, model_sha: str = "ab" * 32, max_severity: str = "low",
                findings: list[dict[str, str]] | None = None, created_at: str = "2026-01-01T00:00:00+00:00") -> Path:
    a = {"schema_version": "1.0", "profile": "quick", "seed": 0, "created_at": created_at,
         "target": {"name": "digits", "fingerprints": {"model": model_sha, "data": "cd" * 32}},
         "environment": {"bastion": "0.1.0"},
         "summary": {"max_severity": max_severity, "findings": {"low": 1}},
         "results": [{"check_id": "evasion.pgd_linf", "metrics": {"robust_accuracy": 0.42, "n": 100},
                      "findings": findings or [{"id": "evasion.weak", "severity": "low", "title": "slightly weak"}]}]}
    p = tmp_path / f"assessment-{model_sha[:8]}.json"
    p.write_text(json.dumps(a))
    return p


def _digest(path: Path, priv: Path, pub: Path) -> str:
    """The digest an assessment of ``path`` fingerprints: the file's sha256, or the manifest digest of a directory."""
    if path.is_file():
        import hashlib

        return hashlib.sha256(path.read_bytes()).hexdigest()
    sign_model(path, priv)
    return verify_model(path, pub).model_digest


def test_sign_verify_roundtrip_with_attestation(model_dir: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    priv, pub = keys
    bundle = sign_model(model_dir, priv, attest=_assessment(tmp_path, _digest(model_dir, priv, pub)))
    assert bundle == model_dir.with_name("model.sig") and bundle.is_file()
    res = verify_model(model_dir, pub, require_attestation=True, max_severity=Severity.MEDIUM)
    assert set(res.files) == {"weights.pt", "config.json"}
    att = res.attestation or {}
    assert att["model"]["digest"]["sha256"] == res.model_digest
    assert att["scan"]["verdict"] == "safe"
    assert att["assessment"]["scores"]["evasion.pgd_linf.robust_accuracy"] == 0.42
    assert {"name": "data", "digest": {"sha256": "cd" * 32}} in att["datasets"]


def test_upstream_model_signing_cli_accepts_bastion_signatures(model_dir: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    bundle = sign_model(model_dir, priv)
    cli = Path(sys.executable).with_name("model_signing")
    ok = subprocess.run([str(cli), "verify", "key", str(model_dir), "--signature", str(bundle),
                         "--public_key", str(pub)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (model_dir / "config.json").write_text('{"layers": 2}')
    bad = subprocess.run([str(cli), "verify", "key", str(model_dir), "--signature", str(bundle),
                          "--public_key", str(pub)], capture_output=True, text=True)
    assert bad.returncode != 0


@pytest.mark.parametrize("change,word,name", [
    (lambda d: (d / "config.json").write_text("{}"), "modified", "config.json"),
    (lambda d: (d / "extra.bin").write_bytes(b"x"), "added", "extra.bin"),
    (lambda d: (d / "weights.pt").unlink(), "removed", "weights.pt"),
])
def test_tampering_names_the_file(model_dir: Path, keys: tuple[Path, Path], change, word: str, name: str) -> None:  # type: ignore[no-untyped-def]
    priv, pub = keys
    sign_model(model_dir, priv)
    change(model_dir)
    with pytest.raises(SignatureError, match=rf"{word}: .*{name}"):
        verify_model(model_dir, pub)


def test_wrong_key_and_tampered_attestation_refused(model_dir: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    priv, pub = keys
    sign_model(model_dir, priv)
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(SignatureError):
        verify_model(model_dir, other_pub)
    att = attestation_path_for(model_dir)
    env = json.loads(att.read_text())
    env["payload"] = env["payload"][:-4] + ("AAAA" if not env["payload"].endswith("AAAA") else "BBBB")
    att.write_text(json.dumps(env))
    with pytest.raises(SignatureError):
        verify_model(model_dir, pub, require_attestation=True)


def test_require_attestation_and_max_severity(model_dir: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    priv, pub = keys
    sign_model(model_dir, priv)
    attestation_path_for(model_dir).unlink()
    verify_model(model_dir, pub)  # signature alone still verifies
    with pytest.raises(SignatureError, match="no attestation"):
        verify_model(model_dir, pub, require_attestation=True)
    # a model whose scan is medium: signed (not unsafe), but refused at --max-severity low
    (model_dir / "ref.pkl").write_bytes(b"\x80\x04\x8c\x06mypkg_\x8c\x05Thing\x93N\x85.")
    sign_model(model_dir, priv)
    verify_model(model_dir, pub, require_attestation=True, max_severity=Severity.MEDIUM)
    with pytest.raises(SignatureError, match=r"worse than low: scan \(medium"):
        verify_model(model_dir, pub, require_attestation=True, max_severity=Severity.LOW)


def _single(tmp_path: Path, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    p = tmp_path / name
    torch.save(torch.nn.Linear(3, 2).state_dict(), p)
    return p


def test_attestation_of_another_model_is_refused_at_sign_and_verify(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """Issue 16, attack 1: an assessment of model A attached to model B."""
    priv, pub = keys
    a, b = _single(tmp_path, "a.pt", 0), _single(tmp_path, "b.pt", 1)
    sha_a, sha_b = _digest(a, priv, pub), _digest(b, priv, pub)
    with pytest.raises(SignatureError) as err:
        sign_model(b, priv, attest=_assessment(tmp_path, sha_a))
    assert sha_a in str(err.value) and sha_b in str(err.value)
    assert not b.with_name("b.pt.sig").exists()  # nothing written
    # an attestation envelope made for A, copied beside B, fails verification of B
    sign_model(a, priv, attest=_assessment(tmp_path, sha_a))
    sign_model(b, priv)
    attestation_path_for(b).write_bytes(attestation_path_for(a).read_bytes())
    with pytest.raises(SignatureError, match="names digest"):
        verify_model(b, pub, require_attestation=True)


def test_max_severity_covers_every_attested_finding(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    m = _single(tmp_path, "m.pt", 2)
    highs = [{"id": f"evasion.high{i}", "severity": "high", "title": f"robust accuracy {i}"} for i in range(3)]
    sign_model(m, priv, attest=_assessment(tmp_path, _digest(m, priv, pub), "high", highs))
    verify_model(m, pub, require_attestation=True, max_severity=Severity.HIGH)
    with pytest.raises(SignatureError, match="3 attested finding") as err:
        verify_model(m, pub, require_attestation=True, max_severity=Severity.MEDIUM)
    assert all(f"evasion.high{i}" in str(err.value) for i in range(3))


def test_max_attestation_age(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from datetime import UTC, datetime, timedelta

    from bastion.artifacts.signing import parse_age

    priv, pub = keys
    m = _single(tmp_path, "m.pt", 3)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    sign_model(m, priv, attest=_assessment(tmp_path, _digest(m, priv, pub), created_at=old))
    verify_model(m, pub, max_attestation_age=parse_age("60d"))
    with pytest.raises(SignatureError, match="older than"):
        verify_model(m, pub, max_attestation_age=parse_age("30d"))
    assert parse_age("12h") == timedelta(hours=12)


def test_unsafe_model_is_not_signed(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    p = tmp_path / "evil.pkl"
    p.write_bytes(b"cos\nsystem\n(Vtrue\ntR.")
    with pytest.raises(UnsafeArtifactError):
        sign_model(p, priv)
    assert not p.with_name("evil.pkl.sig").exists()


def test_incremental_rehashes_only_changed_files(model_dir: Path, keys: tuple[Path, Path], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    priv, pub = keys
    sign_model(model_dir, priv, incremental=True)
    (model_dir / "config.json").write_text('{"layers": 3}')
    from model_signing import hashing

    seen: list[list[str]] = []
    real = hashing.Config.hash

    def spy(self, model_path, *, files_to_hash=None):  # type: ignore[no-untyped-def]
        seen.append(sorted(Path(f).name for f in files_to_hash) if files_to_hash is not None else ["<all>"])
        return real(self, model_path, files_to_hash=files_to_hash)

    monkeypatch.setattr(hashing.Config, "hash", spy)
    sign_model(model_dir, priv, incremental=True)
    assert seen[0] == ["config.json"]
    monkeypatch.undo()
    verify_model(model_dir, pub)
    os.utime(model_dir / "weights.pt", ns=(1, 1))
    sign_model(model_dir, priv, incremental=True)
    assert verify_model(model_dir, pub).files["config.json"]


def test_single_file_model_tamper_is_named(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    model = tmp_path / "w.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), model)
    sign_model(model, priv)
    assert set(verify_model(model, pub).files) == {"w.pt"}
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(SignatureError, match=r"modified: w\.pt"):
        verify_model(model, pub)
