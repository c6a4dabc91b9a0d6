"""The gateway-side monitor: streaming detectors fed by the predict path (off the request path),
alert rules, incidents and playbooks.

``attach_monitoring(service, config)`` registers a ``MonitorService`` as an observer of a
``GatewayService``. The detectors (``bastion.monitor.detectors.DetectorHub``: drift against the
reference captured with ``capture_reference``, per-client extraction signals, the anomaly rate of
each served version, optionally feature-squeezing disagreement) run in their own process by default
(``bastion.monitor.process``), so the serving process only forwards each observation. Findings come
back here: the matching alert rule turns each into an ``Alert`` handed to the alert sink
(``bastion.monitor.alerts``: ``on_alert``, or the registered sinks; Bastion's opens or updates an
incident and runs the rule's playbook). With a pooling store configured, replicas share their detector
state (``bastion.monitor.pooling``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.paths import bastion_home
from bastion.core.severity import Severity
from bastion.monitor.alerts import Alert, AlertSink, fan_out, registered_sinks
from bastion.monitor.config import MonitorConfig
from bastion.monitor.detectors import DetectorHub, Observation, jsonable, reference_path, sync_replicas
from bastion.monitor.drift import ReferenceProfile
from bastion.monitor.process import DetectorProcess, MonitorProcessError

log = logging.getLogger("bastion.monitor")


def capture_reference(model: str, x: np.ndarray, labels: np.ndarray | None = None, n_classes: int = 0) -> Path:
    """Store the reference profile for ``model`` (what live traffic is compared with)."""
    path = reference_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    ReferenceProfile(np.asarray(x), labels, n_classes).save(str(path))
    return path


class MonitorService:
    """Observer of a ``GatewayService``; see the module docstring.

    ``flush()`` waits until every request answered so far has been through the detectors and its
    alerts handled (tests, demos and benches call it instead of sleeping); ``snapshot()`` returns the
    detector state; ``sync()`` pools replica state now (it also runs every ``pooling.sync_s`` seconds).
    """

    def __init__(self, config: MonitorConfig | None = None, gateway: Any = None, *,
                 replica: str | None = None, on_alert: AlertSink | None = None) -> None:
        from bastion.monitor.pooling import replica_id

        self.cfg = config or MonitorConfig()
        self.gateway = gateway
        self.alerts: list[dict[str, Any]] = []
        self.on_alert: AlertSink = on_alert if on_alert is not None else fan_out(registered_sinks(self.cfg, gateway))
        gw_cfg = getattr(gateway, "config", None)
        self.replica = replica or replica_id()
        redis_url = gw_cfg.resolved_redis_url() if gw_cfg is not None else None
        db_url = getattr(gw_cfg, "db_url", None)
        if self.cfg.pooling.store == "redis" and not redis_url:
            from bastion.core.errors import ConfigError

            raise ConfigError("monitoring.pooling.store is redis but the gateway has no redis_url")
        self._alert_lock = threading.Lock()
        self._hub: DetectorHub | None = None
        self._proc: DetectorProcess | None = None
        self._store: Any = None
        self._closed = threading.Event()
        self.restarts = 0
        if self.cfg.process:
            self._spawn = lambda: DetectorProcess(
                self.cfg, self._handle, gateway_config=gw_cfg.model_dump_json() if gw_cfg is not None else None,
                replica=self.replica, redis_url=redis_url, db_url=db_url)
            self._proc = self._spawn()
        else:
            from bastion.monitor.pooling import make_store

            p = self.cfg.pooling
            self._store = make_store(p.store, redis_url, db_url, p.key_prefix, p.stale_s)
            self._hub = DetectorHub(self.cfg, self._inprocess_predictor if gateway is not None else None,
                                    pooled=self._store is not None)
            self._hub_lock = threading.Lock()
            if self._store is not None:
                threading.Thread(target=self._sync_loop, name="bastion-monitor-pool", daemon=True).start()

    # ------------------------------------------------------------------ feeding
    def offer(self, event: Any) -> bool:
        """Request-thread fast path (process mode): forward without blocking; False → use ``__call__``."""
        proc = self._proc
        if proc is None or not proc.alive:
            return False
        return proc.offer(tuple(Observation.from_event(event)))

    def __call__(self, event: Any) -> None:
        """Observer entry point: one answered predict request (the gateway's observer thread)."""
        obs = Observation.from_event(event)
        if self._proc is not None:
            if not self._proc.alive and not self._closed.is_set() and self.restarts < 5:
                self.restarts += 1  # its detector state is lost; the reference (and calibration cache) is not
                log.error("the detector process exited (code %s); restarting it (%d)",
                          self._proc.proc.poll(), self.restarts)
                dropped = self._proc.dropped
                self._proc = self._spawn()
                self._proc.dropped = dropped
            self._proc.submit(tuple(obs))
            return
        assert self._hub is not None
        with self._hub_lock:
            found = self._hub.process(obs)
        self._handle(found)

    def _inprocess_predictor(self, model: str, version: str) -> tuple[Any, tuple[int, ...], tuple[float, float]]:
        from bastion.core.model import InputSpec

        info = self.gateway.registry.get(model, version)
        pool = self.gateway.pool_for(info)
        spec = InputSpec.from_dict(info.input_spec or {})
        timeout = self.gateway.config.sandbox.timeout_s
        clip = (spec.clip_min if spec.clip_min is not None else 0.0, spec.clip_max if spec.clip_max is not None else 1.0)
        return (lambda x: pool.predict(x, timeout)), tuple(spec.shape), clip

    # ------------------------------------------------------------------ public API
    def prepare(self, models: list[str] | None = None, timeout: float = 300.0) -> list[str]:
        """Build and calibrate the detectors of ``models`` (default: every model with a stored reference)
        now rather than at their first request; returns those that have a reference."""
        names = models if models is not None else sorted(
            p.parent.name for p in (bastion_home() / "monitor").glob("*/reference.npz"))
        if self._proc is not None:
            return list(self._proc.call("prepare", names, timeout=timeout))
        assert self._hub is not None
        with self._hub_lock:
            return [m for m in names if self._hub.prepare(m) is not None]

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every request answered so far has been through the detectors and its alerts (and
        their playbooks) handled. False if that did not happen within ``timeout`` seconds."""
        t0 = time.monotonic()
        if self.gateway is not None and hasattr(self.gateway, "flush_observers"):
            if not self.gateway.flush_observers(timeout):
                return False
        if self._proc is not None:
            try:
                self._proc.call("flush", timeout=max(0.1, timeout - (time.monotonic() - t0)))
            except MonitorProcessError:
                log.exception("monitor flush failed")
                return False
        return True

    def sync(self) -> int:
        """Pool replica state through the shared store now; returns the number of pooled findings."""
        if self._proc is not None:
            return int(self._proc.call("sync"))
        if self._store is None:
            return 0
        assert self._hub is not None
        with self._hub_lock:
            found = sync_replicas(self._hub, self._store, self.replica)
        self._handle(found)
        return len(found)

    def _sync_loop(self) -> None:
        while not self._closed.wait(self.cfg.pooling.sync_s):
            try:
                self.sync()
            except Exception:
                log.exception("replica pooling failed")

    def snapshot(self) -> dict[str, Any]:
        """Detector state for dashboards and forensic bundles."""
        error, stats = None, {}
        if self._proc is not None:
            try:
                got = self._proc.call("snapshot", timeout=30.0)
                models, stats = got["models"], got["stats"]
            except MonitorProcessError as exc:
                models, error = {}, str(exc)
        else:
            assert self._hub is not None
            with self._hub_lock:
                models, stats = self._hub.snapshot(), self._hub.stats()
        return {"alerts": jsonable(list(self.alerts)), "models": models,
                "process": {"mode": "process" if self._proc is not None else "thread", "replica": self.replica,
                            "alive": self._proc.alive if self._proc is not None else True,
                            "dropped": self._proc.dropped if self._proc is not None else 0, "error": error,
                            "restarts": self.restarts, "pid": self._proc.proc.pid if self._proc is not None else None,
                            "detectors": stats}}

    def close(self) -> None:
        self._closed.set()
        if self._proc is not None:
            self._proc.close()
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------ alerts
    def _handle(self, findings: list[dict[str, Any]]) -> None:
        for f in findings:
            try:
                self._alert(f)
            except Exception:
                log.exception("alert handling failed for %s", f.get("detector"))

    def _alert(self, f: dict[str, Any]) -> None:
        detector, model, version, client = f["detector"], f["model"], f["version"], f.get("client")
        rule = self.cfg.rule(detector)
        if rule is None:
            return
        alert = Alert(type=detector, severity=Severity.parse(rule.severity),
                      title=f"{detector.replace('_', ' ')} detected on {model}", model=model,
                      version=version, client=client, evidence=f["evidence"])
        with self._alert_lock:
            ts = time.time()
            try:
                handled = self.on_alert(alert, rule)
            except Exception:
                log.exception("could not handle the %s alert", detector)
                return
            self.alerts.append({"ts": ts, "detector": detector, "model": model, "version": version,
                                "client": client, "pooled": bool(f["evidence"].get("pooled")), **handled})


def attach_monitoring(gateway: Any, config: MonitorConfig | None = None, *,
                      on_alert: AlertSink | None = None) -> MonitorService:
    """Register a ``MonitorService`` on a ``GatewayService`` (its observers run off the request path;
    with ``process: true``, the default, the detectors run in their own process). Alerts go to
    ``on_alert``, or else to the registered alert sinks (``bastion.monitor.alerts``)."""
    mon = MonitorService(config, gateway, on_alert=on_alert)
    gateway.observers.append(mon)
    gateway.monitor = mon
    if mon.cfg.process:  # calibrate every referenced model now, in the detector process, without waiting

        def _prepare() -> None:
            try:
                mon.prepare()
            except Exception:
                log.exception("preparing the monitor's detectors failed")

        threading.Thread(target=_prepare, name="bastion-monitor-prepare", daemon=True).start()
    return mon
