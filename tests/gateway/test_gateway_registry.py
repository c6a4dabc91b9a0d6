"""Registry push/promote/rollback, refusal of unsigned/tampered/unsafe models, and the admin CLI."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def reg(gw_home: Path, signer: tuple[Path, Path], gwt: Any) -> Any:
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    upgrade()
    return Registry(gwt.make_config(registry={"trusted_keys": [str(signer[1])]}))


def test_signed_push_promote_and_rollback(reg: Any, gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                          gwt: Any) -> None:
    src = gw_home / "src-rb"
    v1 = reg.push(gwt.signed_copy(digits_pt, src / "a", "benign.pt", signer[0]), "rb")
    assert v1.version == "1" and v1.verified and v1.aliases == ["production"]
    assert v1.signer and v1.scan_verdict in ("clean", "safe", "low", "info")
    stored = Path(v1.path)
    assert stored.is_file() and oct(stored.stat().st_mode & 0o777) == "0o444"
    v2 = reg.push(gwt.signed_copy(digits_pt, src / "b", "benign.pt", signer[0]), "rb")
    assert v2.version == "2" and v2.aliases == []  # not promoted automatically once production exists
    out = reg.promote("rb", "2")
    assert out["previous_version"] == "1" and reg.resolve("rb").version == "2"
    back = reg.rollback("rb")
    assert back["rolled_back_from"] == "2" and back["version"] == "1" and reg.resolve("rb").version == "1"
    from bastion.core.errors import RegistryError

    with pytest.raises(RegistryError, match="no verified version older"):
        reg.rollback("rb")
    with pytest.raises(RegistryError, match="immutable"):
        reg.push(gwt.signed_copy(digits_pt, src / "c", "benign.pt", signer[0]), "rb", "2")


def test_unsigned_tampered_and_unsafe_models_are_refused(reg: Any, gw_home: Path, signer: tuple[Path, Path],
                                                         digits_pt: Path, gwt: Any) -> None:
    from bastion.core.errors import AuthError, SignatureError, UnsafeArtifactError
    from bastion.gateway.auth import ROLE_SCOPES, Principal

    d = gw_home / "src-bad"
    d.mkdir()
    unsigned = d / "benign.pt"
    shutil.copyfile(digits_pt, unsigned)
    (d / "benign.pt.bastion.json").write_text(json.dumps({"input_shape": [1, 8, 8]}))
    with pytest.raises(SignatureError, match="refusing unsigned"):
        reg.push(unsigned, "bad")
    tampered = gwt.signed_copy(digits_pt, d / "t", "benign.pt", signer[0])
    with tampered.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(SignatureError):
        reg.push(tampered, "bad")

    class Evil:
        def __reduce__(self) -> Any:
            import os

            return (os.system, ("echo pwned",))

    evil = d / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UnsafeArtifactError):
        reg.push(evil, "bad", allow_unsigned=True)
    operator = Principal(id="op", name="op", role="operator", scopes=ROLE_SCOPES["operator"])
    with pytest.raises(AuthError):
        reg.push(unsigned, "bad", allow_unsigned=True, actor=operator)
    assert reg.list("bad") == []
    # the admin override registers it, unverified, not promoted, and audited
    info = reg.push(unsigned, "bad", allow_unsigned=True)
    assert not info.verified and info.aliases == [] and "not signed" in info.details["signature_problem"]
    from bastion.gateway.audit import export_records

    pushes = [r for r in export_records() if r["action"] == "registry.push" and r["body"]["model"] == "bad"]
    assert pushes and pushes[-1]["body"]["allowed_unsigned"] is True and pushes[-1]["actor"] == "local:local"


def _cli(*args: str) -> Any:
    from bastion.cli.main import build_app

    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


def test_cli_registry_clients_audit_db(reg: Any, gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                       gwt: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(f"gateway:\n  sandbox:\n    loader: hostile_models:load\n    python_path: ['{gwt.here}']\n"
                   f"  registry:\n    trusted_keys: ['{signer[1]}']\n")
    assert _cli("db", "upgrade").exit_code == 0
    m = gwt.signed_copy(digits_pt, gw_home / "src-cli", "benign.pt", signer[0])
    r = _cli("registry", "push", str(m), "--name", "cli", "--config", str(cfg), "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["aliases"] == ["production"]
    r = _cli("registry", "list", "cli", "--config", str(cfg), "--format", "json")
    assert [v["version"] for v in json.loads(r.stdout)] == ["1"]
    r = _cli("clients", "create", "svc", "--role", "client", "--models", "cli", "--scopes", "predict",
             "--format", "json")
    created = json.loads(r.stdout)
    assert created["api_key"].startswith("bst_") and created["scopes"] == ["predict"]
    for role in ("operator", "admin"):  # least privilege: no implied '*' for any role
        r = _cli("clients", "create", f"no-models-{role}", "--role", role)
        assert r.exit_code == 2 and "--models" in r.output, r.output
    r = _cli("clients", "create", "all-ops", "--role", "operator", "--models", "*", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["models"] == ["*"]
    r = _cli("clients", "list", "--format", "json")
    assert created["api_key"] not in r.stdout and any(c["name"] == "svc" for c in json.loads(r.stdout))
    r = _cli("clients", "revoke", "svc", "--format", "json")
    assert json.loads(r.stdout)["revoked_at"]
    r = _cli("audit", "verify", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True
    out = tmp_path / "audit.json"
    r = _cli("audit", "export", "--from", "1", "--out", str(out))
    assert r.exit_code == 0
    doc = json.loads(out.read_text())
    assert doc["records"] and doc["records"][0]["seq"] == 1
    # bad input: exit 2 with a one-line error, never a traceback
    from bastion.core.errors import BastionError

    with pytest.raises(BastionError):
        _cli("registry", "push", str(tmp_path / "missing.pt"), "--name", "x", "--config", str(cfg))


def test_control_functions_for_playbooks(reg: Any, gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                         gwt: Any) -> None:
    from bastion.gateway import control
    from bastion.gateway.audit import export_records
    from bastion.gateway.clients import create_client, list_clients

    cfg = reg.config
    for sub in ("a", "b"):
        reg.push(gwt.signed_copy(digits_pt, gw_home / "src-ctl" / sub, "benign.pt", signer[0]), "ctl",
                 promote=True)
    assert reg.resolve("ctl").version == "2"
    assert control.rollback("ctl", config=cfg)["version"] == "1"
    assert control.set_output_policy("ctl", {"type": "label_only"}, config=cfg)["output_policy"]["type"] == "label_only"
    assert control.output_policy("ctl", config=cfg) == {"type": "label_only"}
    from bastion.core.errors import ConfigError

    with pytest.raises(ConfigError):
        control.set_output_policy("ctl", {"type": "leak_everything"}, config=cfg)
    info, _ = create_client("suspect", "client", ["ctl"])
    assert control.throttle_client(info.id, requests="5/minute", config=cfg).budget == {"requests": "5/minute"}
    assert control.revoke_client(info.id, reason="extraction", config=cfg).revoked_at is not None
    assert not next(c for c in list_clients() if c.id == info.id).active
    actions = [r["action"] for r in export_records()]
    assert {"registry.rollback", "registry.set_output_policy", "clients.throttle", "clients.revoke"} <= set(actions)


def test_push_through_the_admin_api_and_rollback_under_load(reg: Any, gw_home: Path, signer: tuple[Path, Path],
                                                             digits_pt: Path, gwt: Any) -> None:
    import threading

    import numpy as np
    from fastapi.testclient import TestClient

    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client

    _, admin = create_client("api-admin", "admin", ["*"])
    _, ops = create_client("api-ops", "operator", ["*"])
    app = create_app(reg.config, preload=False)
    with TestClient(app) as client:
        for sub in ("x", "y"):
            m = gwt.signed_copy(digits_pt, gw_home / "src-api" / sub, "benign.pt", signer[0])
            files = {"model": ("benign.pt", m.read_bytes()), "signature": ("benign.pt.sig", Path(f"{m}.sig").read_bytes()),
                     "attestation": ("a.json", Path(f"{m}.att.json").read_bytes()),  # covers the signed sidecar
                     "sidecar": ("x.json", Path(f"{m}.bastion.json").read_bytes())}
            r = client.post("/v1/models/live/versions", files=files, headers={"Authorization": f"Bearer {ops}"})
            assert r.status_code == 201, r.text
            assert r.json()["verified"] is True and r.json()["path"] is None
        unsigned = {"model": ("benign.pt", digits_pt.read_bytes()),
                    "sidecar": ("x.json", b'{"input_shape": [1, 8, 8]}')}
        r = client.post("/v1/models/live/versions", files=unsigned, headers={"Authorization": f"Bearer {ops}"})
        assert r.status_code == 400 and "refusing unsigned" in r.text
        r = client.post("/v1/models/live/versions", files=unsigned, data={"allow_unsigned": "true"},
                        headers={"Authorization": f"Bearer {ops}"})
        assert r.status_code == 403  # only admins may override
        assert [v["version"] for v in client.get("/v1/models/live", headers={
            "Authorization": f"Bearer {ops}"}).json()["versions"]] == ["1", "2"]
        # promote/rollback back and forth while four clients keep predicting: no request fails
        _, key = create_client("live-client", "client", ["live"])
        body = {"inputs": np.full((1, 64), 0.5).tolist()}
        seen: list[tuple[int, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                resp = client.post("/v1/models/live/predict", json=body, headers={"Authorization": f"Bearer {key}"})
                seen.append((resp.status_code, resp.json().get("version", "")))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        h = {"Authorization": f"Bearer {admin}"}
        for _ in range(3):
            assert client.post("/v1/models/live/promote", json={"version": "2"}, headers=h).status_code == 200
            assert client.post("/v1/models/live/rollback", headers=h).json()["version"] == "1"
        stop.set()
        for t in threads:
            t.join()
        assert seen and all(code == 200 for code, _ in seen)
        assert {v for _, v in seen} <= {"1", "2"}


def test_required_attestation_is_enforced(reg: Any, gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                          gwt: Any) -> None:
    from bastion.core.errors import SignatureError
    from bastion.gateway.registry import Registry

    strict = Registry(gwt.make_config(registry={"trusted_keys": [str(signer[1])], "require_attestation": True}))
    ok = gwt.signed_copy(digits_pt, gw_home / "src-att" / "ok", "benign.pt", signer[0])
    assert strict.push(ok, "attested").verified
    bare = gwt.signed_copy(digits_pt, gw_home / "src-att" / "bare", "benign.pt", signer[0])
    Path(f"{bare}.att.json").unlink()
    with pytest.raises(SignatureError, match="attestation"):
        strict.push(bare, "attested")
