"""Client identities: create (key shown once), list, revoke, throttle — every change audited."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bastion.core.errors import InvalidInputError, RegistryError
from bastion.gateway.auth import LOCAL_ADMIN, Principal, effective_scopes, new_api_key
from bastion.gateway.config import GatewayConfig, load_config
from bastion.gateway.registry import NAME_RE, audit_admin
from bastion.store.db import session_scope
from bastion.store.models_gateway import GatewayClient


@dataclass
class ClientInfo:
    id: str
    name: str
    role: str
    models: list[str]
    scopes: list[str]
    key_id: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    budget: dict[str, str]

    @property
    def active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or datetime.fromisoformat(self.expires_at) > datetime.now(UTC)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def _info(row: GatewayClient) -> ClientInfo:
    return ClientInfo(id=row.id, name=row.name, role=row.role, models=list(row.models), scopes=list(row.scopes),
                      key_id=row.key_id, created_at=_iso(row.created_at) or "", expires_at=_iso(row.expires_at),
                      revoked_at=_iso(row.revoked_at), budget=dict(row.budget or {}))


def create_client(
    name: str, role: str = "client", models: list[str] | None = None, scopes: list[str] | None = None, *,
    expires_in_days: float | None = None, budget: dict[str, str] | None = None, db_url: str | None = None,
    actor: Principal = LOCAL_ADMIN, audit_log: Any = None,
) -> tuple[ClientInfo, str]:
    """Create a client; returns its info and the API key (shown this once, stored only as a hash).

    ``models`` is required for every role (``["*"]`` for all, never implied); without ``scopes`` the
    role's default scopes are granted (a ``client`` gets ``predict`` only, not ``predict:versions``)."""
    actor.require("clients:write")
    if not NAME_RE.match(name):
        raise InvalidInputError(f"client name {name!r} is invalid: use letters, digits, '.', '_' or '-'")
    granted = sorted(effective_scopes(role, scopes))
    models = [m.strip() for m in (models or []) if m.strip()]
    if not models:  # least privilege for every role: all models only when '*' is written out
        raise InvalidInputError(f"client {name!r} needs the models it may call: pass --models NAME[,NAME] "
                                "(or --models '*' for all, written explicitly)")
    bad = [m for m in models if m != "*" and not NAME_RE.match(m)]
    if bad:
        raise InvalidInputError(f"model name {bad[0]!r} is invalid: use letters, digits, '.', '_' or '-', or '*'")
    if budget:
        from limits import parse

        for k, v in budget.items():
            if k not in ("requests", "samples"):
                raise InvalidInputError(f"unknown budget {k!r}; use requests or samples")
            try:
                parse(v)
            except ValueError as exc:
                raise InvalidInputError(f"invalid {k} budget {v!r}: {exc}") from None
    key, key_id, key_hash = new_api_key()
    now = datetime.now(UTC)
    row = GatewayClient(
        id=f"cl_{secrets.token_hex(8)}", name=name, role=role, models=list(models), scopes=granted, key_id=key_id,
        key_hash=key_hash, budget=dict(budget or {}), created_at=now,
        expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days), revoked_at=None,
    )
    with session_scope(db_url) as s:
        s.add(row)
    info = _info(row)
    audit_admin(db_url, actor, "clients.create", {"client": info.id, "name": name, "role": role,
                                                   "models": info.models, "scopes": granted,
                                                   "expires_at": info.expires_at, "key_id": key_id}, audit_log)
    return info, key


def list_clients(db_url: str | None = None) -> list[ClientInfo]:
    with session_scope(db_url) as s:
        return [_info(r) for r in s.execute(select(GatewayClient).order_by(GatewayClient.created_at)).scalars()]


def _find(s: Any, ident: str) -> GatewayClient:
    row = s.get(GatewayClient, ident)
    if row is None:
        rows = list(s.execute(select(GatewayClient).where(GatewayClient.name == ident)).scalars())
        if len(rows) > 1:
            raise RegistryError(f"several clients are named {ident!r}; use the client id")
        row = rows[0] if rows else None
    if row is None:
        raise RegistryError(f"no client with id or name {ident!r}")
    return row


def _db(db_url: str | None, config: GatewayConfig | None) -> str | None:
    """``db_url`` when given, else that of ``config`` (default: the gateway config in effect)."""
    return db_url if db_url is not None else (config if config is not None else load_config()).db_url


def revoke_client(ident: str, *, db_url: str | None = None, actor: Principal = LOCAL_ADMIN,
                  audit_log: Any = None, reason: str = "", config: GatewayConfig | None = None) -> ClientInfo:
    """Revoke a client's key (by id or unique name). Idempotent. Also ``bastion.gateway.control.revoke_client``."""
    actor.require("clients:write")
    db_url = _db(db_url, config)
    with session_scope(db_url) as s:
        row = _find(s, ident)
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        info = _info(row)
    audit_admin(db_url, actor, "clients.revoke", {"client": info.id, "name": info.name, "reason": reason}, audit_log)
    return info


def throttle_client(ident: str, requests: str | None = None, samples: str | None = None, *,
                    db_url: str | None = None, actor: Principal = LOCAL_ADMIN, audit_log: Any = None,
                    config: GatewayConfig | None = None) -> ClientInfo:
    """Give a client its own (tighter) budget, e.g. ``requests="10/minute"``; ``None`` keeps a value.
    Also ``bastion.gateway.control.throttle_client``."""
    actor.require("clients:write")
    db_url = _db(db_url, config)
    from limits import parse

    for v in (requests, samples):
        if v is not None:
            try:
                parse(v)
            except ValueError as exc:
                raise InvalidInputError(f"invalid budget {v!r}: {exc}") from None
    with session_scope(db_url) as s:
        row = _find(s, ident)
        budget = dict(row.budget or {})
        if requests is not None:
            budget["requests"] = requests
        if samples is not None:
            budget["samples"] = samples
        row.budget = budget
        info = _info(row)
    audit_admin(db_url, actor, "clients.throttle", {"client": info.id, "budget": info.budget}, audit_log)
    return info
