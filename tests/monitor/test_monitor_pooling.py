"""Replica pooling through a real store (the embedded SQLite store, and the real Redis on 127.0.0.1),
the detector process with its flush API, and the feature-squeezing signal."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bastion.monitor.config import MonitorConfig
from bastion.monitor.detectors import DetectorHub, Observation, sync_replicas
from bastion.monitor.pooling import DatabaseReplicaStore, RedisReplicaStore, ReplicaStore

REDIS = "redis://127.0.0.1:6379/0"
D = 12
COV = np.eye(D) * 0.6 + 0.4


def _cfg(**extra: Any) -> MonitorConfig:
    return MonitorConfig.model_validate({
        "drift": {"window": 200, "test_every": 50, "ert": 5000, "n_bootstrap": 400},
        "extraction": {"min_queries": 100}, "pooling": {"store": "database", "sync_s": 3600}, **extra})


@pytest.fixture
def world(bastion_home: Path) -> np.random.Generator:
    from bastion.monitor.service import capture_reference
    from bastion.store.db import dispose_engines, upgrade

    dispose_engines()
    upgrade()
    rng = np.random.default_rng(3)
    capture_reference("tab", rng.multivariate_normal(np.zeros(D), COV, size=1500))
    return rng


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, world: np.random.Generator) -> Iterator[tuple[ReplicaStore, str]]:
    if request.param == "database":  # the embedded default: SQLite in $BASTION_HOME
        yield DatabaseReplicaStore(None, stale_s=1.0), "database"
        return
    if request.param == "postgres":
        from bastion.store.db import upgrade

        with request.getfixturevalue("pg_schema")("mon_test") as url:
            upgrade(url)
            yield DatabaseReplicaStore(url, stale_s=1.0), "postgres"
        return
    prefix = f"bastion:test:{secrets.token_hex(4)}"
    st = RedisReplicaStore(REDIS, prefix, stale_s=1.0)
    try:
        yield st, prefix
    finally:
        for key in st.r.scan_iter(f"{prefix}:*"):
            st.r.delete(key)
        st.close()


def _obs(client: str, x: np.ndarray, ts: float, model: str = "tab") -> Observation:
    return Observation(client, model, "1", x.reshape(1, -1), np.array([[0.1, 0.9]]), np.array([1]), ts)


def _round(hubs: dict[str, DetectorHub], st: ReplicaStore) -> dict[str, list[dict[str, Any]]]:
    """Every replica pushes, then every replica syncs (as their periodic syncs would, once all have pushed)."""
    for rep, hub in hubs.items():
        for model in hub.models:
            payload = hub.export_state(model, rep)
            assert payload is not None
            st.push(model, rep, payload)
    return {rep: sync_replicas(hub, st, rep) for rep, hub in hubs.items()}


def test_replicas_pool_drift_and_client_counts_through_the_store(world: np.random.Generator,
                                                                 store: tuple[ReplicaStore, str]) -> None:
    from bastion.monitor.service import capture_reference

    st, _ = store
    capture_reference("tab2", world.multivariate_normal(np.zeros(D), COV, size=1500))
    cfg = _cfg(drift={"window": 300, "test_every": 50, "ert": 5000, "n_bootstrap": 400})
    hubs = {"r-a": DetectorHub(cfg), "r-b": DetectorHub(cfg)}
    shift = np.zeros(D)
    shift[:3] = 1.0 * np.sqrt(np.diag(COV))[:3]
    ts = time.time()
    # clean traffic, 150 rows per replica: neither has a full window of its own; the merged one is quiet
    for i in range(300):
        rep = "r-a" if i % 2 else "r-b"
        assert hubs[rep].process(_obs(f"honest{i % 3}", world.multivariate_normal(np.zeros(D), COV), ts + i * 1e-3)) == []
        assert hubs[rep].process(_obs(f"honest{i % 3}", world.multivariate_normal(np.zeros(D), COV), ts + i * 1e-3,
                                      "tab2")) == []
    assert _round(hubs, st) == {"r-a": [], "r-b": []}
    # then a shift of 1 σ on 3 features (100 rows per replica: still no full window on either), and on
    # the other model an extractor spreading random queries over both (60 each: under min_queries on either)
    for i in range(200):
        rep = "r-a" if i % 2 else "r-b"
        assert hubs[rep].process(_obs("honest0", world.multivariate_normal(shift, COV), ts + 1 + i * 1e-3)) == []
    for i in range(120):
        rep = "r-a" if i % 2 else "r-b"
        assert hubs[rep].process(_obs("spread", world.normal(0, 6, D), ts + 2 + i * 1e-3, "tab2")) == []
    found = _round(hubs, st)
    assert found["r-b"] == []  # only the lowest-id fresh replica evaluates the merged view
    kinds = {(f["detector"], f["model"], f["client"]) for f in found["r-a"]}
    # the random queries also shift tab2's input distribution: drift there too
    assert kinds == {("drift", "tab", None), ("drift", "tab2", None), ("extraction", "tab2", "spread")}
    drift = next(f for f in found["r-a"] if f["detector"] == "drift" and f["model"] == "tab")
    assert drift["evidence"]["pooled"] and drift["evidence"]["replicas"] == ["r-a", "r-b"]
    assert drift["evidence"]["seen"] == 500
    ext = next(f for f in found["r-a"] if f["detector"] == "extraction")
    assert ext["evidence"]["signal"] == "input_coverage" and ext["evidence"]["queries"] == 120
    assert _round(hubs, st) == {"r-a": [], "r-b": []}  # no repeat on the same rows
    time.sleep(1.2)  # a replica silent for stale_s leaves the merged view
    assert st.pull("tab") == {} and st.pull("tab2") == {}


@pytest.mark.parametrize("mode,store", [pytest.param("process", "redis", marks=pytest.mark.redis),
                                        ("thread", "database")])
def test_monitor_services_pool_replicas_and_flush_raises_alerts(world: np.random.Generator, mode: str,
                                                                store: str) -> None:
    from bastion.monitor.service import MonitorService

    prefix = f"bastion:test:{secrets.token_hex(4)}"
    cfg = _cfg(pooling={"store": store, "sync_s": 3600, "key_prefix": prefix}, process=mode == "process",
               alerts=[{"detector": "drift", "severity": "medium"}])
    gw = SimpleNamespace(config=SimpleNamespace(db_url=None, resolved_redis_url=lambda: REDIS,
                                                model_dump_json=lambda: "{}"))
    a = MonitorService(cfg, gw, replica="r-a")
    b = MonitorService(cfg, gw, replica="r-b")
    try:
        assert a.prepare() == ["tab"] and b.prepare() == ["tab"]
        shift = np.zeros(D)
        shift[:3] = np.sqrt(np.diag(COV))[:3]
        for i in range(300):
            ev = SimpleNamespace(**_obs("c1", world.multivariate_normal(shift, COV), time.time())._asdict())
            target = a if i % 2 else b
            # process mode: the request-thread fast path (a datagram) and the observer-thread path (the
            # stream socket) both reach the detectors; thread mode takes every event on the observer thread
            if i % 4 < 2 and target.offer(ev):
                assert mode == "process"
            else:
                target(ev)
        assert a.flush(60) and b.flush(60)
        assert a.alerts == [] and b.alerts == []  # 150 each: no full window on either replica
        assert b.sync() == 0 and a.sync() == 1 and b.sync() == 0
        assert [(r["detector"], r["pooled"]) for r in a.alerts] == [("drift", True)]
        snap = a.snapshot()
        assert snap["process"]["mode"] == mode and snap["process"]["alive"]
        assert snap["process"]["detectors"]["events"] == 150
        assert any(p["kind"] == "pooled_drift" for p in snap["models"]["tab"]["series"])
    finally:
        a.close()
        b.close()
        if store == "redis":
            import redis

            r = redis.Redis.from_url(REDIS)
            for key in r.scan_iter(f"{prefix}:*"):
                r.delete(key)
            r.close()


def test_process_many_merges_per_client_and_counts_every_observation(world: np.random.Generator) -> None:
    cfg = _cfg(pooling={"store": "none"})
    one, many = DetectorHub(cfg, pooled=False), DetectorHub(cfg, pooled=False)
    ts = time.time()
    batch = [_obs(f"c{i % 3}", world.multivariate_normal(np.zeros(D), COV), ts + i) for i in range(60)]
    for o in batch:
        one.process(o)
    many.process_many(batch[:25])
    many.process_many(batch[25:])
    assert one.events == many.events == 60
    a, b = one.models["tab"], many.models["tab"]
    assert a is not None and b is not None and a.drift.seen == b.drift.seen == 60
    assert a.extraction.client_counts(10, ts + 60) == b.extraction.client_counts(10, ts + 60)
    assert sorted(map(tuple, a.drift.window)) == sorted(map(tuple, b.drift.window))


def test_redis_pooling_without_redis_is_a_config_error(world: np.random.Generator) -> None:
    from bastion.core.errors import ConfigError
    from bastion.monitor.service import MonitorService

    with pytest.raises(ConfigError, match="no redis_url"):
        MonitorService(_cfg(pooling={"store": "redis"}))


def test_detector_process_is_restarted_after_a_crash(world: np.random.Generator) -> None:
    import os
    import signal

    from bastion.monitor.service import MonitorService

    m = MonitorService(_cfg(pooling={"store": "none"}))
    try:
        assert m.prepare() == ["tab"]
        pid = m.snapshot()["process"]["pid"]
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        while m.snapshot()["process"]["alive"] and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        m(SimpleNamespace(**_obs("c1", world.multivariate_normal(np.zeros(D), COV), time.time())._asdict()))
        m(SimpleNamespace(**_obs("c1", np.zeros(D + 1), time.time())._asdict()))  # wrong shape: skipped, not fatal
        assert m.flush(60)
        proc = m.snapshot()["process"]
        assert proc["restarts"] == 1 and proc["alive"] and proc["pid"] != pid
        assert proc["detectors"]["events"] == 2 and proc["detectors"]["errors"] == 1
        assert m.snapshot()["models"]["tab"]["series"][-1]["kind"] == "anomaly"  # the good one went through
    finally:
        m.close()


def test_squeezing_disagreement_flags_adversarial_inputs_not_clean_ones(bastion_home: Path) -> None:
    import torch

    from bastion.defenses.adversarial.perturb import pgd_perturb
    from bastion.models.zoo import demo_target
    from bastion.monitor.service import capture_reference

    t = demo_target("digits")
    module = t.model.module  # type: ignore[attr-defined]
    assert t.data.x_train is not None and t.data.x_test is not None and t.data.y_test is not None
    capture_reference("tab", t.data.x_train)

    def proba(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(module(torch.from_numpy(np.asarray(x, dtype=np.float32))), 1).numpy()

    cfg = MonitorConfig.model_validate({"squeezing": {"enabled": True, "window": 100, "min_queries": 50},
                                        "drift": {"n_bootstrap": 200},
                                        "pooling": {"store": "none"}})
    hub = DetectorHub(cfg, lambda model, version: (proba, (1, 8, 8), (0.0, 1.0)))
    xt, yt = t.data.x_test[:300], t.data.y_test[:300]
    adv = pgd_perturb(module, torch.from_numpy(xt), torch.from_numpy(yt).long(), 0.1, 20).numpy()

    def run(client: str, xs: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for x in xs:
            p = proba(x[None])
            out += [f for f in hub.process(Observation(client, "tab", "1", x[None], p, p.argmax(1), time.time()))
                    if f["detector"] == "adversarial_input"]
        return out

    assert run("honest", xt[:200]) == []
    thr = hub.snapshot()["tab"]["squeeze_thresholds"]["1"]
    assert 0 < thr < 2
    found = run("attacker", adv[:200])
    assert {f["client"] for f in found} == {"attacker", None}
    client_flag = next(f for f in found if f["client"] == "attacker")
    assert client_flag["evidence"]["signal"] == "squeezing" and client_flag["evidence"]["share"] > 0.15
