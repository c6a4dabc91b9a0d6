"""The gateway-side monitor: streaming detectors fed by the predict path (off the request path),
alert rules, incidents and playbooks.

``attach_monitoring(service, config)`` registers a ``MonitorService`` as an observer of a
``GatewayService``. Per model it keeps a ``StreamingDrift`` (reference captured with
``capture_reference``), an ``ExtractionMonitor`` (per client) and an anomaly-rate window (share
of low-confidence answers per model version). When a detector fires, the matching
alert rule opens or updates an incident and runs its playbook.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.paths import bastion_home
from bastion.core.severity import Severity
from bastion.monitor.config import MonitorConfig
from bastion.monitor.drift import DriftConfig, DriftDetector, ReferenceProfile, StreamingDrift
from bastion.monitor.extraction import ExtractionConfig, ExtractionMonitor
from bastion.respond.incidents import Alert, open_or_update
from bastion.respond.playbooks import PlaybookRunner, parse_playbooks

log = logging.getLogger("bastion.monitor")


def reference_path(model: str) -> Path:
    return bastion_home() / "monitor" / model / "reference.npz"


def capture_reference(model: str, x: np.ndarray, labels: np.ndarray | None = None, n_classes: int = 0) -> Path:
    """Store the reference profile for ``model`` (what live traffic is compared with)."""
    path = reference_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    ReferenceProfile(np.asarray(x), labels, n_classes).save(str(path))
    return path


class _ModelMonitor:
    def __init__(self, ref: ReferenceProfile, cfg: MonitorConfig) -> None:
        d = cfg.drift
        self.drift = StreamingDrift(DriftDetector(ref, DriftConfig(
            window=d.window, test_every=d.test_every, ert=d.ert, n_bootstrap=d.n_bootstrap, max_features=d.max_features)))
        e = cfg.extraction
        self.extraction = ExtractionMonitor(ref.x, ExtractionConfig(
            delta=e.delta, min_queries=e.min_queries, ood_share=e.ood_share, rate_per_min=e.rate_per_min))
        self.anomalies: dict[str, deque[bool]] = {}
        self.series: deque[dict[str, Any]] = deque(maxlen=2000)


class MonitorService:
    """Observer of a ``GatewayService``; see the module docstring."""

    def __init__(self, config: MonitorConfig | None = None, gateway: Any = None) -> None:
        self.cfg = config or MonitorConfig()
        self.gateway = gateway
        self.models: dict[str, _ModelMonitor | None] = {}
        self.alerts: list[dict[str, Any]] = []
        self.playbooks = parse_playbooks(self.cfg.playbooks)
        self._lock = threading.Lock()
        self.runner = PlaybookRunner(
            registry=getattr(gateway, "registry", None), db_url=getattr(getattr(gateway, "config", None), "db_url", None),
            audit_log=getattr(gateway, "audit", None), dry_run=self.cfg.dry_run,
            on_change=getattr(gateway, "invalidate", None))

    def _monitor(self, model: str) -> _ModelMonitor | None:
        with self._lock:
            if model not in self.models:
                path = reference_path(model)
                self.models[model] = _ModelMonitor(ReferenceProfile.load(str(path)), self.cfg) if path.exists() else None
                if self.models[model] is None:
                    log.warning("no monitoring reference for model %s (capture one: bastion monitor reference)", model)
            return self.models[model]

    def __call__(self, event: Any) -> None:
        """Observer entry point: one answered predict request."""
        mon = self._monitor(event.model)
        if mon is None:
            return
        x = np.asarray(event.inputs)
        labels = np.asarray(event.labels)
        drift = mon.drift.update(x, labels, ts=event.ts)
        if drift is not None:
            mon.series.append({"ts": event.ts, "kind": "drift", "statistic": drift.statistic,
                               "threshold": drift.threshold, "mmd2": drift.mmd2})
            if drift.drift:
                self._alert("drift", event, None, {"seen": mon.drift.seen, **drift.to_dict()})
        flag = mon.extraction.observe(event.client_id, x, labels, ts=event.ts)
        if flag is not None:
            self._alert("extraction", event, event.client_id, flag)
        # anomaly rate of the serving version: share of low-confidence answers (a bad release, or inputs
        # the model cannot handle); out-of-distribution inputs are judged per client above
        conf = np.asarray(event.outputs).max(axis=1) < self.cfg.anomaly.min_confidence
        win = mon.anomalies.setdefault(event.version, deque(maxlen=self.cfg.anomaly.window))
        for bad in conf.tolist():
            win.append(bool(bad))
        share = float(np.mean(win)) if win else 0.0
        mon.series.append({"ts": event.ts, "kind": "anomaly", "share": share, "version": event.version})
        if len(win) == win.maxlen and share > self.cfg.anomaly.max_share:
            self._alert("anomaly_rate", event, None, {"share": share, "threshold": self.cfg.anomaly.max_share,
                                                      "window": len(win), "version": event.version})
            win.clear()

    def _alert(self, detector: str, event: Any, client: str | None, evidence: dict[str, Any]) -> None:
        rule = self.cfg.rule(detector)
        if rule is None:
            return
        alert = Alert(type=detector, severity=Severity.parse(rule.severity),
                      title=f"{detector.replace('_', ' ')} detected on {event.model}", model=event.model,
                      version=event.version, client=client, evidence=_jsonable(evidence))
        try:
            incident, created = open_or_update(alert, self.runner.db_url)
        except Exception:
            log.exception("could not record incident for %s", detector)
            return
        rec = {"ts": time.time(), "detector": detector, "model": event.model, "version": event.version,
               "client": client, "incident": incident["id"], "created": created}
        self.alerts.append(rec)
        if rule.playbook:
            rec["actions"] = self.runner.run(incident, self.playbooks.get(rule.playbook, []))

    def snapshot(self) -> dict[str, Any]:
        """Detector state for dashboards and forensic bundles."""
        out: dict[str, Any] = {"alerts": list(self.alerts), "models": {}}
        for name, mon in self.models.items():
            if mon is None:
                continue
            out["models"][name] = {
                "drift_threshold": mon.drift.detector.threshold, "drift_history": list(mon.drift.history)[-200:],
                "clients": [mon.extraction.client_summary(c) for c in list(mon.extraction.clients)[-50:]],
                "series": list(mon.series)[-500:],
            }
        return _jsonable(out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | deque):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def attach_monitoring(gateway: Any, config: MonitorConfig | None = None) -> MonitorService:
    """Register a ``MonitorService`` on a ``GatewayService`` (its observers run off the request path)."""
    mon = MonitorService(config, gateway)
    gateway.observers.append(mon)
    gateway.monitor = mon
    return mon
