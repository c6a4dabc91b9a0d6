"""Shared test fixtures.

``BASTION_HOME`` points at one cache directory for the whole test session so the demo zoo
trains each model once (xdist workers share it; writes are atomic). Tests that need a
private state directory use the ``bastion_home`` fixture.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SHARED = ROOT.parent / "shared"
os.environ.setdefault("BASTION_HOME", str(ROOT / ".bastion-test-cache"))
os.environ.setdefault("TLDEXTRACT_CACHE", str(ROOT / ".bastion-test-cache" / "tldextract"))

try:  # keep two xdist workers from oversubscribing two cores
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def bastion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty ``$BASTION_HOME`` for one test (demo zoo cache still shared)."""
    home = tmp_path / "bastion-home"
    home.mkdir()
    zoo = Path(os.environ["BASTION_HOME"]) / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    (home / "zoo").symlink_to(zoo, target_is_directory=True)
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.delenv("BASTION_DB_URL", raising=False)
    monkeypatch.delenv("BASTION_REDIS_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (reference data such as MITRE ATLAS)."""
    assert SHARED.is_dir(), f"expected shared reference data at {SHARED}"
    return SHARED


@contextmanager
def _pg_schema(prefix: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    from bastion.store.db import dispose_engines

    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        dispose_engines()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Callable[[str], AbstractContextManager[str]]:
    """``with pg_schema("prefix") as url:`` a database URL on a fresh PostgreSQL schema, dropped after."""
    return _pg_schema
