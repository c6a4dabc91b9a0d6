"""The data-set registry: registered data sets, principals with public keys, and grants — every change audited.

Lives beside the model registry (same store, same hash-chained audit log): ``register`` records a data
set's integrity-manifest digest and classification; ``grant``/``revoke`` give or take a role
(``reader`` < ``writer`` < ``owner``; every role may read) with a purpose (required for ``restricted``
data) and an optional expiry; ``access`` answers who can read a data set, why and until when.
Principals are named people or teams with an X25519 public key, and the gateway's clients (a client is
made a principal the first time it is granted; give it a key with ``add_principal(..., client=...)``).
Key handling and encryption are in :mod:`bastion.gateway.dataset_keys`.
"""

from __future__ import annotations

import getpass
import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.errors import InvalidInputError, RegistryError
from bastion.gateway.registry import NAME_RE
from bastion.store.db import session_scope
from bastion.store.models_data import DataDataset, DataGrant, DataPrincipal

Classification = Literal["public", "internal", "confidential", "restricted"]
Role = Literal["reader", "writer", "owner"]
CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
ROLES: tuple[str, ...] = ("reader", "writer", "owner")
PRINCIPAL_KINDS: tuple[str, ...] = ("person", "team", "client")


def local_actor() -> str:
    """Who runs a local command, as recorded in the audit log."""
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


def audit_data(db_url: str | None, actor: str, action: str, body: dict[str, Any]) -> int:
    """Append one durable ``data`` record to the gateway's hash-chained audit log; returns its seq."""
    from bastion.gateway.audit import append_records, canonical
    from bastion.store.db import get_engine

    return append_records(get_engine(db_url), [("data", actor[:160], action, canonical(body), time.time())])[0]


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def _check_name(kind: str, name: str) -> None:
    if name == "bastion.custodian":
        raise InvalidInputError(f"{name!r} is reserved for the data custodian key")
    if not NAME_RE.match(name):
        raise InvalidInputError(f"{kind} name {name!r} is invalid: use letters, digits, '.', '_' or '-'")


# ------------------------------------------------------------------------------------------ principals
@dataclass
class PrincipalInfo:
    name: str
    kind: str
    key_fingerprint: str | None
    client_id: str | None
    note: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _principal_info(row: DataPrincipal) -> PrincipalInfo:
    return PrincipalInfo(row.name, row.kind, row.key_fingerprint, row.client_id, row.note or "",
                         _iso(row.created_at) or "")


def add_principal(name: str, key: str | Path | None, *, kind: str = "person", client: str | None = None,
                  note: str = "", db_url: str | None = None, actor: str | None = None) -> PrincipalInfo:
    """Register a person/team (or a gateway client, ``client=ID``) with its X25519 public key.

    A principal that already exists only gets a key if it has none (keys are never replaced silently:
    a new key is a new principal, so old grants never follow a key to someone else)."""
    from bastion.data.privacy.recipients import fingerprint, load_public, public_pem

    _check_name("principal", name)
    if kind not in PRINCIPAL_KINDS:
        raise InvalidInputError(f"unknown principal kind {kind!r}; choose one of {', '.join(PRINCIPAL_KINDS)}")
    pub = load_public(key) if key is not None else None
    fp = fingerprint(pub) if pub is not None else None
    client_id = None
    if client is not None:
        from bastion.gateway.clients import list_clients

        match = [c for c in list_clients(db_url) if client in (c.id, c.name)]
        if len(match) != 1:
            raise RegistryError(f"no single gateway client with id or name {client!r} (bastion clients list)")
        client_id, kind = match[0].id, "client"
    with session_scope(db_url) as s:
        if fp is not None:
            other = s.execute(select(DataPrincipal).where(DataPrincipal.key_fingerprint == fp)).scalar_one_or_none()
            if other is not None and other.name != name:
                raise RegistryError(f"this public key already belongs to principal {other.name!r}")
        row = s.get(DataPrincipal, name)
        if row is None:
            row = DataPrincipal(name=name, kind=kind, public_key=public_pem(pub) if pub else None, key_fingerprint=fp,
                                client_id=client_id, note=note, created_at=datetime.now(UTC),
                                created_by=actor or local_actor())
            s.add(row)
        elif row.key_fingerprint is not None and fp is not None and row.key_fingerprint != fp:
            raise RegistryError(f"principal {name!r} already has key {row.key_fingerprint[:16]}…; add the new key "
                                "under a new name and move the grants (keys are never replaced in place)")
        elif fp is not None:
            row.public_key, row.key_fingerprint = public_pem(pub) if pub else None, fp
        info = _principal_info(row)
    audit_data(db_url, actor or local_actor(), "data.principal.add",
               {"principal": name, "kind": info.kind, "key_fingerprint": fp, "client_id": client_id})
    return info


def list_principals(db_url: str | None = None, with_clients: bool = True) -> list[PrincipalInfo]:
    """Registered principals, plus gateway clients that are not principals yet (kind ``client``, no key)."""
    with session_scope(db_url) as s:
        rows = [_principal_info(r) for r in s.execute(select(DataPrincipal).order_by(DataPrincipal.name)).scalars()]
    if with_clients:
        from bastion.gateway.clients import list_clients

        known = {r.client_id for r in rows} | {r.name for r in rows}
        rows += [PrincipalInfo(c.name, "client", None, c.id, "gateway client (not granted yet)", c.created_at)
                 for c in list_clients(db_url) if c.id not in known and c.name not in known and c.active]
    return rows


def _principal_for(s: Session, ident: str, db_url: str | None, actor: str) -> DataPrincipal:
    row = s.get(DataPrincipal, ident)
    if row is not None:
        return row
    from bastion.gateway.clients import list_clients

    match = [c for c in list_clients(db_url) if ident in (c.id, c.name) and c.active]
    if len(match) != 1:
        raise RegistryError(f"no principal {ident!r}: add it with bastion principals add {ident} --key PUB "
                            "(or name an active gateway client)")
    c = match[0]
    row = DataPrincipal(name=c.name, kind="client", public_key=None, key_fingerprint=None, client_id=c.id,
                        note="gateway client", created_at=datetime.now(UTC), created_by=actor)
    s.add(row)
    s.flush()
    return row


# ------------------------------------------------------------------------------------------ data sets
@dataclass
class DatasetInfo:
    name: str
    path: str
    owner: str
    classification: str
    manifest_sha256: str
    files: list[dict[str, Any]]
    size: int
    key_epoch: int
    encrypted_dir: str | None
    created_at: str
    created_by: str

    @property
    def encrypted(self) -> bool:
        return self.key_epoch > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "encrypted": self.encrypted}


def _dataset_info(row: DataDataset) -> DatasetInfo:
    return DatasetInfo(row.name, row.path, row.owner, row.classification, row.manifest_sha256,
                       list((row.manifest or {}).get("files", [])), int(row.size), int(row.key_epoch),
                       row.encrypted_dir, _iso(row.created_at) or "", row.created_by)


def _get_dataset(s: Session, name: str) -> DataDataset:
    row = s.execute(select(DataDataset).where(DataDataset.name == name)).scalar_one_or_none()
    if row is None:
        raise RegistryError(f"no registered data set {name!r} (bastion data list)")
    return row


def register_dataset(path: str | Path, name: str, *, owner: str = "", classification: str = "internal",
                     manifest: str | Path | None = None, db_url: str | None = None,
                     actor: str | None = None) -> DatasetInfo:
    """Record a data set: its files' digests (from ``manifest`` if given, else hashed now) and classification.

    With ``manifest`` the files on disk must still match it (``bastion data verify``), so the registry never
    records a digest of data that is not there."""
    from bastion.data.integrity import build_manifest, canonical_bytes, load_manifest, verify_manifest

    _check_name("data set", name)
    if classification not in CLASSIFICATIONS:
        raise InvalidInputError(f"unknown classification {classification!r}; choose one of {', '.join(CLASSIFICATIONS)}")
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"{p} does not exist")
    if manifest is not None:
        m = load_manifest(manifest)
        report = verify_manifest([p], m)
        if not report.get("ok"):
            raise InvalidInputError(f"{p} does not match manifest {manifest} (run bastion data verify {p} "
                                    f"--manifest {manifest} for the differences)")
    else:
        m = build_manifest([p], rows=False)
    digest = hashlib.sha256(canonical_bytes(m)).hexdigest()
    files = [{"path": f["path"], "sha256": f["sha256"], "size": int(f["size"])} for f in m["files"]]
    if not files:
        raise InvalidInputError(f"{p} holds no files")
    actor = actor or local_actor()
    with session_scope(db_url) as s:
        if s.execute(select(DataDataset).where(DataDataset.name == name)).scalar_one_or_none() is not None:
            raise RegistryError(f"a data set named {name!r} is already registered")
        row = DataDataset(name=name, path=str(p.resolve()), owner=owner or actor, classification=classification,
                          manifest_sha256=digest, manifest={"files": files, "merkle_root": m.get("merkle_root")},
                          size=sum(f["size"] for f in files), key_epoch=0, encrypted_dir=None, encrypted_files=[],
                          created_at=datetime.now(UTC), created_by=actor)
        s.add(row)
        s.flush()
        info = _dataset_info(row)
    audit_data(db_url, actor, "data.register", {"dataset": name, "path": info.path, "owner": info.owner,
                                                "classification": classification, "manifest_sha256": digest,
                                                "files": len(files), "bytes": info.size})
    return info


def list_datasets(db_url: str | None = None) -> list[DatasetInfo]:
    with session_scope(db_url) as s:
        return [_dataset_info(r) for r in s.execute(select(DataDataset).order_by(DataDataset.name)).scalars()]


def show_dataset(name: str, db_url: str | None = None) -> DatasetInfo:
    with session_scope(db_url) as s:
        return _dataset_info(_get_dataset(s, name))


# ------------------------------------------------------------------------------------------ grants
@dataclass
class GrantInfo:
    id: int
    dataset: str
    principal: str
    role: str
    purpose: str
    granted_by: str
    granted_at: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str
    key_fingerprint: str | None = None

    def status(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        now = now or datetime.now(UTC)
        if self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now:
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status()}


def _grant_info(g: DataGrant, dataset: str, fp: str | None) -> GrantInfo:
    return GrantInfo(g.id, dataset, g.principal, g.role, g.purpose or "", g.granted_by, _iso(g.granted_at) or "",
                     _iso(g.expires_at), _iso(g.revoked_at), g.revoked_by, g.revoke_reason or "", fp)


def parse_expiry(text: str | None) -> datetime | None:
    """``2027-01-31`` (end of that day, UTC) or an ISO date-time; must lie in the future."""
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--expires {text!r} is not an ISO date (2027-01-31) or date-time") from None
    if len(text) == 10:
        dt = dt.replace(hour=23, minute=59, second=59)
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    if dt <= datetime.now(UTC):
        raise InvalidInputError(f"--expires {text} is in the past")
    return dt


def current_grants(s: Session, ds: DataDataset, now: datetime | None = None) -> list[DataGrant]:
    """Grants on ``ds`` that are neither revoked nor expired."""
    now = now or datetime.now(UTC)
    rows = s.execute(select(DataGrant).where(DataGrant.dataset_id == ds.id, DataGrant.revoked_at.is_(None))
                     .order_by(DataGrant.id)).scalars()
    return [g for g in rows if g.expires_at is None or _aware(g.expires_at) > now]  # type: ignore[operator]


def grant(name: str, principal: str, role: str = "reader", *, purpose: str = "", expires: str | None = None,
          db_url: str | None = None, actor: str | None = None) -> GrantInfo:
    """Grant ``role`` on data set ``name`` to ``principal`` (recorded and audited). Restricted data needs a purpose.

    On an encrypted data set the reader also gets a wrap of the current data key (no data is re-encrypted)."""
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    _check_name("principal", principal)
    purpose = purpose.strip()
    expires_at = parse_expiry(expires)
    actor = actor or local_actor()
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        if ds.classification == "restricted" and not purpose:
            raise InvalidInputError(f"data set {name!r} is restricted: every grant needs --purpose TEXT "
                                    "(what the data will be used for)")
        p = _principal_for(s, principal, db_url, actor)
        row = DataGrant(dataset_id=ds.id, principal=p.name, role=role, purpose=purpose, granted_by=actor,
                        granted_at=datetime.now(UTC), expires_at=expires_at, revoked_at=None, revoked_by=None,
                        revoke_reason="")
        s.add(row)
        s.flush()
        info = _grant_info(row, name, p.key_fingerprint)
        encrypted = ds.key_epoch > 0
    wrapped = False
    if encrypted and info.key_fingerprint is not None:
        from bastion.gateway.dataset_keys import wrap_for_reader

        wrapped = wrap_for_reader(name, p.name, db_url=db_url)
    audit_data(db_url, actor, "data.grant", {"dataset": name, "principal": info.principal, "role": role,
                                             "purpose": purpose, "expires_at": info.expires_at, "grant_id": info.id,
                                             "key_fingerprint": info.key_fingerprint, "key_wrapped": wrapped})
    return info


def revoke(name: str, principal: str, *, reason: str = "", rekey: bool = True, db_url: str | None = None,
           actor: str | None = None) -> dict[str, Any]:
    """Revoke every current grant of ``principal`` on ``name``; an encrypted data set is then re-keyed
    (new data key, ciphertext re-encrypted once, wrapped for the remaining readers)."""
    actor = actor or local_actor()
    now = datetime.now(UTC)
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        rows = [g for g in current_grants(s, ds, now) if g.principal == principal]
        if not rows:
            raise RegistryError(f"{principal!r} holds no current grant on {name!r} (bastion data access {name})")
        for g in rows:
            g.revoked_at, g.revoked_by, g.revoke_reason = now, actor, reason
        ids = [g.id for g in rows]
        encrypted = ds.key_epoch > 0
    audit_data(db_url, actor, "data.revoke", {"dataset": name, "principal": principal, "grant_ids": ids,
                                              "reason": reason})
    out: dict[str, Any] = {"dataset": name, "principal": principal, "revoked_grants": ids, "rekey": None}
    if encrypted and rekey:
        from bastion.gateway.dataset_keys import rekey_dataset

        out["rekey"] = rekey_dataset(name, reason=f"revoked {principal}", db_url=db_url, actor=actor)
    return out


def access(name: str, db_url: str | None = None, include_inactive: bool = False) -> list[GrantInfo]:
    """Who can use ``name``: current grants (role, purpose, until when); with ``include_inactive`` also
    revoked and expired ones."""
    with session_scope(db_url) as s:
        ds = _get_dataset(s, name)
        rows = (s.execute(select(DataGrant).where(DataGrant.dataset_id == ds.id).order_by(DataGrant.id)).scalars()
                if include_inactive else current_grants(s, ds))
        keys = {p.name: p.key_fingerprint for p in s.execute(select(DataPrincipal)).scalars()}
        return [_grant_info(g, name, keys.get(g.principal)) for g in rows]


def about_dataset(record: dict[str, Any], name: str) -> bool:
    """Whether an exported audit record is about data set ``name`` (grant, revoke, key, read, refusal)."""
    body = record.get("body")
    return record.get("kind") == "data" and isinstance(body, dict) and body.get("dataset") == name


def dataset_audit(name: str, db_url: str | None = None) -> list[dict[str, Any]]:
    """Every audit record about data set ``name`` with its Merkle inclusion proof where a signed checkpoint
    covers it: who was granted, who read or was refused, and when."""
    from bastion.gateway.audit import export_records

    return [r for r in export_records(db_url) if about_dataset(r, name)]
