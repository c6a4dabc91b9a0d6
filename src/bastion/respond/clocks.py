"""Regulatory clocks that start when an incident is opened (deadlines, not legal advice).

- GDPR Art. 33(1): notify the supervisory authority of a personal-data breach without undue delay
  and, where feasible, within 72 hours of becoming aware of it.
- EU AI Act (Regulation (EU) 2024/1689) Art. 73: providers of high-risk AI systems report a
  serious incident immediately after establishing a causal link (or its reasonable likelihood) and
  no later than 15 days after becoming aware (73(2)); no later than 2 days for a widespread
  infringement or a serious and irreversible disruption of critical infrastructure (73(3)); no
  later than 10 days in the event of a person's death (73(4)).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

AIActCase = Literal["standard", "widespread_or_critical_infrastructure", "death"]

_AI_ACT = {
    "standard": (timedelta(days=15), "Art. 73(2)"),
    "widespread_or_critical_infrastructure": (timedelta(days=2), "Art. 73(3)"),
    "death": (timedelta(days=10), "Art. 73(4)"),
}


def regulatory_clocks(opened_at: datetime, personal_data: bool, serious: bool,
                      ai_act_case: AIActCase = "standard", now: datetime | None = None) -> list[dict[str, Any]]:
    """The deadlines that apply to an incident, with time left (negative = overdue)."""
    clocks = []
    ref = now or datetime.now(opened_at.tzinfo)
    if personal_data:
        due = opened_at + timedelta(hours=72)
        clocks.append({"regime": "GDPR", "article": "Art. 33(1)", "to": "supervisory authority",
                       "due": due.isoformat(), "hours_left": round((due - ref).total_seconds() / 3600, 1)})
    if serious:
        delta, art = _AI_ACT[ai_act_case]
        due = opened_at + delta
        clocks.append({"regime": "EU AI Act", "article": art, "to": "market surveillance authority",
                       "due": due.isoformat(), "hours_left": round((due - ref).total_seconds() / 3600, 1)})
    return clocks
