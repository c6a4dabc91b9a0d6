"""Server-side dashboard sessions: an opaque random id in an HttpOnly cookie, mapped to the principal.

The cookie holds 256 random bits and nothing else; the server keeps only ``sha256(id)`` (a leaked
session table cannot be replayed), the principal, a per-session CSRF token and the expiry (idle and
absolute). The API key or JWT pasted at login is never stored: for API-key sessions the key id (the
public lookup handle) is kept so revocation ends the session on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

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
    """In-process session table (one per gateway app; a restart logs everyone out)."""

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
