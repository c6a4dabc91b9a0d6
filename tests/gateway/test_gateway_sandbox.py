"""Sandboxed inference: hostile models get a clear 5xx and an audit entry; the gateway keeps serving."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

HOSTILE = ["socket", "unix", "write", "writetmp", "memory", "hang", "crash"]
X = {"inputs": np.full((1, 1, 8, 8), 0.5).tolist()}


def _spec(gwt: Any, model_dir: Path, name: str, **over: Any) -> Any:
    from bastion.gateway.sandbox import WorkerSpec

    kw: dict[str, Any] = {"loader": "hostile_models:load", "sys_path": (str(gwt.here),), "memory_mb": 1024,
                          "input_spec": {"shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0}}
    kw.update(over)
    return WorkerSpec(model_dir=model_dir, file_name=name, **kw)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    for name in [*HOSTILE, "benign", "picky"]:
        (d / f"{name}.pt").write_bytes(b"not a real model: the test loader picks behaviour by name")
    return d


def test_worker_reports_its_confinement_layers(gwt: Any, model_dir: Path) -> None:
    from bastion.gateway.sandbox import WorkerPool

    pool = WorkerPool(_spec(gwt, model_dir, "benign.pt")).start()
    try:
        layers = pool.info["layers"]
        assert "rlimits" in layers and "seccomp-no-sockets" in layers
        if os.geteuid() == 0:  # root in this CI: the full set must be on
            assert {"readonly-filesystem", "network-namespace", "no-capabilities"} <= set(layers)
        out = pool.predict(np.full((3, 1, 8, 8), 0.5, dtype=np.float32), timeout=5)
        assert out.shape == (3, 10) and np.allclose(out.sum(axis=1), 1)
    finally:
        pool.close()


@pytest.mark.parametrize(("name", "error", "needle"), [
    ("socket", "ModelFailure", "PermissionError"),
    ("unix", "ModelFailure", "PermissionError"),
    ("write", "ModelFailure", "Read-only file system"),
    ("writetmp", "ModelFailure", ""),
    ("memory", "ModelFailure", "memory"),
    ("hang", "SandboxTimeout", "did not answer"),
    ("crash", "SandboxCrash", "signal 9"),
])
def test_hostile_model_fails_cleanly_and_the_worker_recovers(gwt: Any, model_dir: Path, name: str, error: str,
                                                             needle: str) -> None:
    from bastion.gateway import sandbox

    pool = sandbox.WorkerPool(_spec(gwt, model_dir, f"{name}.pt")).start()
    try:
        with pytest.raises(getattr(sandbox, error)) as info:
            pool.predict(np.full((1, 1, 8, 8), 0.5, dtype=np.float32), timeout=1.5)
        assert needle in str(info.value)
        if name == "writetmp":
            assert not Path("/tmp/bastion-sandbox-escape.txt").exists()
        if name == "write":
            assert not (model_dir / "stolen.txt").exists()
        # after a crash/hang the pool replaces the worker; it answers again (and fails the same way)
        with pytest.raises(sandbox.SandboxError):
            pool.predict(np.full((1, 1, 8, 8), 0.5, dtype=np.float32), timeout=1.5)
        assert pool.restarts == (2 if error in ("SandboxTimeout", "SandboxCrash") else 0)
    finally:
        pool.close()


def test_concurrent_requests_are_batched_and_one_bad_input_fails_alone(gwt: Any, model_dir: Path) -> None:
    """From the event loop, requests queued behind a busy worker go to it as one batch; each gets its own rows,
    and a batch the model refuses is retried request by request, so only the bad input fails."""
    import asyncio

    from bastion.gateway.sandbox import ModelFailure, WorkerPool

    pool = WorkerPool(_spec(gwt, model_dir, "picky.pt")).start()
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 0.8, size=(int(rng.integers(1, 4)), 1, 8, 8)).astype(np.float32) for _ in range(24)]
    bad = np.full((1, 1, 8, 8), 0.95, dtype=np.float32)

    async def run() -> list[Any]:
        return await asyncio.gather(*[pool.apredict(x, 5) for x in [*xs[:12], bad, *xs[12:]]],
                                    return_exceptions=True)

    try:
        out = asyncio.run(run())
        assert pool.batches >= 1 and pool.batched_requests >= 2  # the queue went to the worker together
        assert isinstance(out[12], ModelFailure) and "above 0.9" in str(out[12])
        for x, got in zip(xs, out[:12] + out[13:], strict=True):
            assert np.allclose(got, pool.predict(x, 5), atol=1e-6)  # each request its own rows
    finally:
        pool.close()


@pytest.fixture(scope="module")
def gw(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path, gwt: Any) -> Any:
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    cfg = gwt.make_config(registry={"trusted_keys": [str(signer[1])]},
                          sandbox={"timeout_s": 1.5, "memory_mb": 1024})
    upgrade()
    reg = Registry(cfg)
    for name in ["benign", "socket", "write", "memory", "hang", "crash"]:
        reg.push(gwt.signed_copy(digits_pt, gw_home / "src" / name, f"{name}.pt", signer[0]), name)
    _, key = create_client("app", "client", ["*"])
    app = create_app(cfg, preload=False)
    with TestClient(app) as client:
        yield SimpleNamespace(client=client, key=key, app=app)


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("socket", 502, "model_error"), ("write", 502, "model_error"), ("memory", 502, "model_error"),
    ("hang", 504, "timeout"), ("crash", 502, "worker_crashed"),
])
def test_gateway_answers_5xx_audits_and_keeps_serving(gw: Any, name: str, status: int, reason: str) -> None:
    h = {"Authorization": f"Bearer {gw.key}"}
    r = gw.client.post(f"/v1/models/{name}/predict", json=X, headers=h)
    assert r.status_code == status and r.json()["error"] == reason, r.text
    assert "predictions" not in r.text
    ok = gw.client.post("/v1/models/benign/predict", json=X, headers=h)
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    from bastion.gateway.audit import export_records

    gw.app.state.service.audit.flush()
    recs = [x for x in export_records() if x["body"].get("model") == name and x["kind"] == "request"]
    assert recs and recs[-1]["body"]["decision"] == f"deny:{reason}" and recs[-1]["body"]["status"] == status


def test_worker_runs_bastion_installed_under_tmp(model_dir: Path, digits_pt: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The private tmpfs sits on the model's own directory, so a Bastion installed under /tmp stays importable
    after confinement (with the tmpfs on /tmp the worker failed: No module named 'bastion.gateway.sandbox.loading',
    the default loader being imported only once the worker is confined)."""
    import shutil
    import tempfile

    import bastion
    from bastion.gateway.sandbox import WorkerPool, WorkerSpec

    site = Path(tempfile.mkdtemp(prefix="bastion-under-tmp-", dir="/tmp"))
    try:
        shutil.copytree(Path(bastion.__file__).parent, site / "bastion", ignore=shutil.ignore_patterns("__pycache__"))
        (site / "model").mkdir()
        shutil.copyfile(digits_pt, site / "model" / "digits.pt")
        monkeypatch.setenv("PYTHONPATH", str(site))  # the worker imports this copy, not the checkout
        pool = WorkerPool(WorkerSpec(model_dir=site / "model", file_name="digits.pt", memory_mb=2048,
                                     input_spec={"shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0})).start()
        try:
            info = pool.info
            assert info["bastion_path"] == str(site / "bastion")
            if os.geteuid() == 0:  # the private read-only file system really was mounted
                assert "readonly-filesystem" in info["layers"]
            assert info["model_path"] == str(site / "model" / "digits.pt")
            out = pool.predict(np.full((2, 1, 8, 8), 0.5, dtype=np.float32), timeout=10)
            assert out.shape == (2, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
        finally:
            pool.close()
    finally:
        shutil.rmtree(site, ignore_errors=True)
