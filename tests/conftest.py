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

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SHARED = ROOT.parent / "shared"
os.environ.setdefault("BASTION_HOME", str(ROOT / ".bastion-test-cache"))
os.environ.setdefault("TLDEXTRACT_CACHE", str(ROOT / ".bastion-test-cache" / "tldextract"))

if os.environ.get("PYTEST_XDIST_WORKER"):  # keep two xdist workers from oversubscribing two cores
    torch.set_num_threads(1)


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


# Tiny models saved in every format (used by the assess and models tests).

def tiny_cnn_module() -> nn.Sequential:
    """Conv + BatchNorm + pools + Linear: exercises most of the ONNX converter's ops.

    Built from stock torch layers: the supply-chain scanner treats TorchScript classes defined
    in test modules (``__torch__.tests.*``) as untrusted, as it should.
    """
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    )


@pytest.fixture(scope="module")
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    m = tiny_cnn_module()
    bn = m[1]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def saved_models(tiny_cnn: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same TinyCNN as TorchScript, torch.export (.pt2) and ONNX files."""
    d = tmp_path_factory.mktemp("models")
    x = torch.rand(4, 1, 8, 8)
    paths = {"torchscript": d / "cnn.pt", "torch-export": d / "cnn.pt2", "onnx": d / "cnn.onnx"}
    torch.jit.save(torch.jit.script(tiny_cnn), str(paths["torchscript"]))
    ep = torch.export.export(tiny_cnn, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(ep, str(paths["torch-export"]))
    torch.onnx.export(tiny_cnn, (x,), str(paths["onnx"]), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return paths


@pytest.fixture(scope="module")
def image_npz(tmp_path_factory: pytest.TempPathFactory, tiny_cnn: nn.Module) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        y = tiny_cnn(torch.from_numpy(x)).argmax(1).numpy()
    p = tmp_path_factory.mktemp("data") / "eval.npz"
    np.savez(p, x=x, y=y)
    return p
