"""Continuous-assessment tables: every stored assessment run, and the re-assessment policy per model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.db import Base


class AssessRun(Base):
    """One assessment, keyed by what it measured: model and data digests, Bastion and catalog versions, profile.

    ``findings`` is the compact list used for trends and diffs (``{id, check, severity}``); ``assessment``
    holds the whole ``assessment.json`` document.
    """

    __tablename__ = "assess_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(256), index=True)
    model_sha256: Mapped[str] = mapped_column(String(64))
    data_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bastion_version: Mapped[str] = mapped_column(String(32))
    catalog_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    profile: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(Text)
    max_severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    n_findings: Mapped[int] = mapped_column(Integer)
    findings: Mapped[list] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16))  # assess | watch | ci
    reason: Mapped[str] = mapped_column(Text, default="")
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    assessment: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(index=True)


class WatchPolicy(Base):
    """When to re-assess a registered model, and what to do when a run finds something new or worse.

    ``lease_owner``/``lease_until`` is the store-level lease: one ``watch run`` at a time per model.
    """

    __tablename__ = "assess_watch"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    profile: Mapped[str] = mapped_column(String(16))
    only: Mapped[list] = mapped_column(JSON, default=list)
    every_s: Mapped[float] = mapped_column(Float)
    triggers: Mapped[list] = mapped_column(JSON, default=list)
    demote: Mapped[bool] = mapped_column(Boolean, default=False)
    demote_at: Mapped[str] = mapped_column(String(16), default="high")
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(160))
    last_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
