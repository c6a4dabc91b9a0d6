"""Data-access tables: registered data sets, principals with public keys, grants and wrapped data keys.

No secret is stored in clear: a principal's row holds its X25519 *public* key; a data set's data key
is stored only wrapped (HPKE) to the public key of each current reader, one row per reader and key epoch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.db import BIGINT, Base


class DataPrincipal(Base):
    """A person, team or gateway client that can be granted data, with its X25519 public key (if any)."""

    __tablename__ = "data_principals"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # person | team | client
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)  # PEM SubjectPublicKeyInfo (X25519)
    key_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    client_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(160))


class DataDataset(Base):
    """A registered data set: where it is, its integrity manifest digest, owner and classification."""

    __tablename__ = "data_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    path: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(128))
    classification: Mapped[str] = mapped_column(String(16))  # public | internal | confidential | restricted
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict] = mapped_column(JSON)  # file list: path, sha256, size (rows omitted)
    size: Mapped[int] = mapped_column(BIGINT)
    key_epoch: Mapped[int] = mapped_column(Integer, default=0)  # 0: not encrypted yet
    encrypted_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    encrypted_files: Mapped[list] = mapped_column(JSON, default=list)  # [{path, file_id}] of the epoch's ciphertext
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(160))


class DataGrant(Base):
    """One grant of a role on a data set to a principal; revoked grants stay (revoked_at set)."""

    __tablename__ = "data_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("data_datasets.id", ondelete="CASCADE"), index=True)
    principal: Mapped[str] = mapped_column(ForeignKey("data_principals.name"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # reader | writer | owner
    purpose: Mapped[str] = mapped_column(Text, default="")
    granted_by: Mapped[str] = mapped_column(String(160))
    granted_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    revoke_reason: Mapped[str] = mapped_column(Text, default="")


class DataKeyWrap(Base):
    """The data key of one key epoch of a data set, HPKE-wrapped to one reader's public key."""

    __tablename__ = "data_key_wraps"
    __table_args__ = (UniqueConstraint("dataset_id", "epoch", "principal", name="uq_data_key_wraps_reader"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("data_datasets.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    principal: Mapped[str] = mapped_column(ForeignKey("data_principals.name"))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[str] = mapped_column(Text)  # base64(HPKE enc || ciphertext)
    created_at: Mapped[datetime] = mapped_column()
