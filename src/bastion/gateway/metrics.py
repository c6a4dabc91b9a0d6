"""Prometheus metrics for one gateway app (a private ``CollectorRegistry`` per app)."""

from __future__ import annotations

import os

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
