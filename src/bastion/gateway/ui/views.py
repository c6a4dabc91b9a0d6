"""Data for the dashboard pages: request rate/latency from the gateway's Prometheus registry,
chart series from the monitor snapshot, audit search."""

from __future__ import annotations

import itertools
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


def charts(snapshot: dict[str, Any], mmd_thresholds: dict[str, float] | None = None,
           since: float | None = None) -> list[dict[str, Any]]:
    """Per monitored model: the univariate drift statistic vs its threshold, MMD² vs its threshold
    (points in red where the detector decided "drift": either statistic over its threshold), and the
    share of low-confidence answers over time; only points at or after ``since`` (the page's window)."""
    out = []
    lo = float("-inf") if since is None else since
    for name, m in sorted(snapshot.get("models", {}).items()):
        hist = [p for p in m.get("drift_history", []) if "statistic" in p and float(p.get("ts", 0.0)) >= lo]
        flags = [bool(p.get("drift")) for p in hist]
        stat = [(p["ts"], p["statistic"]) for p in hist]
        mmd = [(p["ts"], p["mmd2"]) for p in hist if p.get("mmd2") is not None]
        anomaly = [(p["ts"], p["share"]) for p in m.get("series", [])
                   if p.get("kind") == "anomaly" and float(p.get("ts", 0.0)) >= lo][-300:]
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
            doc = json.loads(r.body)
            body, pretty = json.dumps(doc, sort_keys=True), json.dumps(doc, sort_keys=True, indent=2)
        except ValueError:
            body = pretty = r.body
        cap = 65536  # a page stays bounded; the whole record is in `bastion audit export`
        out.append({"seq": r.seq, "ts": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.ts)), "kind": r.kind,
                    "actor": r.actor, "action": r.action, "body": body[:cap],
                    "body_pretty": pretty[:cap] + ("\n… (truncated; bastion audit export has it all)"
                                                   if len(pretty) > cap else "")})
    return out


WINDOWS = {"1h": 3600.0, "1d": 86400.0}


class TrafficHistory:
    """Readings of the gateway's Prometheus counters over time, for the dashboard's time-series charts.

    ``sample`` reads the registry (a background thread calls it every ``interval_s``; the overview page
    also calls it, so a fresh reading is always there) and keeps one day of readings in a ring. Nothing
    runs on the request path: the predict handlers only increment the counters they always did.
    ``series(window)`` turns successive readings into per-interval points: requests per second, p50 and
    p95 latency of the requests in that interval (from histogram bucket differences), rejections per
    second by reason.
    """

    def __init__(self, interval_s: float = 10.0, keep_s: float = 86400.0) -> None:
        self.interval_s = interval_s
        self._pts: deque[tuple[float, float, dict[str, float], list[tuple[float, float]]]] = deque(
            maxlen=int(keep_s / interval_s) + 64)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Readings kept."""
        with self._lock:
            return len(self._pts)

    def sample(self, registry: Any, now: float | None = None) -> None:
        """Take one reading of ``registry``'s request, rejection and latency counters."""
        total, rejected, buckets = 0.0, {}, {}  # type: ignore[var-annotated]
        for fam in registry.collect():
            for s in fam.samples:
                if s.name == "bastion_requests_total":
                    total += s.value
                elif s.name == "bastion_rejections_total":
                    r = str(s.labels.get("reason", "?"))
                    rejected[r] = rejected.get(r, 0.0) + s.value
                elif s.name == "bastion_request_latency_seconds_bucket":
                    le = s.labels.get("le", "+Inf")
                    b = float("inf") if le == "+Inf" else float(le)
                    buckets[b] = buckets.get(b, 0.0) + s.value
        t = time.time() if now is None else now
        with self._lock:
            if self._pts and t - self._pts[-1][0] < 1.0:  # page reloads: at most one reading a second
                self._pts.pop()
            self._pts.append((t, total, rejected, sorted(buckets.items())))

    def series(self, window: str = "1h", max_points: int = 240) -> dict[str, Any]:
        span = WINDOWS.get(window, 3600.0)
        with self._lock:
            pts = list(self._pts)
        if not pts:
            return {"requests": [], "p50_ms": [], "p95_ms": [], "rejections": {}}
        cut = pts[-1][0] - span
        pts = [p for p in pts if p[0] >= cut]
        step = max(1, len(pts) // max_points)
        pts = pts[::step] if step > 1 else pts
        req: list[tuple[float, float]] = []
        p50: list[tuple[float, float]] = []
        p95: list[tuple[float, float]] = []
        rej: dict[str, list[tuple[float, float]]] = {}
        reasons = sorted({r for p in pts for r in p[2]})  # every reason on every interval (0 before it appeared)
        for (t0, c0, r0, b0), (t1, c1, r1, b1) in itertools.pairwise(pts):
            dt = max(t1 - t0, 1e-3)
            req.append((t1, max(0.0, (c1 - c0) / dt)))
            prev = dict(b0)
            diff = [(le, cum - prev.get(le, 0.0)) for le, cum in b1]
            for quantile, out in ((0.5, p50), (0.95, p95)):
                q = _quantile(diff, quantile)
                if q is not None and q != float("inf"):
                    out.append((t1, 1000 * q))
            for reason in reasons:
                rej.setdefault(reason, []).append((t1, max(0.0, (r1.get(reason, 0.0) - r0.get(reason, 0.0)) / dt)))
        rej = {k: v for k, v in rej.items() if any(y > 0 for _, y in v)}
        return {"requests": req, "p50_ms": p50, "p95_ms": p95, "rejections": rej}


def traffic_charts(history: TrafficHistory, window: str) -> dict[str, str]:
    from bastion.gateway.ui.charts import multi_line_chart

    s = history.series(window)
    return {
        "requests": line_chart(s["requests"], title=f"requests per second (last {window})", y_label="time →",
                               css_id="chart-requests", y_min=0.0),
        "latency": multi_line_chart({"p50": s["p50_ms"], "p95": s["p95_ms"]},
                                    title=f"latency p50 / p95, ms (last {window}; bucket upper bounds)",
                                    y_label="time →", css_id="chart-latency"),
        "rejections": multi_line_chart(s["rejections"], title=f"rejections per second by reason (last {window})",
                                       y_label="time →", css_id="chart-rejections"),
    }


def alert_series(alerts: list[dict[str, Any]], window: str, now: float | None = None,
                 buckets: int = 60) -> dict[str, list[tuple[float, float]]]:
    """Alerts per time bucket and detector over ``window`` (60 buckets: a minute each for 1h, 24 min for 1d).

    Every detector that alerted in the window gets a point in every bucket (0 where it was quiet), so its
    line shows when the alerts came; a point's time is the end of its bucket."""
    span = WINDOWS.get(window, 3600.0)
    end = time.time() if now is None else now
    start, width = end - span, span / buckets
    counts: dict[str, list[int]] = {}
    for a in alerts:
        ts = float(a.get("ts", 0.0))
        if start <= ts <= end:
            i = min(buckets - 1, int((ts - start) // width))
            counts.setdefault(str(a.get("detector", "?")), [0] * buckets)[i] += 1
    return {det: [(start + (i + 1) * width, float(n)) for i, n in enumerate(c)] for det, c in sorted(counts.items())}


def alert_chart(alerts: list[dict[str, Any]], window: str, now: float | None = None) -> str:
    from bastion.gateway.ui.charts import multi_line_chart

    width = "1 min" if window == "1h" else "24 min"
    return multi_line_chart(alert_series(alerts, window, now), y_label="time →", css_id="chart-alerts",
                            title=f"alerts per {width} by detector (last {window})")
