"""Alembic environment: runs every capability's migration chain against Bastion's engine."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from bastion.store.db import Base, import_models

config = context.config
import_models()
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        context.run_migrations()


run_migrations_online()
