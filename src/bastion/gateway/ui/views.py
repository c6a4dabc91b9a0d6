"""Data for the dashboard pages: request rate/latency from the gateway's Prometheus registry,
chart series from the monitor snapshot, audit search."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from bastion.gateway.ui.charts import line_chart


class RateSampler:
    """Requests per second over the last ``window_s`` from successive readings of the request counter."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._pts: deque[tuple[float, float]] = deque(maxlen=512)
        self._lock = threading.Lock()

    def rate(self, total: float, started: float) -> float:
        now = time.time()
        with self._lock:
            self._pts.append((now, total))
            while len(self._pts) > 2 and now - self._pts[1][0] > self.window_s:
                self._pts.popleft()
            t0, c0 = self._pts[0] if len(self._pts) > 1 else (started, 0.0)
        return max(0.0, (total - c0) / max(now - t0, 1e-3))


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Upper bucket bound holding the q-quantile of a cumulative histogram (Prometheus style)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    for le, cum in buckets:
        if cum >= target:
            return le
    return None


def traffic(registry: Any) -> dict[str, Any]:
    """Totals per model from ``bastion_requests_total`` and ``bastion_request_latency_seconds``."""
    models: dict[str, dict[str, Any]] = {}
    total = 0.0
    rejected: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for fam in registry.collect():
        for s in fam.samples:
            m = s.labels.get("model")
            if s.name == "bastion_requests_total":
                row = models.setdefault(m, {"requests": 0.0, "errors": 0.0})
                row["requests"] += s.value
                total += s.value
                if str(s.labels.get("status")) != "200":
                    row["errors"] += s.value
            elif s.name == "bastion_request_latency_seconds_sum":
                models.setdefault(m, {"requests": 0.0, "errors": 0.0})["latency_sum"] = s.value
            elif s.name == "bastion_request_latency_seconds_count":
                models.setdefault(m, {"requests": 0.0, "errors": 0.0})["latency_count"] = s.value
            elif s.name == "bastion_request_latency_seconds_bucket":
                le = s.labels.get("le", "+Inf")
                buckets.setdefault(m, []).append((float("inf") if le == "+Inf" else float(le), s.value))
            elif s.name == "bastion_rejections_total":
                reason = s.labels.get("reason", "?")
                rejected[reason] = rejected.get(reason, 0.0) + s.value
    for m, row in models.items():
        n = row.get("latency_count", 0.0)
        row["mean_ms"] = 1000 * row.get("latency_sum", 0.0) / n if n else None
        b = sorted(buckets.get(m, []))
        p95 = _quantile(b, 0.95)
        row["p95_ms"] = None if p95 is None else 1000 * p95
    return {"total": total, "models": models, "rejections": rejected}


def charts(snapshot: dict[str, Any], mmd_thresholds: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per monitored model: the univariate drift statistic vs its threshold, MMD² vs its threshold
    (points in red where the detector decided "drift": either statistic over its threshold), and the
    share of low-confidence answers over time."""
    out = []
    for name, m in sorted(snapshot.get("models", {}).items()):
        hist = [p for p in m.get("drift_history", []) if "statistic" in p]
        flags = [bool(p.get("drift")) for p in hist]
        stat = [(p["ts"], p["statistic"]) for p in hist]
        mmd = [(p["ts"], p["mmd2"]) for p in hist if p.get("mmd2") is not None]
        anomaly = [(p["ts"], p["share"]) for p in m.get("series", []) if p.get("kind") == "anomaly"][-300:]
        thr = m.get("drift_threshold")
        mthr = (mmd_thresholds or {}).get(name)
        safe = "".join(c if c.isalnum() else "-" for c in name)
        out.append({
            "model": name,
            "drift_points": len(stat),
            "drifted": any(flags),
            "drift_svg": line_chart(stat, threshold=thr, flags=flags, css_id=f"drift-{safe}",
                                    title=f"{name}: drift statistic (−log10 min feature p) vs threshold",
                                    y_label="time →"),
            "mmd_svg": line_chart(mmd, threshold=mthr, flags=flags if len(mmd) == len(flags) else None,
                                  title=f"{name}: MMD² vs threshold", y_label="time →", css_id=f"mmd-{safe}"),
            "anomaly_svg": line_chart(anomaly, title=f"{name}: share of low-confidence answers",
                                      y_label="time →", css_id=f"anomaly-{safe}", y_min=0.0, y_max=1.0),
        })
    return out


def audit_search(db_url: str | None, client: str = "", action: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Newest audit records whose actor contains ``client`` and whose action contains ``action``."""
    from sqlalchemy import select

    from bastion.store.db import get_engine
    from bastion.store.models_gateway import GatewayAuditRecord as R

    q = select(R.seq, R.ts, R.kind, R.actor, R.action, R.body).order_by(R.seq.desc()).limit(limit)
    if client:
        q = q.where(R.actor.contains(client, autoescape=True))
    if action:
        q = q.where(R.action.contains(action, autoescape=True))
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        try:
            body = json.dumps(json.loads(r.body), sort_keys=True)
        except ValueError:
            body = r.body
        out.append({"seq": r.seq, "ts": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.ts)), "kind": r.kind,
                    "actor": r.actor, "action": r.action, "body": body[:300]})
    return out
