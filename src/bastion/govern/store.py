"""Store access for governance: make sure the schema is there before reading or writing."""

from __future__ import annotations

from bastion.store.db import database_url

_ready: set[str] = set()


def ensure_schema(url: str | None = None) -> None:
    """Apply every Alembic head once per database URL in this process (cheap after the first call)."""
    resolved = database_url(url)
    if resolved in _ready:
        return
    from bastion.store.db import upgrade

    upgrade(url)
    _ready.add(resolved)
