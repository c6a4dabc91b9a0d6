"""Query budgets per (client, model): requests and samples per window, via the ``limits`` library.

In-process memory storage by default; ``redis://…`` (``BASTION_REDIS_URL`` or config) shares the
counters across replicas. A client row may carry its own budget (``bastion clients create
--requests 100/minute --samples 5000/minute``, or ``throttle_client`` from a playbook).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from bastion.core.errors import ConfigError


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    reason: str | None = None
    retry_after_s: int = 0
    remaining_requests: int = 0
    remaining_samples: int = 0
    limit_requests: int = 0
    limit_samples: int = 0


def _sweeping_memory_storage() -> Any:
    """``limits``' memory storage, minus its habit of starting a 10 ms ``Timer`` thread on every hit
    when none is alive (at moderate request rates: one new thread per request, ~1-2 ms each).
    Counters are still checked against their expiry on every read; one daemon thread sweeps
    expired keys every second."""
    import weakref

    from limits.storage import MemoryStorage

    class SweepingMemoryStorage(MemoryStorage):
        STORAGE_SCHEME = ["bastion-memory"]

        def __init__(self, uri: str | None = None, **kw: Any) -> None:
            super().__init__(uri, **kw)
            ref = weakref.ref(self)

            def sweep() -> None:
                while (store := ref()) is not None:
                    store._MemoryStorage__expire_events()  # type: ignore[attr-defined]
                    del store
                    time.sleep(1.0)

            threading.Thread(target=sweep, name="bastion-budget-sweeper", daemon=True).start()

        def _MemoryStorage__schedule_expiry(self) -> None:
            return None

    return SweepingMemoryStorage()


class QueryBudgets:
    """Checks and spends a client's budget for one model."""

    def __init__(self, requests: str, samples: str, strategy: str = "fixed-window",
                 storage_url: str | None = None, namespace: str = "bastion-gw") -> None:
        from limits import parse, storage, strategies

        try:
            self._default = (parse(requests), parse(samples))
        except ValueError as exc:
            raise ConfigError(f"invalid budget: {exc}") from None
        try:
            self.storage = (storage.storage_from_string(storage_url) if storage_url
                            else _sweeping_memory_storage())
        except Exception as exc:
            raise ConfigError(f"budget storage {storage_url!r} is unusable: {exc}") from None
        cls: Any = {"fixed-window": strategies.FixedWindowRateLimiter,
               "moving-window": strategies.MovingWindowRateLimiter,
               "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter}[strategy]
        self.limiter: Any = cls(self.storage)
        self.namespace = namespace
        self._parse = parse
        self._cache: dict[str, Any] = {}

    def _item(self, text: str | None, default: Any) -> Any:
        if not text:
            return default
        got = self._cache.get(text)
        if got is None:
            try:
                got = self._parse(text)
            except ValueError as exc:
                raise ConfigError(f"invalid budget {text!r}: {exc}") from None
            self._cache[text] = got
        return got

    def spend(self, client_id: str, model: str, n_samples: int,
              override: dict[str, str] | None = None) -> BudgetDecision:
        """Spend one request and ``n_samples`` samples; refuse (without spending samples) when over."""
        decision = self.spend_request(client_id, model, override)
        return self.spend_samples(client_id, model, n_samples, override) if decision.allowed else decision

    def _items(self, override: dict[str, str] | None) -> tuple[Any, Any]:
        override = override or {}
        return (self._item(override.get("requests"), self._default[0]),
                self._item(override.get("samples"), self._default[1]))

    def spend_request(self, client_id: str, model: str, override: dict[str, str] | None = None) -> BudgetDecision:
        """Spend one request (before the body is examined: every attempt costs a request)."""
        req_item, smp_item = self._items(override)
        ids = (self.namespace, client_id, model)
        if not self.limiter.hit(req_item, *ids, "req"):
            return self._refused("requests", req_item, smp_item, ids)
        return BudgetDecision(True, None, 0, -1, -1, req_item.amount, smp_item.amount)

    def spend_samples(self, client_id: str, model: str, n_samples: int,
                      override: dict[str, str] | None = None) -> BudgetDecision:
        """Spend ``n_samples`` samples of a validated batch."""
        req_item, smp_item = self._items(override)
        ids = (self.namespace, client_id, model)
        if n_samples > smp_item.amount or not self.limiter.hit(smp_item, *ids, "smp", cost=max(n_samples, 1)):
            return self._refused("samples", req_item, smp_item, ids)
        return BudgetDecision(True, None, 0, -1, -1, req_item.amount, smp_item.amount)

    def remaining(self, client_id: str, model: str, override: dict[str, str] | None = None) -> tuple[int, int]:
        """Requests and samples left in the current windows (for dashboards; not on the request path)."""
        override = override or {}
        ids = (self.namespace, client_id, model)
        r = self.limiter.get_window_stats(self._item(override.get("requests"), self._default[0]), *ids, "req")
        s = self.limiter.get_window_stats(self._item(override.get("samples"), self._default[1]), *ids, "smp")
        return int(r.remaining), int(s.remaining)

    def _refused(self, which: str, req_item: Any, smp_item: Any, ids: tuple[str, ...]) -> BudgetDecision:
        item = req_item if which == "requests" else smp_item
        stats = self.limiter.get_window_stats(item, *ids, "req" if which == "requests" else "smp")
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return BudgetDecision(False, f"{which} budget exhausted ({item})", retry, 0, 0, req_item.amount,
                              smp_item.amount)

    def reset(self) -> None:
        self.storage.reset()
