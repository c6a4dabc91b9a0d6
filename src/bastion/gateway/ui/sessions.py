"""Server-side dashboard sessions: an opaque random id in an HttpOnly cookie, mapped to the principal.

The cookie holds 256 random bits and nothing else; the server keeps only ``sha256(id)`` (a leaked
session table cannot be replayed), the principal, a per-session CSRF token and the expiry (idle and
absolute). The API key or JWT pasted at login is never stored: for API-key sessions the key id (the
public lookup handle) is kept so revocation ends the session on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from bastion.gateway.auth import Principal

COOKIE = "bastion_ui"
VIEW_ROLES = frozenset({"admin", "operator", "auditor"})


@dataclass
class UISession:
    principal: Principal
    csrf: str
    created: float
    last_seen: float
    expires: float  # absolute (also bounded by a JWT's exp)
    key_id: str | None = None


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class SessionStore:
    """In-process session table (one per gateway app; a restart logs everyone out).
    ``RedisSessionStore`` shares sessions between workers and replicas."""

    def __init__(self, idle_s: float = 1800.0, absolute_s: float = 8 * 3600.0, max_sessions: int = 10_000) -> None:
        self.idle_s, self.absolute_s, self.max_sessions = idle_s, absolute_s, max_sessions
        self._rows: dict[str, UISession] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal, key_id: str | None = None, not_after: float | None = None) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.absolute_s if not_after is None else min(now + self.absolute_s, not_after)
        row = UISession(principal, secrets.token_urlsafe(32), now, now, expires, key_id)
        with self._lock:
            self._purge(now)
            if len(self._rows) >= self.max_sessions:
                oldest = min(self._rows, key=lambda k: self._rows[k].last_seen)
                del self._rows[oldest]
            self._rows[_digest(sid)] = row
        return sid

    def get(self, sid: str | None) -> UISession | None:
        if not sid or len(sid) > 128:
            return None
        now = time.time()
        key = _digest(sid)
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                return None
            if now > row.expires or now - row.last_seen > self.idle_s:
                del self._rows[key]
                return None
            row.last_seen = now
            return row

    def delete(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._rows.pop(_digest(sid), None)

    def _purge(self, now: float) -> None:
        dead = [k for k, r in self._rows.items() if now > r.expires or now - r.last_seen > self.idle_s]
        for k in dead:
            del self._rows[k]


def csrf_ok(session: UISession, token: str | None) -> bool:
    """Constant-time check of the form's CSRF token against the session's."""
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())


def _principal_to_json(p: Principal) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "role": p.role, "scopes": sorted(p.scopes), "models": list(p.models),
            "via": p.via, "budget": dict(p.budget)}


def _principal_from_json(d: dict[str, Any]) -> Principal:
    return Principal(id=str(d["id"]), name=str(d["name"]), role=str(d["role"]), scopes=frozenset(d["scopes"]),
                     models=tuple(d["models"]), via=d["via"], budget=dict(d.get("budget") or {}))


class RedisSessionStore(SessionStore):
    """The same sessions in Redis (``bastion:ui:session:<sha256(id)>``), shared by every worker and
    replica that uses the gateway's Redis; the key's TTL is the idle timeout."""

    PREFIX = "bastion:ui:session:"

    def __init__(self, url: str, idle_s: float = 1800.0, absolute_s: float = 8 * 3600.0) -> None:
        super().__init__(idle_s, absolute_s)
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=5)

    def create(self, principal: Principal, key_id: str | None = None, not_after: float | None = None) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.absolute_s if not_after is None else min(now + self.absolute_s, not_after)
        row = {"principal": _principal_to_json(principal), "csrf": secrets.token_urlsafe(32), "created": now,
               "expires": expires, "key_id": key_id}
        ttl = max(1, int(min(self.idle_s, expires - now)))
        self.redis.set(self.PREFIX + _digest(sid), json.dumps(row), ex=ttl)
        return sid

    def get(self, sid: str | None) -> UISession | None:
        if not sid or len(sid) > 128:
            return None
        key = self.PREFIX + _digest(sid)
        raw = self.redis.get(key)
        if raw is None:
            return None
        row = json.loads(raw)
        now = time.time()
        if now > float(row["expires"]):
            self.redis.delete(key)
            return None
        self.redis.expire(key, max(1, int(min(self.idle_s, float(row["expires"]) - now))))
        return UISession(_principal_from_json(row["principal"]), str(row["csrf"]), float(row["created"]), now,
                         float(row["expires"]), row.get("key_id"))

    def delete(self, sid: str | None) -> None:
        if sid:
            self.redis.delete(self.PREFIX + _digest(sid))


def make_store(redis_url: str | None) -> SessionStore:
    """Redis-backed when the gateway has Redis (several workers/replicas), else in-process."""
    return RedisSessionStore(redis_url) if redis_url else SessionStore()
