"""Requests refused before authentication, counted instead of recorded one by one.

An anonymous caller must not be able to make the gateway spend memory or storage per request: a
refusal before authentication costs one dictionary update here. Refusals are counted per
``(reason, source)`` — ``source`` is the peer address — in fixed time windows; when a window
closes, each pair becomes one audit record (``kind="refusal"``) with the count, the first and last
time, counts per credential problem and per route template (closed sets), up to three example
model names (clipped), and a sha256 chain over the request ids in arrival order, so a request id a
caller was given can be shown to be in the log. At most ``max_sources`` addresses are kept per
window; refusals from further addresses are counted under the source ``*``.

Examples:
    >>> agg = RefusalWindow(window_s=10, max_sources=2)
    >>> for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.3"):
    ...     agg.count("unauthenticated", ip, "missing", "/v1/models/{name}/predict", "x", "r1", now=5.0)
    >>> sorted((r["source"], r["count"]) for r in agg.drain(now=11.0))
    [('*', 2), ('10.0.0.1', 1), ('10.0.0.2', 1)]
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 3
EXAMPLE_CHARS = 64
OVERFLOW_SOURCE = "*"


@dataclass
class _Tally:
    first_ts: float
    last_ts: float
    count: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    chain: bytes = b"\0" * 32


class RefusalWindow:
    """Thread-safe counters of refused requests per ``(reason, source)`` and fixed window."""

    def __init__(self, window_s: float = 10.0, max_sources: int = 1000) -> None:
        self.window_s = float(window_s)
        self.max_sources = max_sources
        self._lock = threading.Lock()
        self._windows: dict[float, dict[tuple[str, str], _Tally]] = {}
        self._sources: dict[float, set[str]] = {}

    def count(self, reason: str, source: str, problem: str, route: str, example: str, request_id: str,
              now: float | None = None) -> None:
        """Count one refusal. ``reason``, ``problem`` and ``route`` must come from closed sets; ``source`` is
        the peer address and ``example`` the (attacker-chosen) model name, clipped here."""
        ts = time.time() if now is None else now
        start = ts - ts % self.window_s
        with self._lock:
            tallies = self._windows.setdefault(start, {})
            seen = self._sources.setdefault(start, set())
            if source not in seen:
                if len(seen) >= self.max_sources:
                    source = OVERFLOW_SOURCE
                else:
                    seen.add(source)
            t = tallies.get((reason, source))
            if t is None:
                t = tallies[(reason, source)] = _Tally(ts, ts)
            t.count += 1
            t.last_ts = ts
            t.problems[problem] = t.problems.get(problem, 0) + 1
            t.routes[route] = t.routes.get(route, 0) + 1
            if len(t.examples) < EXAMPLES and example:
                t.examples.append(example[:EXAMPLE_CHARS])
            t.chain = hashlib.sha256(t.chain + request_id.encode()).digest()

    def drain(self, now: float | None = None, force: bool = False) -> list[dict[str, Any]]:
        """Records for every window that has closed by ``now`` (every window when ``force``)."""
        ts = time.time() if now is None else now
        with self._lock:
            done = [s for s in self._windows if force or s + self.window_s <= ts]
            closed = [(s, self._windows.pop(s)) for s in sorted(done)]
            for s in done:
                self._sources.pop(s, None)
        out = []
        for start, tallies in closed:
            for (reason, source), t in sorted(tallies.items()):
                out.append({"window_start": start, "window_s": self.window_s, "reason": reason, "source": source,
                            "count": t.count, "first_ts": t.first_ts, "last_ts": t.last_ts,
                            "problems": dict(sorted(t.problems.items())), "routes": dict(sorted(t.routes.items())),
                            "example_models": t.examples, "request_id_chain_sha256": t.chain.hex()})
        return out

    def pending(self) -> int:
        """Refusals counted but not yet drained."""
        with self._lock:
            return sum(t.count for w in self._windows.values() for t in w.values())


def request_id_chain(request_ids: list[str]) -> str:
    """The ``request_id_chain_sha256`` of a window's refusals, recomputed from their request ids in order."""
    h = b"\0" * 32
    for rid in request_ids:
        h = hashlib.sha256(h + rid.encode()).digest()
    return h.hex()
