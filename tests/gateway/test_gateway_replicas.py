"""Two gateway replicas over the real PostgreSQL and Redis on 127.0.0.1: shared budgets, one audit chain."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

REDIS = "redis://127.0.0.1:6379/0"
pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def pg_url(pg_schema: Any) -> Iterator[str]:
    with pg_schema("gw_test") as url:
        yield url


@pytest.fixture(scope="module")
def replicas(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path, gwt: Any, pg_url: str) -> Iterator[Any]:
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    cfg = gwt.make_config(db_url=pg_url, redis_url=REDIS, registry={"trusted_keys": [str(signer[1])]},
                          auth={"cache_ttl_s": 0.2})
    upgrade(pg_url)
    Registry(cfg).push(gwt.signed_copy(digits_pt, gw_home / "src", "benign.pt", signer[0]), "shared")
    _, key = create_client(f"svc-{secrets.token_hex(3)}", "client", ["shared"], budget={"requests": "4/minute"},
                           db_url=pg_url)
    apps = [create_app(cfg, preload=False), create_app(cfg, apply_migrations=False, preload=False)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield a, b, key, cfg


def test_replicas_share_budget_and_audit_chain(replicas: Any) -> None:
    a, b, key, cfg = replicas
    h = {"Authorization": f"Bearer {key}"}
    body = {"inputs": np.full((2, 64), 0.25).tolist()}
    codes = [c.post("/v1/models/shared/predict", json=body, headers=h).status_code for c in (a, b, a, b, a, b)]
    assert codes == [200, 200, 200, 200, 429, 429]
    from bastion.gateway.audit import verify_chain

    for c in (a, b):
        c.app.state.service.audit.flush()
    rep = verify_chain(cfg.db_url)
    assert rep.ok and rep.records >= 8  # push + promote + client + 6 requests, from three writers


def test_revocation_reaches_the_other_replica(replicas: Any) -> None:
    a, b, _key, cfg = replicas
    from bastion.gateway.clients import create_client

    _, k2 = create_client(f"tmp-{secrets.token_hex(3)}", "client", ["shared"], db_url=cfg.db_url)
    h = {"Authorization": f"Bearer {k2}"}
    body = {"inputs": np.full((1, 64), 0.5).tolist()}
    assert b.post("/v1/models/shared/predict", json=body, headers=h).status_code == 200
    root = create_client(f"root-{secrets.token_hex(3)}", "admin", ["*"], db_url=cfg.db_url)[1]
    ident = next(c for c in a.get("/v1/clients", headers={"Authorization": f"Bearer {root}"}).json()["clients"]
             if c["key_id"] == k2[4:28])["id"]
    assert a.delete(f"/v1/clients/{ident}", headers={"Authorization": f"Bearer {root}"}).status_code == 200
    time.sleep(0.3)  # > auth.cache_ttl_s
    assert b.post("/v1/models/shared/predict", json=body, headers=h).status_code == 401
