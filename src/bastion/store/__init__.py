"""The store: SQLAlchemy 2 models and Alembic migrations (SQLite default, PostgreSQL by URL)."""

from bastion.store.db import Base, database_url, get_engine, session_scope, upgrade

__all__ = ["Base", "database_url", "get_engine", "session_scope", "upgrade"]
