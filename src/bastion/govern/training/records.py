"""Training completion records (who, team, lab, score, date) and coverage per team."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select

from bastion.core.errors import InvalidInputError
from bastion.govern.store import ensure_schema
from bastion.store.db import session_scope
from bastion.store.models_govern import GovernTrainingRecord

RecordKind = Literal["lab", "quiz"]
N_LABS = 6


@dataclass
class LearnerRecord:
    """One completion of a training lab or quiz by a learner (not a model's training record: that is
    ``bastion.defenses.adversarial.record.TrainingRecord``)."""

    id: int
    learner: str
    team: str
    lab: int
    kind: str
    score: float
    passed: bool
    completed_at: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_completion(learner: str, team: str, lab: int, kind: RecordKind, score: float, passed: bool,
                      details: dict[str, Any] | None = None, url: str | None = None) -> LearnerRecord:
    """Store one completion record; returns it."""
    if not learner.strip() or not team.strip():
        raise InvalidInputError("a training record needs a learner and a team (--learner, --team)")
    if not 1 <= lab <= N_LABS:
        raise InvalidInputError(f"lab must be 1..{N_LABS}, got {lab}")
    if kind not in ("lab", "quiz"):
        raise InvalidInputError(f"kind must be lab or quiz, got {kind!r}")
    if not 0.0 <= score <= 1.0:
        raise InvalidInputError(f"score must be between 0 and 1, got {score}")
    ensure_schema(url)
    with session_scope(url) as s:
        row = GovernTrainingRecord(learner=learner.strip(), team=team.strip(), lab=lab, kind=kind,
                                   score=float(score), passed=bool(passed), details=details or {},
                                   completed_at=datetime.now(UTC))
        s.add(row)
        s.flush()
        return _to(row)


def _to(r: GovernTrainingRecord) -> LearnerRecord:
    return LearnerRecord(r.id, r.learner, r.team, r.lab, r.kind, r.score, r.passed, r.completed_at.isoformat(),
                          dict(r.details or {}))


def list_records(learner: str | None = None, team: str | None = None, url: str | None = None) -> list[LearnerRecord]:
    ensure_schema(url)
    with session_scope(url) as s:
        q = select(GovernTrainingRecord).order_by(GovernTrainingRecord.id)
        if learner:
            q = q.where(GovernTrainingRecord.learner == learner)
        if team:
            q = q.where(GovernTrainingRecord.team == team)
        return [_to(r) for r in s.scalars(q)]


def team_coverage(url: str | None = None) -> list[dict[str, Any]]:
    """Per team: learners, and per lab how many learners passed both its goal check and its quiz.

    A learner *completed* a lab when they have a passed ``lab`` record and a passed ``quiz`` record for it.
    """
    recs = list_records(url=url)
    teams: dict[str, dict[str, Any]] = {}
    for r in recs:
        t = teams.setdefault(r.team, {"team": r.team, "learners": set(), "done": {}})
        t["learners"].add(r.learner)
        if r.passed:
            t["done"].setdefault((r.learner, r.lab), set()).add(r.kind)
    out = []
    for t in sorted(teams.values(), key=lambda t: t["team"]):
        completed = {k for k, kinds in t["done"].items() if kinds >= {"lab", "quiz"}}
        per_lab = {lab: sum(1 for (_, lb) in completed if lb == lab) for lab in range(1, N_LABS + 1)}
        n = len(t["learners"])
        out.append({
            "team": t["team"], "learners": n, "completed_per_lab": per_lab,
            "completions": len(completed),
            "coverage": round(len(completed) / (n * N_LABS), 3) if n else 0.0,
            "learners_with_any_completion": len({learner for (learner, _) in completed}),
            "completed_by_learner": {learner: sorted(lb for (ln, lb) in completed if ln == learner)
                                     for learner in sorted(t["learners"])},
        })
    return out
