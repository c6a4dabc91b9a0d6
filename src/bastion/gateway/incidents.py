"""The dashboard's view of incidents: an interface here, the implementation in incident response.

Incidents belong to ``bastion.respond``, which sits above the gateway in the layer order (it acts on
the gateway through ``bastion.gateway.control``). The dashboard still lists incidents, shows one, and
notes a rollback started from one; it does that through an ``IncidentBook``:

- ``app.state.incident_book`` when the app was given one (a test, another product), or else
- the first book registered under the ``bastion.incident_books`` entry point (Bastion registers
  ``incidents = bastion.respond.incidents:IncidentBook``, which reads the incident tables), or else
- ``NoIncidents``: an empty list, "no incident with id N", and notes dropped.

Examples:
    >>> book = NoIncidents()
    >>> book.list(db_url=None)
    []
"""

from __future__ import annotations

from typing import Any, Protocol

from bastion.core.errors import InvalidInputError

BOOK_GROUP = "bastion.incident_books"


class IncidentBook(Protocol):
    """What the dashboard reads and writes of incidents (dicts as ``respond.incidents.incident_dict``)."""

    def list(self, db_url: str | None) -> list[dict[str, Any]]: ...

    def get(self, incident_id: int, db_url: str | None) -> dict[str, Any]: ...

    def record_action(self, incident_id: int, action: str, result: dict[str, Any], db_url: str | None,
                      actor: str) -> None: ...


class NoIncidents:
    """The book of a gateway with no incident response installed."""

    def list(self, db_url: str | None) -> list[dict[str, Any]]:
        return []

    def get(self, incident_id: int, db_url: str | None) -> dict[str, Any]:
        raise InvalidInputError(f"no incident with id {incident_id}")

    def record_action(self, incident_id: int, action: str, result: dict[str, Any], db_url: str | None,
                      actor: str) -> None:
        return None


def registered_book() -> IncidentBook:
    """The first ``bastion.incident_books`` entry point by name (built with no arguments), or ``NoIncidents``."""
    from importlib.metadata import entry_points

    eps = sorted(entry_points(group=BOOK_GROUP), key=lambda e: e.name)
    book: IncidentBook = eps[0].load()() if eps else NoIncidents()
    return book


def incident_book(state: Any) -> IncidentBook:
    """The app's book (``state.incident_book``), looked up once from the entry point when unset."""
    book = getattr(state, "incident_book", None)
    if book is None:
        book = registered_book()
        state.incident_book = book
    return book  # type: ignore[no-any-return]
