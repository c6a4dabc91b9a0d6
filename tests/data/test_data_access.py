"""Data-set access control end to end, on SQLite and PostgreSQL, through the CLI:

grant → encrypt → decrypt by a grantee → refused decrypt by a non-grantee → revoke → re-key → old grantee
refused (by Bastion and by the cryptography), ``dataset:NAME`` reads, every step in the hash-chained audit
log, ``audit export --dataset``, and a tampered record found by ``audit verify``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from bastion.core.errors import AuthError, BastionError, IntegrityError


class Res:
    def __init__(self, code: int, stdout: str, output: str) -> None:
        self.code, self.stdout, self.output = code, stdout, output

    def json(self) -> Any:
        return json.loads(self.stdout)


def _cli() -> Callable[..., Res]:
    from typer.testing import CliRunner

    from bastion.cli.main import build_app

    app, runner = build_app(), CliRunner()

    def invoke(*args: str) -> Res:
        r = runner.invoke(app, list(args))
        code = r.exception.exit_code if isinstance(r.exception, BastionError) else r.exit_code
        return Res(code, r.stdout, r.output + (str(r.exception) if isinstance(r.exception, BastionError) else ""))

    return invoke


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, bastion_home: Path, monkeypatch: pytest.MonkeyPatch,
          pg_schema: Callable[[str], AbstractContextManager[str]]) -> Iterator[str]:
    from bastion.store.db import dispose_engines

    if request.param == "sqlite":
        yield "sqlite"
        dispose_engines()
        return
    with pg_schema("dacc") as url:
        monkeypatch.setenv("BASTION_DB_URL", url)
        yield url


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    pd.DataFrame({"age": rng.integers(18, 90, 3000), "income": rng.normal(50, 10, 3000).round(2),
                  "y": rng.integers(0, 2, 3000)}).to_csv(tmp_path / "credit.csv", index=False)
    return tmp_path


def test_grant_encrypt_decrypt_refuse_revoke_rekey_end_to_end(store: str, people: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.data.privacy.encryption import decrypt_with_data_key
    from bastion.data.privacy.recipients import file_key, load_identity
    from bastion.datasets.files import read_data_file
    from bastion.gateway.dataset_keys import _open_epoch_key
    from bastion.gateway.datasets import _get_dataset
    from bastion.store.db import session_scope

    cli = _cli()
    for who in ("alice", "bob", "eve"):
        assert cli("principals", "keygen", "--out", who).code == 0
        assert cli("principals", "add", who, "--key", f"{who}.pub").code == 0
    assert (people / "alice.key").stat().st_mode & 0o777 == 0o600
    r = cli("data", "register", "credit.csv", "--name", "credit", "--classification", "restricted", "--format", "json")
    assert r.code == 0 and r.json()["files"][0]["path"] == "credit.csv"
    # restricted: a grant without a purpose is refused (exit 2), nothing recorded
    r = cli("data", "grant", "credit", "--to", "alice")
    assert r.code == 2 and "purpose" in r.output
    assert cli("data", "grant", "credit", "--to", "alice", "--role", "reader", "--purpose", "credit model v3",
               "--expires", "2099-12-31").code == 0
    r = cli("data", "encrypt", "credit", "--format", "json")
    assert r.code == 0, r.output
    enc = r.json()
    assert enc["readers"] == ["alice"] and enc["epoch"] == 1
    e1 = Path(enc["encrypted_dir"]) / "credit.csv.benc"
    assert b"income" not in e1.read_bytes()
    r = cli("data", "grant", "credit", "--to", "bob", "--purpose", "fairness audit", "--format", "json")
    assert r.code == 0 and r.json()["status"] == "active"

    # a grantee decrypts; the plaintext is the registered file, byte for byte
    for who in ("alice", "bob"):
        r = cli("data", "decrypt", "credit", "--key", f"{who}.key", "--out", f"out_{who}", "--format", "json")
        assert r.code == 0, r.output
        assert (people / f"out_{who}" / "credit.csv").read_bytes() == (people / "credit.csv").read_bytes()
    # a registered principal without a grant is refused, and nothing is written
    r = cli("data", "decrypt", "credit", "--key", "eve.key", "--out", "out_eve")
    assert r.code == 2 and "never granted" in r.output
    assert not (people / "out_eve").exists()

    with session_scope() as s:  # what bob could have kept: the epoch-1 data key
        bob_old_key = _open_epoch_key(s, _get_dataset(s, "credit"), "bob", load_identity("bob.key"))
    r = cli("data", "revoke", "credit", "--from", "bob", "--reason", "left the project", "--format", "json")
    assert r.code == 0, r.output
    rk = r.json()["rekey"]
    assert (rk["old_epoch"], rk["epoch"], rk["readers"]) == (1, 2, ["alice"])
    assert rk["bytes_reencrypted"] == (people / "credit.csv").stat().st_size
    assert not e1.exists()  # the old epoch's ciphertext is gone
    r = cli("data", "decrypt", "credit", "--key", "bob.key", "--out", "out_bob2")
    assert r.code == 2 and "revoked" in r.output
    # and cryptographically: bob's old key does not open the re-encrypted file
    with session_scope() as s:
        ds = _get_dataset(s, "credit")
        fid, e2 = bytes.fromhex(ds.encrypted_files[0]["file_id"]), Path(str(ds.encrypted_dir)) / ds.encrypted_files[0]["ciphertext"]
    assert e2.parent.name.startswith("e2-") and e2.is_file()
    with pytest.raises(IntegrityError):
        decrypt_with_data_key(e2, people / "stolen.csv", file_key(bob_old_key, fid))
    assert not (people / "stolen.csv").exists()
    r = cli("data", "decrypt", "credit", "--key", "alice.key", "--out", "out_alice2")
    assert r.code == 0 and (people / "out_alice2" / "credit.csv").read_bytes() == (people / "credit.csv").read_bytes()

    # --data dataset:NAME: the grant is checked and the read logged
    monkeypatch.setenv("BASTION_PRINCIPAL_KEY", str(people / "alice.key"))
    data = read_data_file("dataset:credit", label="y")
    assert data.splits.x_test is not None and data.splits.x_test.shape == (3000, 2) and data.path == "dataset:credit"
    monkeypatch.setenv("BASTION_PRINCIPAL_KEY", str(people / "bob.key"))
    with pytest.raises(AuthError, match="revoked"):
        read_data_file("dataset:credit", label="y")

    r = cli("data", "access", "credit", "--all", "--format", "json")
    assert {(g["principal"], g["status"]) for g in r.json()} == {("alice", "active"), ("bob", "revoked")}

    # every step is in the audit log, and export --dataset answers who accessed the data and when
    assert cli("audit", "checkpoint").code == 0
    r = cli("audit", "export", "--dataset", "credit")
    assert r.code == 0
    recs = r.json()["records"]
    steps = [(x["action"], x["actor"].split(":")[-1]) for x in recs]
    assert steps == [
        ("data.register", steps[0][1]), ("data.grant", steps[0][1]), ("data.encrypt", steps[0][1]),
        ("data.grant", steps[0][1]), ("data.decrypt", "alice"), ("data.decrypt", "bob"),
        ("data.decrypt.refused", "eve"), ("data.revoke", steps[0][1]), ("data.rekey", steps[0][1]),
        ("data.decrypt.refused", "bob"), ("data.decrypt", "alice"), ("data.read", "alice"),
        ("data.read.refused", "bob"),
    ]
    assert all(x["proof"] is not None and x["ts"] > 0 for x in recs)
    assert recs[3]["body"]["key_wrapped"] is True and recs[1]["body"]["purpose"] == "credit model v3"
    assert cli("audit", "verify").code == 0

    # tamper one record (hide that bob decrypted): verify finds exactly that record
    from bastion.store.db import get_engine

    seq = recs[5]["seq"]
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE gateway_audit SET actor = 'principal:alice' WHERE seq = :s"), {"s": seq})
    r = cli("audit", "verify", "--format", "json")
    assert r.code == 1 and r.json()["first_bad_seq"] == seq and "modified" in r.json()["problem"]


def test_expired_grant_is_refused_and_rotate_drops_it(bastion_home: Path, people: Path) -> None:
    from bastion.gateway import dataset_keys, datasets
    from bastion.store.db import session_scope, upgrade
    from bastion.store.models_data import DataGrant

    upgrade()
    from bastion.data.privacy.recipients import generate_identity

    for who in ("ann", "ben"):
        generate_identity(who)
        datasets.add_principal(who, f"{who}.pub")
    datasets.register_dataset("credit.csv", "c2", classification="confidential")
    datasets.grant("c2", "ann")
    g = datasets.grant("c2", "ben", expires="2099-01-01")
    dataset_keys.encrypt_dataset("c2")
    from datetime import UTC, datetime, timedelta

    with session_scope() as s:
        s.get(DataGrant, g.id).expires_at = datetime.now(UTC) - timedelta(seconds=1)  # type: ignore[union-attr]
    with pytest.raises(AuthError, match="expired"):
        dataset_keys.decrypt_dataset("c2", "ben.key", "out")
    r = dataset_keys.rekey_dataset("c2", reason="expiry")
    assert r["readers"] == ["ann"] and r["epoch"] == 2
    assert dataset_keys.decrypt_dataset("c2", "ann.key", "out")["bytes"] == (people / "credit.csv").stat().st_size


def test_bad_inputs_are_clear_errors(bastion_home: Path, people: Path) -> None:
    cli = _cli()
    assert cli("principals", "keygen", "--out", "k").code == 0
    r = cli("principals", "add", "x", "--key", "nope.pub")
    assert r.code == 2 and "not found" in r.output
    from bastion.artifacts.keys import generate_keypair

    generate_keypair("ecdsa")  # a signing key is not an X25519 key
    r = cli("principals", "add", "x", "--key", "ecdsa.pub")
    assert r.code == 2 and "X25519" in r.output
    assert cli("data", "register", "credit.csv", "--name", "c", "--classification", "secret").code == 2
    assert cli("data", "register", "credit.csv", "--name", "c").code == 0
    assert cli("data", "register", "credit.csv", "--name", "c").code == 2  # name taken
    assert cli("data", "grant", "c", "--to", "nobody").code == 2
    assert cli("principals", "add", "k", "--key", "k.pub").code == 0
    r = cli("data", "grant", "c", "--to", "k", "--expires", "2001-01-01")
    assert r.code == 2 and "past" in r.output
    r = cli("data", "encrypt", "c")
    assert r.code == 2 and "public key" in r.output  # no reader with a key yet
    assert cli("data", "revoke", "c", "--from", "k").code == 2  # holds no grant


def test_wrap_is_bound_to_dataset_epoch_and_reader() -> None:
    import os

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from bastion.data.privacy.recipients import unwrap_key, wrap_key

    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    key, ctx = os.urandom(32), {"dataset": "d", "epoch": 1, "files": ["00"]}
    w = wrap_key(key, a.public_key(), ctx)
    assert unwrap_key(w, a, ctx) == key
    for other_ctx in ({**ctx, "epoch": 2}, {**ctx, "dataset": "e"}, {**ctx, "files": ["01"]}):
        with pytest.raises(IntegrityError):
            unwrap_key(w, a, other_ctx)
    with pytest.raises(IntegrityError):
        unwrap_key(w, b, ctx)


@pytest.mark.parametrize("when", ["before_reading", "before_commit"])
def test_concurrent_rekey_loses_cleanly_and_the_data_stays_readable(when: str, bastion_home: Path, people: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two re-keys race: the one that commits second is refused (its ciphertext removed), the store stays on the
    winner's epoch and the remaining reader decrypts it."""
    import bastion.data.privacy.encryption as enc
    from bastion.core.errors import RegistryError
    from bastion.data.privacy.recipients import generate_identity
    from bastion.gateway import dataset_keys, datasets
    from bastion.store.db import upgrade

    upgrade()
    for who in ("ann", "ben"):
        generate_identity(who)
        datasets.add_principal(who, f"{who}.pub")
    datasets.register_dataset("credit.csv", "c3")
    datasets.grant("c3", "ann")
    dataset_keys.encrypt_dataset("c3")
    real = enc.reencrypt_with_data_key
    raced: list[dict[str, Any]] = []
    started: list[bool] = []

    def racing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        first = not started
        started.append(True)
        if first and when == "before_reading":  # another process re-keys and commits before this one reads
            raced.append(dataset_keys.rekey_dataset("c3", reason="winner"))
        out = real(*args, **kwargs)
        if first and when == "before_commit":  # ... or after this one re-encrypted, before it commits
            raced.append(dataset_keys.rekey_dataset("c3", reason="winner"))
        return out

    monkeypatch.setattr(enc, "reencrypt_with_data_key", racing)
    root = Path(str(datasets.show_dataset("c3").encrypted_dir))
    with pytest.raises(RegistryError, match="meanwhile"):
        dataset_keys.rekey_dataset("c3", reason="loser")
    assert raced and raced[0]["epoch"] == 2 and datasets.show_dataset("c3").key_epoch == 2
    assert [d.name for d in root.iterdir()] == [Path(raced[0]["encrypted_dir"]).name]  # loser's files removed
    assert dataset_keys.decrypt_dataset("c3", "ann.key", "out")["epoch"] == 2


def test_gateway_clients_are_principals(bastion_home: Path, people: Path) -> None:
    from bastion.data.privacy.recipients import generate_identity
    from bastion.gateway import dataset_keys, datasets
    from bastion.gateway.clients import create_client
    from bastion.store.db import upgrade

    upgrade()
    info, _ = create_client("scoring-svc", "client", ["*"])
    assert any(p.name == "scoring-svc" and p.kind == "client" for p in datasets.list_principals())
    datasets.register_dataset("credit.csv", "c4")
    g = datasets.grant("c4", "scoring-svc", purpose="batch scoring")  # a client becomes a principal on its grant
    assert g.principal == "scoring-svc" and g.key_fingerprint is None
    with pytest.raises(Exception, match="public key"):
        dataset_keys.encrypt_dataset("c4")  # nobody could decrypt it
    generate_identity("svc")
    p = datasets.add_principal("scoring-svc", "svc.pub", client=info.id)
    assert p.client_id == info.id and p.kind == "client" and p.key_fingerprint
    assert dataset_keys.encrypt_dataset("c4")["readers"] == ["scoring-svc"]
    assert dataset_keys.decrypt_dataset("c4", "svc.key", "out")["principal"] == "scoring-svc"
