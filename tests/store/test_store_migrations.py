"""The migration chains build exactly the schema the SQLAlchemy models describe, on SQLite and PostgreSQL.

The migrations share their column conventions through ``bastion.store.migrations.columns``; a change there
that altered a column would show here as a difference between the migrated database and the models.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bastion.store.db import Base, dispose_engines, import_models, upgrade


def _differences(url: str) -> list[object]:
    upgrade(url)
    import_models()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()
        dispose_engines()


def test_sqlite_migrations_match_the_models(tmp_path: Path) -> None:
    assert _differences(f"sqlite:///{tmp_path / 'bastion.db'}") == []


@pytest.mark.postgres
def test_postgresql_migrations_match_the_models(pg_schema: Callable[[str], AbstractContextManager[str]]) -> None:
    with pg_schema("migrations") as url:
        assert _differences(url) == []
