"""The gateway's request path, independent of HTTP: authenticate → authorise → budget → validate →
sandboxed model → output policy → audit (durable) → observers.

``GatewayService`` owns the long-lived parts (registry, key store, budgets, audit writer, worker
pools, observers); ``bastion.gateway.app.create_app`` wraps it in FastAPI.

``predict`` runs on the event loop and never blocks it: a credential, model alias or output
policy already verified within ``auth.cache_ttl_s`` is used from memory (a cache miss is looked
up on a thread), the model worker's pipes are watched by the loop, and the audit record is
group-committed before the answer is released. Until the caller is authenticated nothing is
read, hashed or stored per request: the body is not read, and the refusal is counted per
(reason, source address) and written to the audit log once per window (``refusals``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool

from bastion.core.errors import AuthError, RegistryError
from bastion.core.model import InputSpec
from bastion.gateway.auth import Authenticator, CredentialError, Forbidden, JWTVerifier, KeyStore, Principal
from bastion.gateway.budgets import QueryBudgets
from bastion.gateway.config import GatewayConfig
from bastion.gateway.metrics import UNKNOWN, GatewayMetrics
from bastion.gateway.refusals import RefusalWindow
from bastion.gateway.registry import NAME_RE, ModelVersionInfo, Registry
from bastion.gateway.sandbox import SandboxError, WorkerPool, WorkerSpec
from bastion.gateway.sandbox.pool import running_loop
from bastion.gateway.validation import InputProblem, parse_predict_body

log = logging.getLogger("bastion.gateway")
OBSERVER_BATCH_S = 0.005


def worker_spec(config: GatewayConfig, model_dir: Path, file_name: str,
                input_spec: dict[str, Any] | None) -> WorkerSpec:
    sb = config.sandbox
    return WorkerSpec(model_dir=Path(model_dir), file_name=file_name, input_spec=input_spec, loader=sb.loader,
                      memory_mb=sb.memory_mb, cpu_s=sb.cpu_s, nofile=sb.nofile, network=sb.network,
                      drop_privileges=sb.drop_privileges, threads=sb.threads_per_worker,
                      sys_path=tuple(sb.python_path), start_timeout_s=sb.start_timeout_s)


@dataclass
class PredictEvent:
    """What observers (monitoring detectors) receive after each answered predict request."""

    client_id: str
    model: str
    version: str
    inputs: np.ndarray
    outputs: np.ndarray
    labels: np.ndarray
    latency_s: float
    request_id: str
    ts: float = field(default_factory=time.time)


Observer = Callable[[PredictEvent], None]
"""Called with each event on the observer thread. An observer may also define ``offer(event) -> bool``:
called on the request thread, it must never block; True means it took the event (then it is not queued
for that observer), False that it could not now (the event then goes through the observer thread)."""


class GatewayHTTPError(Exception):
    """An error with its HTTP status, machine reason and JSON detail."""

    def __init__(self, status: int, reason: str, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status, self.reason, self.detail, self.headers = status, reason, detail, headers or {}


@dataclass
class PredictResult:
    body: bytes
    headers: dict[str, str]
    version: str
    after: Callable[[], None] = lambda: None
    """Metrics and observer hand-off: run it once the response is sent (they never change the answer)."""


@dataclass
class _Ctx:
    """What a refusal after authentication records: who, which model (clipped), the body digest."""

    actor: str
    name: str
    version: str | None
    request_id: str
    started: float
    registered: bool = False
    body_sha: str | None = None


JSON_TYPES = ("application/json",)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<x>+json``, with or without parameters (charset)."""
    if not content_type:
        return False
    mt = content_type.split(";", 1)[0].strip().lower()
    return mt in JSON_TYPES or (mt.startswith("application/") and mt.endswith("+json"))


def clip(value: str | None, n: int = 128) -> str | None:
    """A caller-chosen name as recorded: at most ``n`` characters (registered names are never longer)."""
    return value if value is None or len(value) <= n else value[:n] + "…"


class GatewayService:
    def __init__(self, config: GatewayConfig) -> None:
        from bastion.gateway.audit import AuditLog, ensure_audit_key

        self.config = config
        self.metrics = GatewayMetrics()
        key_path = ensure_audit_key(config.audit_key_path())
        self.audit = AuditLog(config.db_url, key_path, durable=config.audit.durable,
                              batch_window_ms=config.audit.batch_window_ms,
                              checkpoint_every=config.audit.checkpoint_every,
                              checkpoint_interval_s=config.audit.checkpoint_interval_s,
                              fsync=config.audit.fsync, wal_restart_pages=config.audit.wal_restart_pages)
        self.registry = Registry(config, audit_log=self.audit)
        self.keys = KeyStore(config.db_url, ttl_s=config.auth.cache_ttl_s)
        jwt = JWTVerifier(config.auth.jwt, config.auth.cache_ttl_s) if config.auth.jwt is not None else None
        self.auth = Authenticator(self.keys, jwt)
        b = config.budgets
        self.budgets = QueryBudgets(b.requests, b.samples, b.strategy, config.resolved_redis_url())
        self._budgets_in_memory = config.resolved_redis_url() is None
        self.refusals = RefusalWindow(config.audit.refusal_window_s, config.audit.refusal_max_sources)
        self.pools: dict[tuple[str, str], WorkerPool] = {}
        self._pool_lock = threading.Lock()
        self._start_locks: dict[tuple[str, str], threading.Lock] = {}
        self._resolve_cache: dict[tuple[str, str], tuple[float, ModelVersionInfo]] = {}
        self._policy_cache: dict[str, tuple[float, Any]] = {}
        self._policies: dict[str, Any] = {}
        self._specs: dict[tuple[str, str, str], InputSpec] = {}
        self._inflight: dict[Any, asyncio.Future[Any]] = {}  # one lookup per key at a time
        self._events: list[PredictEvent] = []  # answered, not yet handed to the observers
        self._loop: asyncio.AbstractEventLoop | None = None
        self.observers: list[Observer] = []
        self._obs_q: queue.Queue[tuple[PredictEvent, list[Observer]] | threading.Event | None] = \
            queue.Queue(maxsize=10_000)
        self._obs_thread = threading.Thread(target=self._observe_loop, name="bastion-observers", daemon=True)
        self._obs_thread.start()
        self._stop = threading.Event()
        self._refusal_thread = threading.Thread(target=self._refusal_loop, name="bastion-refusals", daemon=True)
        self._refusal_thread.start()
        self.started = time.time()

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        with self._pool_lock:
            pools = list(self.pools.values())
            self.pools.clear()
        for p in pools:
            p.close()
        self._obs_q.put(None)
        for obs in list(self.observers):  # e.g. the monitor's detector process
            close = getattr(obs, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing observer %r failed", obs)
        self._stop.set()
        self._refusal_thread.join(timeout=5)
        self.write_refusals(force=True)
        self.audit.close()

    def invalidate(self) -> None:
        """Forget cached aliases, policies and keys (after an admin change in this process)."""
        self._resolve_cache.clear()
        self._policy_cache.clear()
        self.keys.invalidate()
        if self.auth.jwt is not None:
            self.auth.jwt._verified.clear()

    # ----------------------------------------------------------------- anonymous refusals
    def refuse_anonymous(self, reason: str, problem: str, source: str, route: str, name: str | None,
                         request_id: str) -> None:
        """Count one request refused before authentication (constant cost; no per-request record)."""
        self.refusals.count(reason, source, problem, route, name or "", request_id)
        m = self.metrics
        m.child(m.rejections, reason).inc()
        m.child(m.refused_anonymous, problem).inc()

    def write_refusals(self, force: bool = False) -> int:
        """Append one ``refusal`` record per (reason, source) for every closed window; how many were written."""
        recs = self.refusals.drain(force=force)
        for rec in recs:
            self.metrics.child(self.metrics.audit_records, "refusal").inc()
            try:
                self.audit.submit("refusal", "anonymous", "refused", rec)
            except RuntimeError:  # closed
                log.warning("audit log closed; refusal window lost", extra={"event": rec})
        return len(recs)

    def _refusal_loop(self) -> None:
        tick = min(1.0, self.config.audit.refusal_window_s / 4)
        while not self._stop.wait(tick):
            try:
                self.write_refusals()
            except Exception:
                log.exception("writing refusal windows failed")

    # ----------------------------------------------------------------- models
    def resolve(self, name: str, version: str | None, refresh: bool = False) -> ModelVersionInfo:
        if not refresh:
            hit = self.resolve_cached(name, version)
            if hit is not None:
                return hit
        key = (name, version or f"@{self.config.default_alias}")
        info = self.registry.get(name, version) if version else self.registry.resolve(name, self.config.default_alias)
        self._resolve_cache[key] = (time.monotonic(), info)
        return info

    def resolve_cached(self, name: str, version: str | None) -> ModelVersionInfo | None:
        hit = self._resolve_cache.get((name, version or f"@{self.config.default_alias}"))
        if hit is not None and time.monotonic() - hit[0] < self.config.auth.cache_ttl_s:
            return hit[1]
        return None

    async def _resolve(self, name: str, version: str | None) -> ModelVersionInfo:
        key = (name, version or f"@{self.config.default_alias}")
        return await self._cached(self._resolve_cache.get(key), ("resolve", key),  # type: ignore[no-any-return]
                                  lambda: self.resolve(name, version, refresh=True))

    async def _cached(self, hit: tuple[float, Any] | None, key: Any, load: Callable[[], Any]) -> Any:
        """Refresh-ahead read of a TTL cache entry: fresh → as is; past half the TTL → as is, and one background
        reload; expired or absent → one reload that every concurrent caller waits for (never a herd of lookups)."""
        ttl = self.config.auth.cache_ttl_s
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < ttl:
                if age > ttl / 2:
                    self._refresh_soon(key, load)
                return hit[1]
        return await self._single_flight(key, load)

    def _single_flight(self, key: Any, load: Callable[[], Any]) -> asyncio.Future[Any]:
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(run_in_threadpool(load))
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: (self._inflight.pop(key, None), f.cancelled() or f.exception()))
        return asyncio.shield(fut)

    def _refresh_soon(self, key: Any, load: Callable[[], Any]) -> None:
        if key not in self._inflight:
            self._single_flight(key, load)

    def pool_for(self, info: ModelVersionInfo) -> WorkerPool:
        key = (info.name, info.version)
        pool = self.pools.get(key)
        if pool is not None:
            return pool
        with self._pool_lock:
            lock = self._start_locks.setdefault(key, threading.Lock())
        with lock:
            pool = self.pools.get(key)
            if pool is None:
                path = Path(info.path)
                sb = self.config.sandbox
                pool = WorkerPool(worker_spec(self.config, path.parent, path.name, info.input_spec),
                                  size=sb.workers_per_model, batching=sb.batching,
                                  max_batch=sb.max_batch_samples).start()
                self.metrics.model_version.labels(info.name, info.version, info.sha256[:16]).set(1)
                with self._pool_lock:
                    self.pools[key] = pool
        return pool

    def policy_for(self, name: str, refresh: bool = False) -> tuple[dict[str, Any], Any]:
        from bastion.defenses.output_policy import OutputPolicy

        hit = self._policy_cache.get(name)
        now = time.monotonic()
        if not refresh and hit is not None and now - hit[0] < self.config.auth.cache_ttl_s:
            return hit[1]  # type: ignore[no-any-return]
        cfg = self.registry.output_policy(name) or dict(self.config.output_policy)
        ckey = json.dumps(cfg, sort_keys=True)
        pol = self._policies.get(ckey)
        if pol is None:
            pol = OutputPolicy.from_config(cfg)
            self._policies[ckey] = pol
        self._policy_cache[name] = (now, (cfg, pol))
        return cfg, pol

    async def _policy(self, name: str) -> tuple[dict[str, Any], Any]:
        return await self._cached(self._policy_cache.get(name), ("policy", name),  # type: ignore[no-any-return]
                                  lambda: self.policy_for(name, refresh=True))

    # ----------------------------------------------------------------- observers
    def notify_soon(self, ev: PredictEvent) -> None:
        """Hand ``ev`` to the observers within ``OBSERVER_BATCH_S``, together with the events answered meanwhile:
        at low load the detectors wake once per batch, not once per request (from the event loop)."""
        self._events.append(ev)
        if len(self._events) == 1:
            asyncio.get_running_loop().call_later(OBSERVER_BATCH_S, self._hand_events)

    def _hand_events(self) -> None:
        events, self._events = self._events, []
        for ev in events:
            self._notify(ev)

    def flush_observers(self, timeout: float = 30.0) -> bool:
        """Wait until every event answered so far has been handed to the observers (False on timeout)."""
        loop = self._loop
        if self._events and loop is not None and not loop.is_closed():
            handed = threading.Event()

            def hand() -> None:
                self._hand_events()
                handed.set()

            try:
                if running_loop() is loop:
                    hand()
                else:
                    loop.call_soon_threadsafe(hand)
                    if not handed.wait(timeout):
                        return False
            except RuntimeError:  # the loop stopped meanwhile
                pass
        done = threading.Event()
        try:
            self._obs_q.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _observe_loop(self) -> None:
        while True:
            item = self._obs_q.get()
            if item is None:
                return
            if isinstance(item, threading.Event):  # a flush_observers barrier
                item.set()
                continue
            ev, targets = item
            for obs in targets:
                try:
                    obs(ev)
                except Exception:  # an observer never breaks serving
                    log.exception("observer %r failed", obs)

    def _notify(self, ev: PredictEvent) -> None:
        rest = []
        for obs in list(self.observers):
            offer = getattr(obs, "offer", None)
            try:
                if offer is not None and offer(ev):
                    continue
            except Exception:
                log.exception("observer %r failed to take an event", obs)
            rest.append(obs)
        if rest:
            try:
                self._obs_q.put_nowait((ev, rest))
            except queue.Full:
                self.metrics.child(self.metrics.rejections, "observer_queue_full").inc()

    # ----------------------------------------------------------------- refusals after authentication
    def reject(self, status: int, reason: str, detail: Any, ctx: _Ctx,
               headers: dict[str, str] | None = None) -> GatewayHTTPError:
        """Count, audit (without waiting) and build a refusal of an authenticated caller."""
        m = self.metrics
        m.child(m.rejections, reason).inc()
        model = ctx.name if ctx.registered else UNKNOWN
        version = ctx.version if ctx.registered and ctx.version else UNKNOWN
        m.child(m.requests, model, version, str(status)).inc()
        m.child(m.audit_records, "request").inc()
        self.audit.submit("request", ctx.actor, "predict", {
            "request_id": ctx.request_id, "model": clip(ctx.name), "version": clip(ctx.version),
            "input_sha256": ctx.body_sha, "decision": f"deny:{reason}", "status": status,
            "latency_ms": round((time.perf_counter() - ctx.started) * 1e3, 3),
            "detail": detail if isinstance(detail, str) else json.dumps(detail)[:500],
        })
        return GatewayHTTPError(status, reason, detail, {**(headers or {}), "X-Request-ID": ctx.request_id})

    # ----------------------------------------------------------------- predict
    def authenticate(self, authorization: str | None) -> Principal:
        return self.auth.authenticate(authorization)

    async def authenticate_async(self, authorization: str | None) -> Principal:
        """From the event loop: from memory when the credential was verified within the TTL (re-read in the
        background once past half of it), else one lookup on a thread that concurrent callers share."""
        p = self.auth.authenticate_cached(authorization)
        if p is not None:
            refresh = self.auth.refresh_if_stale(authorization)
            if refresh is not None:
                self._refresh_soon(("auth", hashlib.sha256((authorization or "").encode()).digest()), refresh)
            return p
        key = ("auth", hashlib.sha256((authorization or "").encode()).digest())
        return await self._single_flight(key, lambda: self.auth.authenticate(authorization))  # type: ignore[no-any-return]

    async def admit(self, authorization: str | None, source: str, where: Callable[[], tuple[str, str | None]],
                    ) -> Principal:
        """The caller's principal, or a constant-cost refusal: a 401 (503 when credentials cannot be checked)
        that is counted per (reason, source) and window instead of read, hashed or recorded per request.

        ``where()`` gives the route template and, for predict, the model name from the URL; it is only
        called for a refusal."""
        problem: str
        try:
            return await self.authenticate_async(authorization)
        except AuthError as exc:
            problem, reason, status = (exc.problem if isinstance(exc, CredentialError) else "invalid_key",
                                       "unauthenticated", 401)
            detail, headers = str(exc), {"WWW-Authenticate": "Bearer"}
        except Exception as exc:  # the key store is unreachable: fail closed
            log.exception("credential lookup failed")
            problem, reason, status = "store_unreachable", "auth_unavailable", 503
            detail, headers = f"credentials cannot be checked now ({type(exc).__name__})", {"Retry-After": "1"}
        rid = secrets.token_hex(16)
        route, name = where()
        self.refuse_anonymous(reason, problem, source, route, name, rid)
        if name is not None:
            self.metrics.child(self.metrics.requests, UNKNOWN, UNKNOWN, str(status)).inc()
        raise GatewayHTTPError(status, reason, detail, {**headers, "X-Request-ID": rid})

    async def predict(self, principal: Principal, name: str, version: str | None,
                      read_body: Callable[[], Awaitable[bytes]], *, content_type: str | None = None,
                      request_id: str | None = None) -> PredictResult:
        """Serve one predict request of an authenticated ``principal`` (``GatewayHTTPError`` for every refusal).

        Authentication happens before this (``bastion.gateway.edge.Edge``), so that a request without
        valid credentials never gets this far."""
        started = time.perf_counter()
        rid = request_id or secrets.token_hex(16)
        self._loop = asyncio.get_running_loop()
        ctx = _Ctx(f"{principal.via}:{principal.id}", name, version, rid, started)
        try:
            principal.require("predict", name)
        except Forbidden as exc:
            raise self.reject(403, "forbidden", str(exc), ctx) from None
        if not is_json(content_type):
            raise self.reject(415, "unsupported_media_type",
                              f"send the body as JSON (Content-Type: application/json), not {clip(content_type, 64)!r}",
                              ctx)
        info = await self._resolve_for(principal, name, version, ctx)
        ctx.registered, ctx.version = True, info.version
        body = await read_body()
        ctx.body_sha = hashlib.sha256(body).hexdigest()
        await self._spend(principal, name, None, ctx)  # every attempt costs a request, valid or not
        spec = self._specs.get((info.name, info.version, info.sha256))
        if spec is None:
            spec = self._specs[(info.name, info.version, info.sha256)] = InputSpec.from_dict(info.input_spec)
        try:
            x = parse_predict_body(body, spec)
        except InputProblem as exc:
            raise self.reject(422, "invalid_input", exc.to_detail(), ctx) from None
        await self._spend(principal, name, len(x), ctx)
        t_model = time.perf_counter()
        try:
            pool = self.pools.get((info.name, info.version))
            if pool is None:
                pool = await run_in_threadpool(self.pool_for, info)
            proba = await pool.apredict(x, self.config.sandbox.timeout_s)
        except SandboxError as exc:
            if exc.reason in ("timeout", "worker_crashed"):
                self.metrics.child(self.metrics.worker_restarts, name, exc.reason).inc()
            raise self.reject(exc.status, exc.reason, str(exc), ctx) from None
        m = self.metrics
        t_answer = time.perf_counter()
        policy_cfg, policy = await self._policy(name)
        out = policy.apply(proba)
        labels = np.asarray(out.labels)
        label_list = labels.tolist()
        answer: dict[str, Any] = {"model": name, "version": info.version, "predictions": label_list}
        if out.probabilities is not None:
            answer["probabilities"] = np.asarray(out.probabilities, dtype=np.float64)
        payload = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        counts: dict[str, int] = {}
        for v in label_list:
            counts[str(v)] = counts.get(str(v), 0) + 1
        latency = time.perf_counter() - started
        record = {
            "request_id": rid, "model": name, "version": info.version, "model_sha256": info.sha256,
            "input_sha256": ctx.body_sha, "n": len(x), "decision": "allow", "status": 200,
            "output": {"labels": label_list if len(label_list) <= 32 else None,
                       "label_counts": dict(sorted(counts.items(), key=lambda kv: int(kv[0]))),
                       "response_sha256": hashlib.sha256(payload).hexdigest()},
            "policy": policy_cfg.get("type", "none"), "latency_ms": round(latency * 1e3, 3),
        }
        m.child(m.audit_records, "request").inc()
        m.child(m.model_latency, name).observe(t_answer - t_model)
        headers = {"X-Request-ID": rid}
        if self.config.audit.durable:
            try:
                headers["X-Audit-Seq"] = str(await self.audit.append_async("request", ctx.actor, "predict", record))
            except Exception as exc:
                raise GatewayHTTPError(503, "audit_unavailable",
                                       f"the audit log could not record this request ({type(exc).__name__}); "
                                       "no prediction is returned without an audit record") from None
        else:
            self.audit.submit("request", ctx.actor, "predict", record)
        def after() -> None:  # bookkeeping that can wait until the answer is on its way
            m.child(m.requests, name, info.version, "200").inc()
            m.child(m.latency, name).observe(latency)
            m.child(m.samples, principal.id, name).inc(len(x))
            if self.observers:
                self.notify_soon(PredictEvent(principal.id, name, info.version, x, proba, labels, latency, rid))

        return PredictResult(payload, headers, info.version, after)

    async def _resolve_for(self, principal: Principal, name: str, version: str | None, ctx: _Ctx) -> ModelVersionInfo:
        """The version to serve; a pinned version other than the current production one needs ``predict:versions``."""
        try:
            if not NAME_RE.match(name) or (version is not None and not NAME_RE.match(version)):
                raise RegistryError(f"model {clip(name, 64)!r} (version {clip(version, 64)!r}) is not registered")
            if version is not None and "predict:versions" not in principal.scopes:
                current = await self._resolve(name, None)
                if current.version != version:
                    raise Forbidden(f"{principal.via} principal {principal.name!r} lacks scope 'predict:versions' "
                                    f"(needed for a version other than {self.config.default_alias})")
                return current
            return await self._resolve(name, version)
        except Forbidden as exc:
            raise self.reject(403, "forbidden", str(exc), ctx) from None
        except RegistryError as exc:
            raise self.reject(404, "unknown_model", str(exc), ctx) from None
        except Exception as exc:
            log.exception("registry lookup failed")
            raise self.reject(503, "registry_unavailable", f"the model registry is unreachable "
                              f"({type(exc).__name__})", ctx) from None

    async def _spend(self, principal: Principal, name: str, n: int | None, ctx: _Ctx) -> None:
        """Spend the request (``n is None``) or the samples; 429 when over, 503 when the store is down."""
        try:
            if n is None:
                fn = self.budgets.spend_request
                decision = fn(principal.id, name, principal.budget) if self._budgets_in_memory else \
                    await run_in_threadpool(fn, principal.id, name, principal.budget)
            else:
                fs = self.budgets.spend_samples
                decision = fs(principal.id, name, n, principal.budget) if self._budgets_in_memory else \
                    await run_in_threadpool(fs, principal.id, name, n, principal.budget)
        except Exception as exc:  # e.g. Redis down: fail closed rather than serve unmetered
            log.exception("budget storage failed")
            raise self.reject(503, "budget_unavailable", f"query budgets cannot be checked now "
                              f"({type(exc).__name__})", ctx, {"Retry-After": "1"}) from None
        if not decision.allowed:
            raise self.reject(429, "budget_exhausted", decision.reason, ctx,
                              {"Retry-After": str(decision.retry_after_s)})
