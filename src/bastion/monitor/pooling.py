"""Replica pooling: each gateway replica's monitor pushes its mergeable detector state (recent inputs,
counts, per-client summaries; ``DetectorHub.export_state``) to a shared store every ``sync_s``
seconds and reads everyone's back, so one replica (the lowest id among the fresh ones) evaluates
the detectors over the merged view (``DetectorHub.pooled_findings``).

Stores: ``RedisReplicaStore`` (a hash per model plus a sorted set of push times, on the gateway's
Redis) and ``DatabaseReplicaStore`` (the ``respond_monitor_state`` table of the gateway's store:
SQLite by default, PostgreSQL in production). A replica silent for ``stale_s`` drops out of the view
and its state is deleted. Payloads are ``.npz`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Any, Protocol


def replica_id() -> str:
    """A name for this process, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class ReplicaStore(Protocol):
    def push(self, model: str, replica: str, payload: bytes) -> None: ...

    def pull(self, model: str) -> dict[str, bytes]: ...

    def close(self) -> None: ...


class RedisReplicaStore:
    """``{prefix}:{model}`` (hash replica → state) and ``{prefix}:{model}:ts`` (sorted set of push times,
    Redis server time, so replicas' clocks need not agree)."""

    def __init__(self, url: str, prefix: str = "bastion:monitor", stale_s: float = 30.0) -> None:
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=5)
        self.prefix, self.stale_s = prefix, stale_s

    def _now(self) -> float:
        sec, usec = self.r.time()
        return float(sec) + usec / 1e6

    def push(self, model: str, replica: str, payload: bytes) -> None:
        key = f"{self.prefix}:{model}"
        ttl = max(1, int(self.stale_s * 4))
        pipe = self.r.pipeline()
        pipe.hset(key, replica, payload)
        pipe.zadd(f"{key}:ts", {replica: self._now()})
        pipe.expire(key, ttl)
        pipe.expire(f"{key}:ts", ttl)
        pipe.execute()

    def pull(self, model: str) -> dict[str, bytes]:
        key = f"{self.prefix}:{model}"
        cutoff = self._now() - self.stale_s
        stale = [_text(m) for m in self.r.zrangebyscore(f"{key}:ts", "-inf", f"({cutoff}")]
        if stale:
            pipe = self.r.pipeline()
            pipe.hdel(key, *stale)
            pipe.zrem(f"{key}:ts", *stale)
            pipe.execute()
        fresh = [_text(m) for m in self.r.zrangebyscore(f"{key}:ts", cutoff, "+inf")]
        values: list[Any] = list(self.r.hmget(key, fresh)) if fresh else []
        return {rep: bytes(val) for rep, val in zip(fresh, values, strict=True) if val is not None}

    def close(self) -> None:
        self.r.close()


def _text(member: Any) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


class DatabaseReplicaStore:
    """The ``respond_monitor_state`` table (one row per model and replica)."""

    def __init__(self, db_url: str | None = None, stale_s: float = 30.0) -> None:
        self.db_url, self.stale_s = db_url, stale_s

    def push(self, model: str, replica: str, payload: bytes) -> None:
        from bastion.store.db import session_scope
        from bastion.store.models_respond import RespondMonitorState

        with session_scope(self.db_url) as s:
            s.merge(RespondMonitorState(model=model, replica=replica, updated_at=time.time(), payload=payload))

    def pull(self, model: str) -> dict[str, bytes]:
        from sqlalchemy import delete, select

        from bastion.store.db import session_scope
        from bastion.store.models_respond import RespondMonitorState as T

        cutoff = time.time() - self.stale_s
        with session_scope(self.db_url) as s:
            s.execute(delete(T).where(T.model == model, T.updated_at < cutoff))
            rows = s.execute(select(T.replica, T.payload).where(T.model == model)).all()
        return {r.replica: bytes(r.payload) for r in rows}

    def close(self) -> None:
        pass


def make_store(kind: str, redis_url: str | None, db_url: str | None, prefix: str,
               stale_s: float) -> ReplicaStore | None:
    """The configured store (``auto``: Redis when the gateway has one, else no pooling)."""
    if kind == "auto":
        kind = "redis" if redis_url else "none"
    if kind == "none":
        return None
    if kind == "redis":
        if not redis_url:
            from bastion.core.errors import ConfigError

            raise ConfigError("monitoring.pooling.store is redis but the gateway has no redis_url")
        return RedisReplicaStore(redis_url, prefix, stale_s)
    return DatabaseReplicaStore(db_url, stale_s)
