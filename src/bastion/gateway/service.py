"""The gateway's request path, independent of HTTP: authenticate → authorise → budget → validate →
sandboxed model → output policy → audit (durable) → observers.

``GatewayService`` owns the long-lived parts (registry, key store, budgets, audit writer, worker
pools, observers); ``bastion.gateway.app.create_app`` wraps it in FastAPI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import Counter as CounterDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import AuthError, RegistryError
from bastion.core.model import InputSpec
from bastion.gateway.auth import Authenticator, Forbidden, JWTVerifier, KeyStore, Principal
from bastion.gateway.budgets import QueryBudgets
from bastion.gateway.config import GatewayConfig
from bastion.gateway.metrics import GatewayMetrics
from bastion.gateway.registry import ModelVersionInfo, Registry
from bastion.gateway.sandbox import SandboxError, WorkerPool, WorkerSpec
from bastion.gateway.validation import InputProblem, parse_predict_body

log = logging.getLogger("bastion.gateway")


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
    body: dict[str, Any]
    headers: dict[str, str]


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
                              fsync=config.audit.fsync)
        self.registry = Registry(config, audit_log=self.audit)
        self.keys = KeyStore(config.db_url, ttl_s=config.auth.cache_ttl_s)
        jwt = JWTVerifier(config.auth.jwt) if config.auth.jwt is not None else None
        self.auth = Authenticator(self.keys, jwt)
        b = config.budgets
        self.budgets = QueryBudgets(b.requests, b.samples, b.strategy, config.resolved_redis_url())
        self.pools: dict[tuple[str, str], WorkerPool] = {}
        self._pool_lock = threading.Lock()
        self._start_locks: dict[tuple[str, str], threading.Lock] = {}
        self._resolve_cache: dict[tuple[str, str], tuple[float, ModelVersionInfo]] = {}
        self._policy_cache: dict[str, tuple[float, Any]] = {}
        self._policies: dict[str, Any] = {}
        self.observers: list[Observer] = []
        self._obs_q: queue.Queue[tuple[PredictEvent, list[Observer]] | threading.Event | None] = \
            queue.Queue(maxsize=10_000)
        self._obs_thread = threading.Thread(target=self._observe_loop, name="bastion-observers", daemon=True)
        self._obs_thread.start()
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
        self.audit.close()

    def invalidate(self) -> None:
        """Forget cached aliases, policies and keys (after an admin change in this process)."""
        self._resolve_cache.clear()
        self._policy_cache.clear()
        self.keys.invalidate()

    # ----------------------------------------------------------------- models
    def resolve(self, name: str, version: str | None) -> ModelVersionInfo:
        key = (name, version or f"@{self.config.default_alias}")
        now = time.monotonic()
        hit = self._resolve_cache.get(key)
        if hit is not None and now - hit[0] < self.config.auth.cache_ttl_s:
            return hit[1]
        info = self.registry.get(name, version) if version else self.registry.resolve(name, self.config.default_alias)
        self._resolve_cache[key] = (now, info)
        return info

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
                pool = WorkerPool(worker_spec(self.config, path.parent, path.name, info.input_spec),
                                  size=self.config.sandbox.workers_per_model).start()
                self.metrics.model_version.labels(info.name, info.version, info.sha256[:16]).set(1)
                with self._pool_lock:
                    self.pools[key] = pool
        return pool

    def policy_for(self, name: str) -> tuple[dict[str, Any], Any]:
        from bastion.defenses.output_policy import OutputPolicy

        now = time.monotonic()
        hit = self._policy_cache.get(name)
        if hit is not None and now - hit[0] < self.config.auth.cache_ttl_s:
            return hit[1]
        cfg = self.registry.output_policy(name) or dict(self.config.output_policy)
        ckey = json.dumps(cfg, sort_keys=True)
        pol = self._policies.get(ckey)
        if pol is None:
            pol = OutputPolicy.from_config(cfg)
            self._policies[ckey] = pol
        self._policy_cache[name] = (now, (cfg, pol))
        return cfg, pol

    # ----------------------------------------------------------------- observers
    def flush_observers(self, timeout: float = 30.0) -> bool:
        """Wait until every event queued so far has been handed to the observers (False on timeout)."""
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
                self.metrics.rejections.labels("observer_queue_full").inc()

    # ----------------------------------------------------------------- audit helpers
    def _audit_request(self, actor: str, body: dict[str, Any], wait: bool) -> int | None:
        self.metrics.audit_records.labels("request").inc()
        if not wait:
            self.audit.submit("request", actor, "predict", body)
            return None
        try:
            return self.audit.append("request", actor, "predict", body)
        except Exception as exc:
            raise GatewayHTTPError(503, "audit_unavailable",
                                   f"the audit log could not record this request ({type(exc).__name__}); "
                                   "no prediction is returned without an audit record") from None

    def reject(self, status: int, reason: str, detail: Any, *, actor: str, model: str | None,
               version: str | None, body_sha: str | None, request_id: str, started: float,
               headers: dict[str, str] | None = None) -> GatewayHTTPError:
        """Count, audit (without waiting) and build a refusal."""
        self.metrics.rejections.labels(reason).inc()
        self.metrics.requests.labels(model or "-", version or "-", str(status)).inc()
        self._audit_request(actor, {
            "request_id": request_id, "model": model, "version": version, "input_sha256": body_sha,
            "decision": f"deny:{reason}", "status": status, "latency_ms": round((time.perf_counter() - started) * 1e3, 3),
            "detail": detail if isinstance(detail, str) else json.dumps(detail)[:500],
        }, wait=False)
        return GatewayHTTPError(status, reason, detail, headers)

    # ----------------------------------------------------------------- predict
    def authenticate(self, authorization: str | None) -> Principal:
        return self.auth.authenticate(authorization)

    def predict(self, authorization: str | None, name: str, version: str | None, body: bytes,
                request_id: str) -> PredictResult:
        started = time.perf_counter()
        body_sha = hashlib.sha256(body).hexdigest()
        ctx: dict[str, Any] = {"model": name, "version": version, "body_sha": body_sha, "request_id": request_id,
                               "started": started, "actor": "anonymous"}
        try:
            principal = self.auth.authenticate(authorization)
        except AuthError as exc:
            raise self.reject(401, "unauthenticated", str(exc), headers={"WWW-Authenticate": "Bearer"},
                              **ctx) from None
        except Exception as exc:  # the key store is unreachable: fail closed
            log.exception("credential lookup failed")
            raise self.reject(503, "auth_unavailable", f"credentials cannot be checked now ({type(exc).__name__})",
                              **ctx) from None
        ctx["actor"] = f"{principal.via}:{principal.id}"
        try:
            principal.require("predict", name)
        except Forbidden as exc:
            raise self.reject(403, "forbidden", str(exc), **ctx) from None
        try:
            info = self.resolve(name, version)
        except RegistryError as exc:
            raise self.reject(404, "unknown_model", str(exc), **ctx) from None
        except Exception as exc:
            log.exception("registry lookup failed")
            raise self.reject(503, "registry_unavailable", f"the model registry is unreachable ({type(exc).__name__})",
                              **ctx) from None
        ctx["version"] = info.version
        spec = InputSpec.from_dict(info.input_spec)
        try:
            x = parse_predict_body(body, spec)
        except InputProblem as exc:
            raise self.reject(422, "invalid_input", exc.to_detail(), **ctx) from None
        try:
            decision = self.budgets.spend(principal.id, name, len(x), principal.budget)
        except Exception as exc:  # e.g. Redis down: fail closed rather than serve unmetered
            log.exception("budget storage failed")
            raise self.reject(503, "budget_unavailable", f"query budgets cannot be checked now "
                              f"({type(exc).__name__})", headers={"Retry-After": "1"}, **ctx) from None
        if not decision.allowed:
            raise self.reject(429, "budget_exhausted", decision.reason, headers={
                "Retry-After": str(decision.retry_after_s)}, **ctx)
        t_model = time.perf_counter()
        try:
            pool = self.pool_for(info)
            proba = pool.predict(x, self.config.sandbox.timeout_s)
        except SandboxError as exc:
            if exc.reason in ("timeout", "worker_crashed"):
                self.metrics.worker_restarts.labels(name, exc.reason).inc()
            raise self.reject(exc.status, exc.reason, str(exc), **ctx) from None
        self.metrics.model_latency.labels(name).observe(time.perf_counter() - t_model)
        policy_cfg, policy = self.policy_for(name)
        out = policy.apply(proba)
        labels = np.asarray(out.labels)
        answer: dict[str, Any] = {"model": name, "version": info.version, "predictions": labels.tolist()}
        if out.probabilities is not None:
            answer["probabilities"] = np.asarray(out.probabilities).tolist()
        resp_sha = hashlib.sha256(json.dumps(answer, separators=(",", ":")).encode()).hexdigest()
        latency = time.perf_counter() - started
        counts = CounterDict(int(v) for v in labels.tolist())
        seq = self._audit_request(ctx["actor"], {
            "request_id": request_id, "model": name, "version": info.version, "model_sha256": info.sha256,
            "input_sha256": body_sha, "n": len(x), "decision": "allow", "status": 200,
            "output": {"labels": labels.tolist() if len(labels) <= 32 else None,
                       "label_counts": {str(k): v for k, v in sorted(counts.items())}, "response_sha256": resp_sha},
            "policy": policy_cfg.get("type", "none"), "latency_ms": round(latency * 1e3, 3),
        }, wait=self.config.audit.durable)
        self.metrics.requests.labels(name, info.version, "200").inc()
        self.metrics.latency.labels(name).observe(latency)
        self.metrics.samples.labels(principal.id, name).inc(len(x))
        if self.observers:
            self._notify(PredictEvent(principal.id, name, info.version, x, proba, labels, latency, request_id))
        headers = {"X-Request-ID": request_id}
        if seq is not None:
            headers["X-Audit-Seq"] = str(seq)
        return PredictResult(answer, headers)

