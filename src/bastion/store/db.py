"""One database for all Bastion state.

SQLite under ``$BASTION_HOME/bastion.db`` by default; PostgreSQL (or any SQLAlchemy URL) via
``BASTION_DB_URL``, e.g. ``postgresql+psycopg://user@127.0.0.1:5432/test``.

Each capability declares its tables on the shared ``Base`` in its own module
(``bastion.store.models_<area>``, listed in ``MODEL_MODULES``) and ships its own Alembic
migration chain in ``bastion/store/migrations/versions/`` with ``branch_labels=("<area>",)``;
``upgrade()`` applies every head.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from threading import Lock

from sqlalchemy import BigInteger, DateTime, Engine, Integer, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from bastion.core.paths import bastion_home

BIGINT = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit integer column type on PostgreSQL; SQLite's INTEGER (64-bit already, and the only type it
auto-increments)."""


class Base(DeclarativeBase):
    """Declarative base shared by every Bastion table; a ``Mapped[datetime]`` column keeps its time zone."""

    type_annotation_map = {datetime: DateTime(timezone=True)}


# Modules that define tables on ``Base``; each capability appends its own.
MODEL_MODULES: list[str] = [
    "bastion.store.models_gateway",
    "bastion.store.models_respond",
    "bastion.store.models_govern",
    "bastion.store.models_data",
    "bastion.store.models_assess",
]

_engines: dict[str, Engine] = {}
_lock = Lock()


def database_url(url: str | None = None) -> str:
    """The URL in force: explicit argument, else ``BASTION_DB_URL``, else SQLite in ``$BASTION_HOME``."""
    if url:
        return url
    env = os.environ.get("BASTION_DB_URL")
    if env:
        return env
    return f"sqlite:///{(bastion_home() / 'bastion.db').resolve()}"


def get_engine(url: str | None = None) -> Engine:
    """A cached engine per URL. SQLite gets WAL mode and a busy timeout for concurrent writers."""
    resolved = database_url(url)
    with _lock:
        eng = _engines.get(resolved)
        if eng is None:
            if resolved.startswith("sqlite"):
                eng = create_engine(resolved, connect_args={"timeout": 30, "check_same_thread": False})

                @event.listens_for(eng, "connect")
                def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=FULL")
                    cur.execute("PRAGMA foreign_keys=ON")
                    cur.close()

            else:
                eng = create_engine(resolved, pool_pre_ping=True)
            _engines[resolved] = eng
    return eng


def dispose_engines() -> None:
    """Close every cached engine (tests and forked workers call this)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()


def import_models() -> None:
    """Import every table module so ``Base.metadata`` is complete."""
    for mod in MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction: commit on success, roll back on error."""
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrations_dir() -> Path:
    return Path(__file__).parent / "migrations"


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Apply Alembic migrations (every capability's head by default)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    cfg.attributes["engine"] = get_engine(url)
    command.upgrade(cfg, revision)
