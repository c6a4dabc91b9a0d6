"""Prometheus metrics for one gateway app (a private ``CollectorRegistry`` per app).

Every label value comes from a closed set, so no caller can add series: route templates (never a
raw path), HTTP methods from a fixed list, status codes, refusal reasons and credential problems
from fixed lists, and model names and versions only once the caller is authenticated *and* the
model version is registered — ``unknown`` otherwise. Client labels are registered client ids.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition: this process's registry, or every worker's when ``bastion serve --workers N``
    runs prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)."""
    from prometheus_client import generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
    return generate_latest(registry)


UNKNOWN = "unknown"
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class GatewayMetrics:
    """Requests, latency, rejections by reason, budget use and served model versions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("bastion_requests_total", "Predict requests by model, version and status.",
                                ["model", "version", "status"], registry=self.registry)
        self.latency = Histogram(
            "bastion_request_latency_seconds", "Predict latency (end to end inside the gateway).", ["model"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry)
        self.model_latency = Histogram(
            "bastion_model_latency_seconds", "Time spent in the sandboxed model worker.", ["model"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=self.registry)
        self.rejections = Counter("bastion_rejections_total", "Refused requests by reason.", ["reason"],
                                  registry=self.registry)
        self.samples = Counter("bastion_samples_total", "Samples predicted, by client and model.",
                               ["client", "model"], registry=self.registry)
        self.model_version = Gauge("bastion_model_version_info", "Model versions served (1 = loaded).",
                                   ["model", "version", "sha256"], registry=self.registry,
                                   multiprocess_mode="max")
        self.worker_restarts = Counter("bastion_worker_restarts_total", "Sandbox workers restarted.",
                                       ["model", "reason"], registry=self.registry)
        self.audit_records = Counter("bastion_audit_records_total", "Audit records appended.", ["kind"],
                                     registry=self.registry)
        self.http = Counter("bastion_http_requests_total", "HTTP requests by route template, method and status.",
                            ["route", "method", "status"], registry=self.registry)
        self.refused_anonymous = Counter(
            "bastion_refused_unauthenticated_total",
            "Requests refused before authentication, by credential problem (aggregated in the audit log).",
            ["problem"], registry=self.registry)
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered (label values here are from closed sets, so this is bounded)."""
        key = (id(metric), *labels)
        got = self._children.get(key)
        if got is None:
            got = self._children[key] = metric.labels(*labels)
        return got

    def http_request(self, route: str, method: str, status: int) -> None:
        self.child(self.http, route, method if method in METHODS else "other", str(status)).inc()
