"""Governance tables: risk register (with history), EU AI Act classifications, training completion
records and ethics review answers.

Every change to a risk writes a ``govern_risk_history`` row (who, when, what changed, the full snapshot),
so the register can be reconstructed at any date.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.db import Base


class GovernRisk(Base):
    """One risk in the register: likelihood × impact, controls that treat it, owner and review date."""

    __tablename__ = "govern_risks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    system: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(16))
    control_ids: Mapped[list] = mapped_column(JSON, default=list)
    likelihood: Mapped[int] = mapped_column(Integer)
    impact: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    treatment: Mapped[str] = mapped_column(Text, default="")
    review_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class GovernRiskHistory(Base):
    """An append-only change record for a risk."""

    __tablename__ = "govern_risk_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    risk_id: Mapped[int] = mapped_column(ForeignKey("govern_risks.id", ondelete="CASCADE"), index=True)
    changed_at: Mapped[datetime] = mapped_column()
    changed_by: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)


class GovernClassification(Base):
    """An EU AI Act tiering of a system from a questionnaire, with the full reasoning."""

    __tablename__ = "govern_classifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(128), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    answers_sha256: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()


class GovernTrainingRecord(Base):
    """A learner's completion of a lab goal or quiz: who, team, lab, score, when."""

    __tablename__ = "govern_training_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learner: Mapped[str] = mapped_column(String(128), index=True)
    team: Mapped[str] = mapped_column(String(128), index=True)
    lab: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    completed_at: Mapped[datetime] = mapped_column()


class GovernEthicsAnswer(Base):
    """One answered ethics-checklist item for a system, with its owner."""

    __tablename__ = "govern_ethics_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(128), index=True)
    item_id: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    notes: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime] = mapped_column()
