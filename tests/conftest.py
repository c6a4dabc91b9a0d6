"""Shared test fixtures.

``BASTION_HOME`` points at one cache directory for the whole test session so the demo zoo
trains each model once (xdist workers share it; writes are atomic). Tests that need a
private state directory use the ``bastion_home`` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
