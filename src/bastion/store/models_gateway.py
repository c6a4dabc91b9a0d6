"""Gateway tables: registered model versions, aliases, clients, the audit chain and its checkpoints.

Secrets are never stored in clear: an API key is kept as ``key_id`` (public lookup prefix) and
``key_hash`` (sha256 of the whole key). The audit log is append-only; each row carries the hash
of its predecessor (``prev_hash``) and its own ``hash``; checkpoints sign Merkle roots of ranges.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.db import BIGINT, Base


class GatewayModelVersion(Base):
    """One pushed model file: where it is, what it is, and what its checks said."""

    __tablename__ = "gateway_model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_gateway_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    signer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scan_verdict: Mapped[str] = mapped_column(String(32), default="unknown")
    allowed_unsafe: Mapped[bool] = mapped_column(Boolean, default=False)
    input_spec: Mapped[dict] = mapped_column(JSON)
    n_classes: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    pushed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column()


class GatewayAlias(Base):
    """A movable name (``production``) pointing at one version of a model."""

    __tablename__ = "gateway_aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column()


class GatewayModelSettings(Base):
    """Per-model serving settings that operators and playbooks change at run time."""

    __tablename__ = "gateway_model_settings"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    output_policy: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column()


class GatewayClient(Base):
    """A client identity with one API key (hash only), a role, model and scope grants."""

    __tablename__ = "gateway_clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    models: Mapped[list] = mapped_column(JSON)
    scopes: Mapped[list] = mapped_column(JSON)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    budget: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class GatewayAuditRecord(Base):
    """One hash-chained audit record (a request or an admin action)."""

    __tablename__ = "gateway_audit"

    seq: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class GatewayCheckpoint(Base):
    """A signed Merkle root over audit records ``first_seq..last_seq``."""

    __tablename__ = "gateway_audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    first_seq: Mapped[int] = mapped_column(BIGINT)
    last_seq: Mapped[int] = mapped_column(BIGINT, unique=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    merkle_root: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[float] = mapped_column(Float)
