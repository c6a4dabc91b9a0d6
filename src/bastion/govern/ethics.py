"""Ethics checklist: the Asilomar AI principles that bear on a deployed model, plus the EU AI Act's
AI-literacy (Art. 4) and human-oversight (Art. 14) duties, as review items with owners and answers.

Questions are Bastion's own wording. Answers (``yes``, ``partial``, ``no``, ``n/a``) are recorded in the
store with their owner and notes; the latest answer per item counts. Where Bastion has evidence for an
item (training coverage, audit log, monitoring …) it is shown beside the question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.yamlfile import load_yaml_mapping
from bastion.govern.store import ensure_schema
from bastion.store.db import session_scope
from bastion.store.models_govern import GovernEthicsAnswer

ANSWERS = ("yes", "partial", "no", "n/a")


@dataclass(frozen=True)
class EthicsItem:
    id: str
    principle: str
    question: str
    controls: tuple[str, ...] = ()


ITEMS: tuple[EthicsItem, ...] = (
    EthicsItem("asilomar-06", "Asilomar 6 — Safety", "Is the system tested for safety and security before "
               "release and watched in operation?", ("BC-EV-01", "BC-SC-01", "BC-MO-01")),
    EthicsItem("asilomar-07", "Asilomar 7 — Failure transparency", "If the system causes harm, can we "
               "reconstruct what happened and why?", ("BC-LG-01", "BC-XP-01", "BC-IR-01")),
    EthicsItem("asilomar-08", "Asilomar 8 — Judicial transparency", "Where outputs inform legal or official "
               "decisions, can a competent authority audit how?", ("BC-GV-02",)),
    EthicsItem("asilomar-09", "Asilomar 9 — Responsibility", "Are named people accountable for the system's uses, "
               "misuses and their consequences?", ("BC-GV-01",)),
    EthicsItem("asilomar-10", "Asilomar 10 — Value alignment", "Are the system's goals and behaviour consistent "
               "with the organisation's stated values and the users' interests?"),
    EthicsItem("asilomar-11", "Asilomar 11 — Human values", "Is the system compatible with dignity, rights, "
               "freedoms and cultural diversity of the people it affects (incl. fairness)?", ("BC-XP-01",)),
    EthicsItem("asilomar-12", "Asilomar 12 — Personal privacy", "Can people access, manage and control the data "
               "about them that the system uses?", ("BC-PI-01", "BC-PR-01")),
    EthicsItem("asilomar-13", "Asilomar 13 — Liberty and privacy", "Does the use of personal data avoid "
               "unreasonably curtailing people's real or perceived liberty?", ("BC-GV-03",)),
    EthicsItem("asilomar-14", "Asilomar 14 — Shared benefit", "Does the system benefit the people it affects, "
               "not only its operator?"),
    EthicsItem("asilomar-16", "Asilomar 16 — Human control", "Do humans decide which decisions are delegated to "
               "the system, and can they take them back?", ("BC-HO-01",)),
    EthicsItem("asilomar-17", "Asilomar 17 — Non-subversion", "Does the system respect, rather than undermine, "
               "the social and civic processes it touches?"),
    EthicsItem("aiact-art4", "EU AI Act Art. 4 — AI literacy", "Have staff who build, operate or use the system "
               "completed training suited to their role?", ("BC-TR-01",)),
    EthicsItem("aiact-art14", "EU AI Act Art. 14 — Human oversight", "Can assigned people understand outputs, "
               "override them, and stop the system?", ("BC-HO-01",)),
)
_BY_ID = {i.id: i for i in ITEMS}


@dataclass
class EthicsStatus:
    item: str
    principle: str
    question: str
    answer: str | None
    owner: str | None
    notes: str
    answered_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def template(system: str) -> str:
    """A YAML answers file to fill in."""
    doc = {"system": system, "answers": {i.id: {"answer": "yes|partial|no|n/a", "owner": "", "notes": i.question}
                                         for i in ITEMS}}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load_answers(path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """Validate an answers file; every problem is named (item id, field)."""
    expected = (f"{path}: expected 'system: NAME' and 'answers: {{item_id: {{answer, owner, notes}}}}' "
                "(see 'bastion govern ethics --template')")
    doc = load_yaml_mapping(path, missing=f"answers file {path} does not exist", missing_error=InvalidInputError,
                            not_mapping=expected)
    if not isinstance(doc.get("answers"), dict) or not doc.get("system"):
        raise ConfigError(expected)
    problems, out = [], {}
    for item_id, a in doc["answers"].items():
        if item_id not in _BY_ID:
            problems.append(f"unknown item {item_id!r}")
            continue
        if not isinstance(a, dict):
            problems.append(f"{item_id}: expected answer/owner/notes")
            continue
        raw = a.get("answer", "")
        ans = ("yes" if raw else "no") if isinstance(raw, bool) else str(raw).strip().lower()  # YAML 1.1: yes→True
        if ans not in ANSWERS:
            problems.append(f"{item_id}.answer {a.get('answer')!r}: expected one of {', '.join(ANSWERS)}")
        if not str(a.get("owner") or "").strip():
            problems.append(f"{item_id}.owner: every answer needs an owner")
        out[item_id] = {"answer": ans, "owner": str(a.get("owner") or "").strip(), "notes": str(a.get("notes") or "")}
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return str(doc["system"]), out


def record_answers(system: str, answers: dict[str, dict[str, str]], url: str | None = None) -> int:
    ensure_schema(url)
    now = datetime.now(UTC)
    with session_scope(url) as s:
        for item_id, a in answers.items():
            s.add(GovernEthicsAnswer(system=system, item_id=item_id, answer=a["answer"], owner=a["owner"],
                                     notes=a["notes"], answered_at=now))
    return len(answers)


def checklist(system: str, url: str | None = None) -> list[EthicsStatus]:
    """Every item with its latest recorded answer (or none)."""
    ensure_schema(url)
    with session_scope(url) as s:
        rows = s.scalars(select(GovernEthicsAnswer).where(GovernEthicsAnswer.system == system)
                         .order_by(GovernEthicsAnswer.id)).all()
        latest = {r.item_id: r for r in rows}
        return [EthicsStatus(i.id, i.principle, i.question,
                             latest[i.id].answer if i.id in latest else None,
                             latest[i.id].owner if i.id in latest else None,
                             latest[i.id].notes if i.id in latest else "",
                             latest[i.id].answered_at.isoformat() if i.id in latest else None) for i in ITEMS]
