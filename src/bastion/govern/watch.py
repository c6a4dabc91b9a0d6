"""Continuous re-assessment: ``bastion watch add|list|remove|run|serve``.

A policy per registered model says how often to re-assess it (``every``) and on which changes
(``model-change``: the production alias points at another digest; ``bastion-upgrade``: another Bastion
version; ``catalog-change``: another control-catalog version). ``run_due`` runs what is due, stores
each run (``bastion.assess.history``), and when a run finds a finding that is **new or worse** than the
previous run's, opens an incident (``respond.incidents``, type ``reassessment``) with the diff as
evidence; with ``demote`` on, a new or worse finding at ``demote_at`` or above rolls the model's
``production`` alias back to the previous verified version (the registry's rollback, audited).

Safe to run twice at once: each model is taken under a store-level lease (a conditional UPDATE that
only one writer wins); a crashed runner's lease expires after ``LEASE_S``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from bastion.core.errors import ConfigError
from bastion.core.severity import Severity
from bastion.store.db import session_scope
from bastion.store.models_assess import WatchPolicy

TRIGGERS = ("model-change", "bastion-upgrade", "catalog-change")
LEASE_S = 3600.0
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_every(text: str) -> float:
    """``7d`` / ``12h`` / ``30m`` / ``90s`` / ``2w`` → seconds."""
    m = _EVERY.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--every {text!r}: a positive number and a unit s, m, h, d or w (e.g. 7d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_triggers(text: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    bad = [t for t in items if t not in TRIGGERS]
    if bad:
        raise ConfigError(f"--on {bad[0]!r}: choose from {', '.join(TRIGGERS)}")
    return items


def catalog_version() -> str:
    from bastion.govern.catalog.loader import load_catalog

    return str(load_catalog().version)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(d: datetime | None) -> datetime | None:
    return d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d


def add_watch(model: str, data: str, profile: str = "standard", every: str = "7d",
              on: str = ",".join(TRIGGERS), only: list[str] | None = None, demote: bool = False,
              demote_at: str = "high", actor: str = "local-admin", db_url: str | None = None,
              config: Any = None) -> dict[str, Any]:
    """Create or replace the policy for registered model ``model`` (it must have a production version)."""
    from bastion.assess.registry import PROFILES
    from bastion.gateway.registry import Registry

    if profile not in PROFILES:
        raise ConfigError(f"--profile {profile!r}: choose one of {', '.join(PROFILES)}")
    Registry(config).resolve(model)  # a clear error for an unknown model or one with no production version
    every_s, triggers = parse_every(every), parse_triggers(on)
    threshold = Severity.parse(demote_at)
    with session_scope(db_url) as s:
        row = s.get(WatchPolicy, model)
        if row is None:
            row = WatchPolicy(model=model, created_at=_now(), created_by=actor)
            s.add(row)
        row.data, row.profile, row.only, row.every_s, row.triggers = data, profile, list(only or []), every_s, triggers
        row.demote, row.demote_at = demote, threshold.value
        s.flush()
        return _policy_dict(row)


def _policy_dict(row: WatchPolicy) -> dict[str, Any]:
    last = _aware(row.last_run_at)
    nxt = last + timedelta(seconds=row.every_s) if last else None
    return {"model": row.model, "data": row.data, "profile": row.profile, "only": row.only, "every_s": row.every_s,
            "on": row.triggers, "demote": row.demote, "demote_at": row.demote_at, "last_run_id": row.last_run_id,
            "last_run_at": last.isoformat(timespec="seconds") if last else None,
            "next_due_at": nxt.isoformat(timespec="seconds") if nxt else "now"}


def list_watches(db_url: str | None = None) -> list[dict[str, Any]]:
    with session_scope(db_url) as s:
        return [_policy_dict(r) for r in s.execute(select(WatchPolicy).order_by(WatchPolicy.model)).scalars()]


def remove_watch(model: str, db_url: str | None = None) -> bool:
    with session_scope(db_url) as s:
        row = s.get(WatchPolicy, model)
        if row is None:
            return False
        s.delete(row)
        return True


@dataclass
class WatchOutcome:
    model: str
    status: str  # ran | not-due | leased | error
    reasons: list[str] = field(default_factory=list)
    run_id: int | None = None
    diff: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    incident_id: int | None = None
    demoted: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def due_reasons(row: WatchPolicy, model_sha256: str, bastion_version: str, catalog: str,
                now: datetime, db_url: str | None = None) -> list[str]:
    """Why ``row``'s model is due now (empty when it is not)."""
    from bastion.assess.history import get_run

    if row.last_run_id is None:
        return ["first run"]
    last_run = get_run(row.last_run_id, db_url)
    reasons = []
    last_at = _aware(row.last_run_at)
    if last_at is None or now >= last_at + timedelta(seconds=row.every_s):
        reasons.append(f"schedule (every {row.every_s:g} s)")
    if "model-change" in row.triggers and last_run.model_sha256 != model_sha256:
        reasons.append(f"model-change ({last_run.model_sha256[:12]} → {model_sha256[:12]})")
    if "bastion-upgrade" in row.triggers and last_run.bastion_version != bastion_version:
        reasons.append(f"bastion-upgrade ({last_run.bastion_version} → {bastion_version})")
    if "catalog-change" in row.triggers and last_run.catalog_version != catalog:
        reasons.append(f"catalog-change ({last_run.catalog_version} → {catalog})")
    return reasons


def _take_lease(model: str, owner: str, now: datetime, db_url: str | None) -> bool:
    with session_scope(db_url) as s:
        res = s.execute(update(WatchPolicy).where(
            WatchPolicy.model == model,
            or_(WatchPolicy.lease_until.is_(None), WatchPolicy.lease_until < now)).values(
            lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_S)))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def _reload(model: str, db_url: str | None) -> WatchPolicy | None:
    with session_scope(db_url) as s:
        row = s.get(WatchPolicy, model)
        if row is not None:
            s.expunge(row)
        return row


def _release_lease(model: str, owner: str, db_url: str | None, run_id: int | None, ran_at: datetime | None) -> None:
    with session_scope(db_url) as s:
        row = s.get(WatchPolicy, model)
        if row is None or row.lease_owner != owner:
            return
        row.lease_owner, row.lease_until = None, None
        if run_id is not None:
            row.last_run_id, row.last_run_at = run_id, ran_at


def run_due(model: str | None = None, *, force: bool = False, executor: Any = None, config: Any = None,
            db_url: str | None = None, bastion_version: str | None = None, catalog: str | None = None,
            now: datetime | None = None, seed: int = 0,
            log: Callable[[str], None] = lambda _: None) -> list[WatchOutcome]:
    """One pass: re-assess every watched model that is due (or ``model`` only; ``force`` ignores due-ness).

    ``bastion_version`` and ``catalog`` default to the running Bastion's and the shipped catalog's;
    tests pass others to stand for an upgrade.
    """
    from bastion import __version__
    from bastion.gateway.registry import Registry

    bv = bastion_version or __version__
    cv = catalog or catalog_version()
    registry = Registry(config)
    with session_scope(db_url) as s:
        q = select(WatchPolicy).order_by(WatchPolicy.model)
        if model is not None:
            q = q.where(WatchPolicy.model == model)
        rows = list(s.execute(q).scalars())
        s.expunge_all()
    if model is not None and not rows:
        raise ConfigError(f"model {model!r} is not watched (bastion watch add {model} --data …)")
    out: list[WatchOutcome] = []
    for row in rows:
        t = now or _now()
        try:
            info = registry.resolve(row.model)
        except Exception as exc:
            out.append(WatchOutcome(row.model, "error", error=f"{type(exc).__name__}: {exc}"))
            continue
        reasons = due_reasons(row, info.sha256, bv, cv, t, db_url) if not force else ["forced"]
        if not reasons:
            out.append(WatchOutcome(row.model, "not-due"))
            continue
        owner = f"{uuid.uuid4().hex[:12]}@{time.time():.0f}"
        if not _take_lease(row.model, owner, t, db_url):
            out.append(WatchOutcome(row.model, "leased", reasons))
            continue
        # another runner may have run and released it between our read and our lease: decide again on the
        # row as it is now, under the lease
        fresh = _reload(row.model, db_url)
        reasons = (due_reasons(fresh, info.sha256, bv, cv, t, db_url) if not force else ["forced"]) if fresh else []
        if fresh is None or not reasons:
            _release_lease(row.model, owner, db_url, None, None)
            out.append(WatchOutcome(row.model, "not-due"))
            continue
        row = fresh
        run_id: int | None = None
        try:
            log(f"re-assessing {row.model} v{info.version}: {'; '.join(reasons)}")
            outcome = _reassess(row, info, reasons, bv, cv, executor, config, db_url, seed)
            run_id = outcome.run_id
            out.append(outcome)
        except Exception as exc:
            out.append(WatchOutcome(row.model, "error", reasons, error=f"{type(exc).__name__}: {exc}"))
        finally:
            _release_lease(row.model, owner, db_url, run_id, t if run_id is not None else None)
    return out


def _reassess(row: WatchPolicy, info: Any, reasons: list[str], bv: str, cv: str, executor: Any, config: Any,
              db_url: str | None, seed: int) -> WatchOutcome:
    from bastion.assess.history import diff, get_run, record
    from bastion.assess.runner import run_assessment
    from bastion.assess.target import build_target

    target = build_target(model=info.path, data=row.data, seed=seed)
    assessment = run_assessment(target, profile=row.profile, seed=seed, only=row.only or None,  # type: ignore[arg-type]
                                executor=executor, progress=False)
    assessment.environment["bastion"] = bv
    run_id = record(assessment, row.model, catalog_version=cv, source="watch", reason="; ".join(reasons),
                    db_url=db_url)
    current = get_run(run_id, db_url)
    previous = get_run(row.last_run_id, db_url) if row.last_run_id is not None else None
    changes = diff(previous, current)
    outcome = WatchOutcome(row.model, "ran", reasons, run_id, changes)
    regressions = changes["new"] + changes["worse"] if previous is not None else []
    if regressions:
        outcome.incident_id, outcome.demoted = _respond(row, info, previous, current, regressions, changes, config,
                                                         db_url)
    return outcome


def _respond(row: WatchPolicy, info: Any, previous: Any, current: Any, regressions: list[dict[str, Any]],
             changes: dict[str, Any], config: Any, db_url: str | None) -> tuple[int, dict[str, Any] | None]:
    from bastion.gateway.registry import Registry
    from bastion.respond.incidents import Alert, open_or_update, record_action

    worst = max(Severity.parse(f["severity"]) for f in regressions)
    evidence = {"run": current.id, "previous_run": previous.id, "reasons": current.reason, "diff": changes,
                "bastion_version": [previous.bastion_version, current.bastion_version],
                "catalog_version": [previous.catalog_version, current.catalog_version],
                "model_sha256": [previous.model_sha256, current.model_sha256]}
    alert = Alert("reassessment", worst, f"re-assessment of {row.model} found {len(regressions)} new or worse "
                                         f"finding(s) (worst {worst.value})", model=row.model, version=info.version,
                  model_sha256=info.sha256, evidence=evidence)
    incident, _ = open_or_update(alert, db_url)
    demoted = None
    if row.demote and worst >= Severity.parse(row.demote_at):
        try:
            demoted = Registry(config).rollback(row.model, "production")
        except Exception as exc:
            demoted = {"error": f"{type(exc).__name__}: {exc}"}
        record_action(int(incident["id"]), "demote production", demoted, db_url)
    return int(incident["id"]), demoted


def serve(interval_s: float = 60.0, max_passes: int | None = None, executor: Any = None, config: Any = None,
          db_url: str | None = None, log: Callable[[str], None] = print,
          sleep: Callable[[float], None] = time.sleep, bastion_version: str | None = None,
          catalog: str | None = None) -> int:
    """Run ``run_due`` every ``interval_s`` seconds (``max_passes`` bounds it); returns the passes made.

    ``bastion_version`` and ``catalog`` pass through to ``run_due`` (tests stand for an upgrade with them).
    """
    passes = 0
    while max_passes is None or passes < max_passes:
        for o in run_due(executor=executor, config=config, db_url=db_url, log=log, bastion_version=bastion_version,
                         catalog=catalog):
            if o.status != "not-due":
                log(f"{o.model}: {o.status}" + (f" run {o.run_id}" if o.run_id else "")
                    + (f", incident {o.incident_id}" if o.incident_id else "") + (f" ({o.error})" if o.error else ""))
        passes += 1
        if max_passes is None or passes < max_passes:
            sleep(interval_s)
    return passes


__all__ = ["TRIGGERS", "WatchOutcome", "add_watch", "catalog_version", "due_reasons", "list_watches",
           "parse_every", "parse_triggers", "remove_watch", "run_due", "serve"]
