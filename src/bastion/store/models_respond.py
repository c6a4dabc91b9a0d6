"""Incident-response tables: incidents with their evidence, affected clients and timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.db import Base


class RespondIncident(Base):
    """One incident, opened by an alert and updated while the same alert keeps firing.

    ``aiid`` holds the fields of an AI Incident Database submission (title, description, date,
    alleged deployer/developer, harmed parties); ``atlas`` the MITRE ATLAS technique ids.
    """

    __tablename__ = "respond_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(256), index=True)
    title: Mapped[str] = mapped_column(Text)
    alert_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | acknowledged | resolved
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[dict] = mapped_column(JSON, default=dict)
    affected_clients: Mapped[list] = mapped_column(JSON, default=list)
    timeline: Mapped[list] = mapped_column(JSON, default=list)
    atlas: Mapped[list] = mapped_column(JSON, default=list)
    aiid: Mapped[dict] = mapped_column(JSON, default=dict)
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    actions_done: Mapped[list] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")


class RespondMonitorState(Base):
    """One gateway replica's mergeable monitor state for one model (replica pooling without Redis)."""

    __tablename__ = "respond_monitor_state"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    updated_at: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds
    payload: Mapped[bytes] = mapped_column(LargeBinary)
