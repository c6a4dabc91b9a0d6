"""Column builders shared by the migration scripts in ``versions/``: Bastion's column conventions, written once.

A migration must create the same schema for as long as it exists, so a builder here never changes what it
returns; a new convention gets a new builder.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A 64-bit integer on PostgreSQL; SQLite's INTEGER (already 64-bit, and the only type it auto-increments)."""


def id_pk() -> sa.Column[Any]:
    """The surrogate key ``id``: an auto-incrementing integer."""
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A point in time, stored with its time zone."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def by(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """Who did something: a principal, client or user name (up to 160 characters)."""
    return sa.Column(name, sa.String(160), nullable=nullable)


def created() -> tuple[sa.Column[Any], sa.Column[Any]]:
    """``created_at`` and ``created_by``, both required."""
    return at("created_at"), by("created_by")


def digest(name: str, *, nullable: bool = False, unique: bool = False) -> sa.Column[Any]:
    """A hex SHA-256 (64 characters): a content digest, key hash or chain hash."""
    return sa.Column(name, sa.String(64), nullable=nullable, unique=unique)


def json(name: str) -> sa.Column[Any]:
    """A required JSON document."""
    return sa.Column(name, sa.JSON(), nullable=False)


def cascade_fk(name: str, target: str) -> sa.Column[Any]:
    """A required integer reference to ``target`` (``table.id``), deleted with the row it points to."""
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target, ondelete="CASCADE"), nullable=False)
