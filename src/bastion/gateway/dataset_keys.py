"""Encrypt a registered data set once for all its readers, decrypt for a current grantee only, re-key on revoke.

Key hierarchy (one *key epoch* at a time per data set):

- epoch key ``K_e``: random 256 bits; file ``f`` is encrypted with ``HKDF(K_e, salt=file_id_f)`` as a
  ``BASTENC1`` stream (AES-256-GCM, authenticated 1 MiB chunks: :mod:`bastion.data.privacy.encryption`);
- ``K_e`` is HPKE-wrapped (X25519, :mod:`bastion.data.privacy.recipients`) to every current reader's
  public key and to the *custodian* key, one ``data_key_wraps`` row each; the wrap is bound to the data
  set, the epoch, the ciphertext file ids and the recipient.

Granting a reader adds one wrap (the custodian opens ``K_e``); nothing is re-encrypted. Revoking a reader
starts epoch ``e+1``: a new key, the ciphertext re-encrypted in one streamed pass (each chunk authenticated
under the old key and sealed under the new one in memory), wraps for the remaining readers only, the old
epoch's ciphertext and wraps deleted. A revoked reader who kept ``K_e`` (or the plaintext) can still read
what they already downloaded; they cannot read the new ciphertext.

The custodian key (``$BASTION_DATA_CUSTODIAN_KEY`` or ``$BASTION_HOME/data/custodian.key``, 0600, made on
first use) plays the part of a KMS: whoever holds it can open every data set's key. Keep it on the
administrator's host.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from bastion.core.errors import AuthError, ConfigError, IntegrityError, InvalidInputError, RegistryError
from bastion.gateway.datasets import _get_dataset, _iso, audit_data, current_grants, local_actor
from bastion.store.db import session_scope
from bastion.store.models_data import DataDataset, DataKeyWrap, DataPrincipal

CUSTODIAN = "bastion.custodian"
CUSTODIAN_ENV = "BASTION_DATA_CUSTODIAN_KEY"
IDENTITY_ENV = "BASTION_PRINCIPAL_KEY"
SCHEME = "bastion-dataset/v1"
SUFFIX = ".benc"


# ------------------------------------------------------------------------------------------ keys
def custodian_key_path() -> Path:
    from bastion.core.paths import bastion_home

    env = os.environ.get(CUSTODIAN_ENV)
    return Path(env) if env else bastion_home() / "data" / "custodian.key"


def _custodian(s: Session, create: bool) -> tuple[Any, DataPrincipal]:
    """The custodian's private key and principal row (created with its key file on first use)."""
    from bastion.data.privacy.recipients import fingerprint, generate_identity, load_identity, public_pem

    path = custodian_key_path()
    if not path.exists():
        if not create:
            raise ConfigError(f"the data custodian key {path} is missing: the data keys cannot be opened to "
                              f"re-wrap or re-key (restore it, or set ${CUSTODIAN_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        generate_identity(path.with_name(path.name.removesuffix(".key")))
    key = load_identity(path)
    fp = fingerprint(key.public_key())
    row = s.get(DataPrincipal, CUSTODIAN)
    if row is None:
        row = DataPrincipal(name=CUSTODIAN, kind="custodian", public_key=public_pem(key.public_key()),
                            key_fingerprint=fp, client_id=None, note=f"data custodian key {path}",
                            created_at=datetime.now(UTC), created_by=local_actor())
        s.add(row)
        s.flush()
    elif row.key_fingerprint != fp:
        raise ConfigError(f"{path} is not the custodian key this store was encrypted for "
                          f"(expected key {str(row.key_fingerprint)[:16]}…)")
    return key, row


def _context(ds: DataDataset, epoch: int, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dataset": ds.name, "epoch": epoch, "manifest_sha256": ds.manifest_sha256,
            "files": sorted(f["file_id"] for f in files)}


def _readers(s: Session, ds: DataDataset) -> tuple[list[DataPrincipal], list[str]]:
    """Current readers with a public key, and the names of those without one (they cannot decrypt)."""
    with_key: dict[str, DataPrincipal] = {}
    without: list[str] = []
    for g in current_grants(s, ds):
        p = s.get(DataPrincipal, g.principal)
        if p is not None and p.public_key:
            with_key[p.name] = p
        elif g.principal not in without:
            without.append(g.principal)
    return list(with_key.values()), without


def _wrap_rows(ds: DataDataset, epoch: int, key: bytes, files: list[dict[str, Any]],
               recipients: list[DataPrincipal]) -> list[DataKeyWrap]:
    from bastion.data.privacy.recipients import parse_public, wrap_key

    ctx = _context(ds, epoch, files)
    now = datetime.now(UTC)
    return [DataKeyWrap(dataset_id=ds.id, epoch=epoch, principal=p.name, key_fingerprint=p.key_fingerprint,
                        wrapped_key=wrap_key(key, parse_public(str(p.public_key), p.name), ctx), created_at=now)
            for p in recipients]


def _open_epoch_key(s: Session, ds: DataDataset, principal: str, identity: Any) -> bytes:
    from bastion.data.privacy.recipients import unwrap_key

    w = s.execute(select(DataKeyWrap).where(DataKeyWrap.dataset_id == ds.id, DataKeyWrap.epoch == ds.key_epoch,
                                            DataKeyWrap.principal == principal)).scalar_one_or_none()
    if w is None:
        raise AuthError(f"no wrapped key for {principal!r} in key epoch {ds.key_epoch} of {ds.name!r}")
    return unwrap_key(w.wrapped_key, identity, _context(ds, ds.key_epoch, list(ds.encrypted_files)))


def _base(ds: DataDataset) -> Path:
    p = Path(ds.path)
    return p if p.is_dir() else p.parent


def _epoch_dir(ds: DataDataset, epoch: int) -> Path:
    """A fresh directory for one attempt at an epoch (two concurrent attempts never write the same files)."""
    return Path(str(ds.encrypted_dir)) / f"e{epoch}-{secrets.token_hex(4)}"


def _ciphertext(ds: DataDataset, f: dict[str, Any]) -> Path:
    return Path(str(ds.encrypted_dir)) / f["ciphertext"]


def _commit_epoch(s: Session, ds: DataDataset, old_epoch: int, new_epoch: int, files: list[dict[str, Any]],
                  wraps: list[DataKeyWrap], encrypted_dir: str | None = None) -> None:
    """Point the data set at the new epoch only if nobody else did meanwhile (optimistic concurrency)."""
    values: dict[str, Any] = {"key_epoch": new_epoch, "encrypted_files": files}
    if encrypted_dir is not None:
        values["encrypted_dir"] = encrypted_dir
    res = s.execute(update(DataDataset).where(DataDataset.id == ds.id, DataDataset.key_epoch == old_epoch)
                    .values(**values).execution_options(synchronize_session=False))
    if getattr(res, "rowcount", 1) != 1:
        raise RegistryError(f"{ds.name!r} was encrypted or re-keyed by another process meanwhile; nothing was "
                            "changed, run the command again")
    s.execute(delete(DataKeyWrap).where(DataKeyWrap.dataset_id == ds.id))
    s.add_all(wraps)


def _envelope(ds: DataDataset, epoch: int, rel: str) -> dict[str, Any]:
    from bastion.data.privacy.recipients import SUITE_NAME

    return {"scheme": SCHEME, "dataset": ds.name, "epoch": epoch, "path": rel, "wrap": SUITE_NAME}


# ------------------------------------------------------------------------------------------ encrypt
def encrypt_dataset(name: str, out_dir: str | Path | None = None, chunk_size: int = 1 << 20,
                    db_url: str | None = None, actor: str | None = None) -> dict[str, Any]:
    """Encrypt the registered files once (epoch 1) and wrap the key for every current reader and the custodian."""
    from bastion.core.paths import bastion_home, sha256_file
    from bastion.data.privacy.encryption import encrypt_with_data_key
    from bastion.data.privacy.recipients import file_key

    actor = actor or local_actor()
    t0 = time.perf_counter()
    out: Path | None = None
    try:
        with session_scope(db_url) as s:
            ds = _get_dataset(s, name)
            if ds.key_epoch > 0:
                raise RegistryError(f"{name!r} is already encrypted (key epoch {ds.key_epoch}) in {ds.encrypted_dir}; "
                                    "revoking a reader or bastion data rotate re-keys it")
            readers, without = _readers(s, ds)
            if not readers:
                raise ConfigError(f"no current reader of {name!r} has a public key: grant one first "
                                  "(bastion principals add NAME --key PUB; bastion data grant ...)")
            _, cust = _custodian(s, create=True)
            root = str(Path(out_dir).resolve() if out_dir else bastion_home() / "datasets" / name)
            ds.encrypted_dir = root
            out = _epoch_dir(ds, 1)
            epoch_key = os.urandom(32)
            files, total = [], 0
            for f in ds.manifest["files"]:
                src = _base(ds) / f["path"]
                if not src.is_file() or sha256_file(src) != f["sha256"]:
                    raise IntegrityError(f"{src} is missing or no longer matches the registered digest; "
                                         "nothing was encrypted")
                fid = os.urandom(16)
                dst = out / (f["path"] + SUFFIX)
                dst.parent.mkdir(parents=True, exist_ok=True)
                info = encrypt_with_data_key(src, dst, file_key(epoch_key, fid), _envelope(ds, 1, f["path"]), fid,
                                             chunk_size)
                files.append({"path": f["path"], "file_id": fid.hex(), "ciphertext": f"{out.name}/{f['path']}{SUFFIX}"})
                total += info["bytes"]
            _commit_epoch(s, ds, 0, 1, files, _wrap_rows(ds, 1, epoch_key, files, [*readers, cust]), root)
            summary = {"dataset": name, "epoch": 1, "encrypted_dir": str(out), "files": len(files), "bytes": total,
                       "readers": sorted(p.name for p in readers), "readers_without_key": without,
                       "custodian_key": cust.key_fingerprint, "seconds": round(time.perf_counter() - t0, 3)}
    except BaseException:
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        raise
    audit_data(db_url, actor, "data.encrypt", {k: v for k, v in summary.items() if k != "seconds"})
    return summary


def wrap_for_reader(name: str, principal: str, db_url: str | None = None) -> bool:
    """Give a newly granted reader a wrap of the current epoch key (the custodian opens it); no re-encryption."""
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        p = s.get(DataPrincipal, principal)
        if ds.key_epoch == 0 or p is None or not p.public_key:
            return False
        exists = s.execute(select(DataKeyWrap).where(DataKeyWrap.dataset_id == ds.id, DataKeyWrap.epoch ==
                                                     ds.key_epoch, DataKeyWrap.principal == principal)).first()
        if exists:
            return True
        cust_key, _ = _custodian(s, create=False)
        key = _open_epoch_key(s, ds, CUSTODIAN, cust_key)
        s.add_all(_wrap_rows(ds, ds.key_epoch, key, list(ds.encrypted_files), [p]))
        try:
            s.flush()
        except SAIntegrityError:  # another process wrapped it meanwhile
            s.rollback()
    return True


def show_epoch(name: str, db_url: str | None = None) -> int:
    with session_scope(db_url) as s:
        return int(_get_dataset(s, name).key_epoch)


def _reconcile(name: str, db_url: str | None) -> list[str]:
    """Wrap the current key for every current reader that lacks a wrap (a grant that raced a re-key)."""
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        readers, _ = _readers(s, ds)
        have = set(s.execute(select(DataKeyWrap.principal).where(DataKeyWrap.dataset_id == ds.id,
                                                                  DataKeyWrap.epoch == ds.key_epoch)).scalars())
        missing = [p.name for p in readers if p.name not in have]
    return [p for p in missing if wrap_for_reader(name, p, db_url)]


def rekey_dataset(name: str, reason: str = "", db_url: str | None = None, actor: str | None = None) -> dict[str, Any]:
    """Start a new key epoch: new key, ciphertext re-encrypted once (streamed, no plaintext on disk), wraps for the
    current readers (revoked and expired ones drop out) and the custodian; the old epoch is deleted."""
    from bastion.data.privacy.encryption import reencrypt_with_data_key
    from bastion.data.privacy.recipients import file_key

    actor = actor or local_actor()
    t0 = time.perf_counter()
    out: Path | None = None
    old_epoch = 0
    try:
        with session_scope(db_url) as s:
            ds = _get_dataset(s, name)
            if ds.key_epoch == 0:
                raise RegistryError(f"{name!r} is not encrypted; nothing to re-key")
            old_epoch, new_epoch = int(ds.key_epoch), int(ds.key_epoch) + 1
            cust_key, cust = _custodian(s, create=False)
            old_key = _open_epoch_key(s, ds, CUSTODIAN, cust_key)
            readers, without = _readers(s, ds)
            new_key = os.urandom(32)
            old_files = list(ds.encrypted_files)
            old_dirs = {Path(str(ds.encrypted_dir)) / f["ciphertext"].split("/", 1)[0] for f in old_files}
            out = _epoch_dir(ds, new_epoch)
            files, total = [], 0
            for f in old_files:
                fid = os.urandom(16)
                dst = out / (f["path"] + SUFFIX)
                dst.parent.mkdir(parents=True, exist_ok=True)
                info = reencrypt_with_data_key(_ciphertext(ds, f), dst, file_key(old_key, bytes.fromhex(f["file_id"])),
                                               file_key(new_key, fid), _envelope(ds, new_epoch, f["path"]), fid)
                files.append({"path": f["path"], "file_id": fid.hex(), "ciphertext": f"{out.name}/{f['path']}{SUFFIX}"})
                total += info["bytes"]
            _commit_epoch(s, ds, old_epoch, new_epoch, files, _wrap_rows(ds, new_epoch, new_key, files, [*readers, cust]))
            summary: dict[str, Any] = {"dataset": name, "old_epoch": old_epoch, "epoch": new_epoch, "reason": reason,
                       "readers": sorted(p.name for p in readers), "readers_without_key": without,
                       "files": len(files), "bytes_reencrypted": total, "encrypted_dir": str(out)}
    except BaseException as exc:
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        if old_epoch and not isinstance(exc, RegistryError) and show_epoch(name, db_url) != old_epoch:
            raise RegistryError(f"{name!r} was re-keyed by another process meanwhile; nothing was changed, "
                                "run the command again") from exc
        raise
    for d in old_dirs:  # after the commit: the store never points at a deleted epoch
        shutil.rmtree(d, ignore_errors=True)
    late = _reconcile(name, db_url)
    if late:
        summary["readers"] = sorted({*summary["readers"], *late})
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    audit_data(db_url, actor, "data.rekey", {k: v for k, v in summary.items() if k != "seconds"})
    return summary


# ------------------------------------------------------------------------------------------ decrypt / read
def _authorise(name: str, identity_path: str | Path, db_url: str | None, action: str,
               context: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """Check that the holder of ``identity_path`` is a current grantee of ``name``; refusals are audited.

    Returns (identity, principal name, grant facts)."""
    from bastion.data.privacy.recipients import fingerprint, load_identity

    identity = load_identity(identity_path)
    fp = fingerprint(identity.public_key())
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        p = s.execute(select(DataPrincipal).where(DataPrincipal.key_fingerprint == fp)).scalar_one_or_none()
        grants = [g for g in current_grants(s, ds) if p is not None and g.principal == p.name]
        if p is None:
            why = "the key belongs to no registered principal"
        elif p.name == CUSTODIAN:
            why = "the custodian key re-wraps keys; it is not a reader"
        elif not grants:
            from bastion.store.models_data import DataGrant

            past = s.execute(select(DataGrant).where(DataGrant.dataset_id == ds.id, DataGrant.principal == p.name)
                             .order_by(DataGrant.id.desc())).scalars().first()
            why = ("never granted" if past is None else
                   f"grant {past.id} revoked at {_iso(past.revoked_at)}" if past.revoked_at is not None else
                   f"grant {past.id} expired at {_iso(past.expires_at)}")
        else:
            why = ""
        who = p.name if p is not None else None
        facts = {"grant_ids": [g.id for g in grants], "roles": sorted({g.role for g in grants}),
                 "purposes": sorted({g.purpose for g in grants if g.purpose})}
    if why:
        audit_data(db_url, f"principal:{who}" if who else f"key:{fp[:16]}", f"{action}.refused",
                   {"dataset": name, "principal": who, "key_fingerprint": fp, "reason": why, **context})
        raise AuthError(f"access to data set {name!r} refused: {why}")
    assert who is not None
    return identity, who, {"key_fingerprint": fp, **facts}


def _decrypt_files(name: str, identity: Any, principal: str, out: Path, db_url: str | None) -> dict[str, Any]:
    from bastion.core.paths import sha256_file
    from bastion.data.privacy.encryption import decrypt_with_data_key
    from bastion.data.privacy.recipients import file_key

    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        key = _open_epoch_key(s, ds, principal, identity)
        epoch, files = int(ds.key_epoch), list(ds.encrypted_files)
        digests = {f["path"]: f["sha256"] for f in ds.manifest["files"]}
        sources = {f["path"]: _ciphertext(ds, f) for f in files}
    total = 0
    written: list[Path] = []
    try:
        for f in files:
            dst = out / f["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            info = decrypt_with_data_key(sources[f["path"]], dst, file_key(key, bytes.fromhex(f["file_id"])))
            written.append(dst)
            if sha256_file(dst) != digests[f["path"]]:
                raise IntegrityError(f"{f['path']}: the decrypted file does not match the registered digest")
            total += info["bytes"]
    except BaseException:
        for w in written:
            w.unlink(missing_ok=True)
        raise
    return {"epoch": epoch, "files": len(files), "bytes": total}


def decrypt_dataset(name: str, identity_path: str | Path, out: str | Path, db_url: str | None = None) -> dict[str, Any]:
    """Decrypt ``name`` into the directory ``out`` for the holder of ``identity_path`` (a current grantee only).

    Both the decryption and a refusal go to the audit log."""
    out_p = Path(out)
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        if ds.key_epoch == 0:
            raise RegistryError(f"{name!r} is not encrypted (bastion data encrypt {name})")
    identity, who, facts = _authorise(name, identity_path, db_url, "data.decrypt", {"out": str(out_p)})
    res = _decrypt_files(name, identity, who, out_p, db_url)
    audit_data(db_url, f"principal:{who}", "data.decrypt", {"dataset": name, "principal": who, **facts, **res,
                                                            "out": str(out_p.resolve())})
    return {"dataset": name, "principal": who, "out": str(out_p), **facts, **res}


@contextmanager
def open_for_reading(name: str, purpose: str = "", db_url: str | None = None) -> Iterator[Path]:
    """``dataset:NAME`` for training and assessment commands: check the caller's grant (identity from
    ``$BASTION_PRINCIPAL_KEY``), log the read, and yield the data file (decrypted into a private temporary
    directory that is removed afterwards; an unencrypted data set is verified against its digest in place)."""
    from bastion.core.paths import sha256_file

    ident = os.environ.get(IDENTITY_ENV)
    if not ident:
        raise ConfigError(f"dataset:{name} needs the caller's identity: set ${IDENTITY_ENV} to your private key "
                          "(bastion principals keygen)")
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        files = list(ds.manifest["files"])
        encrypted, base = ds.key_epoch > 0, _base(ds)
    if len(files) != 1:
        raise InvalidInputError(f"dataset:{name} holds {len(files)} files; a training or assessment command reads "
                                "one data file (register it on its own)")
    identity, who, facts = _authorise(name, ident, db_url, "data.read", {"purpose": purpose})
    tmp: Path | None = None
    try:
        if encrypted:
            tmp = Path(tempfile.mkdtemp(prefix="bastion-dataset-"))
            res = _decrypt_files(name, identity, who, tmp, db_url)
            path = tmp / files[0]["path"]
        else:
            path = base / files[0]["path"]
            if sha256_file(path) != files[0]["sha256"]:
                raise IntegrityError(f"{path} no longer matches the digest registered for data set {name!r}")
            res = {"epoch": 0, "files": 1, "bytes": path.stat().st_size}
        command = " ".join(["bastion", *sys.argv[1:3]])
        audit_data(db_url, f"principal:{who}", "data.read", {"dataset": name, "principal": who, "purpose": purpose,
                                                             "command": command, **facts, **res})
        yield path
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
