"""The dashboard's time series: per-interval rates, p50/p95 from histogram bucket differences, rejections by
reason, alerts per bucket and detector, drift points inside the window."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from bastion.gateway.ui.views import TrafficHistory, alert_chart, alert_series, charts, traffic_charts


def test_history_turns_counter_readings_into_interval_series() -> None:
    reg = CollectorRegistry()
    req = Counter("bastion_requests", "r", ["model", "status"], registry=reg)
    lat = Histogram("bastion_request_latency_seconds", "l", ["model"], buckets=(0.001, 0.005, 0.05, 1.0),
                    registry=reg)
    rej = Counter("bastion_rejections", "x", ["reason"], registry=reg)
    h = TrafficHistory(interval_s=10)
    h.sample(reg, now=1000.0)
    for _ in range(100):  # 100 fast requests in the first interval
        req.labels("m", "200").inc()
        lat.labels("m").observe(0.0005)
    h.sample(reg, now=1010.0)
    for _ in range(50):  # then 50 slow ones and 20 refusals
        req.labels("m", "200").inc()
        lat.labels("m").observe(0.03)
    for _ in range(20):
        rej.labels("invalid_input").inc()
    h.sample(reg, now=1020.0)
    s = h.series("1h")
    assert s["requests"] == [(1010.0, 10.0), (1020.0, 5.0)]
    assert s["p95_ms"] == [(1010.0, 1.0), (1020.0, 50.0)]  # upper bound of the bucket holding the 95th percentile
    assert s["rejections"] == {"invalid_input": [(1010.0, 0.0), (1020.0, 2.0)]}
    h.sample(reg, now=1020.5)  # a reload within a second replaces the last reading instead of adding one
    assert len(h.series("1h")["requests"]) == 2
    svg = traffic_charts(h, "1h")
    assert svg["requests"].count('class="pt') == 2 and "invalid_input" in svg["rejections"]


def test_windows_cut_old_readings_and_downsample() -> None:
    reg = CollectorRegistry()
    req = Counter("bastion_requests", "r", ["model", "status"], registry=reg)
    h = TrafficHistory(interval_s=10)
    for i in range(1000):
        req.labels("m", "200").inc()
        h.sample(reg, now=float(i * 10))
    hour = h.series("1h")["requests"]
    assert hour[0][0] >= 9990 - 3600 and all(abs(y - 0.1) < 1e-9 for _, y in hour)
    assert len(h.series("1d", max_points=100)["requests"]) <= 101
    assert h.series("1d")["rejections"] == {}


def test_p50_and_p95_come_from_the_same_interval() -> None:
    reg = CollectorRegistry()
    lat = Histogram("bastion_request_latency_seconds", "l", ["model"], buckets=(0.001, 0.01, 0.1), registry=reg)
    h = TrafficHistory(interval_s=10)
    h.sample(reg, now=0.0)
    for i in range(100):  # 90 at ≤ 1 ms, 10 at ≤ 100 ms: the median is fast, the 95th percentile slow
        lat.labels("m").observe(0.0005 if i < 90 else 0.05)
    h.sample(reg, now=10.0)
    s = h.series("1h")
    assert s["p50_ms"] == [(10.0, 1.0)] and s["p95_ms"] == [(10.0, 100.0)]
    svg = traffic_charts(h, "1h")["latency"]
    assert 'data-name="p50"' in svg and 'data-name="p95"' in svg


def test_alerts_are_counted_per_bucket_and_detector_inside_the_window() -> None:
    now = 10_000.0
    alerts = [{"ts": now - 30, "detector": "drift"}, {"ts": now - 50, "detector": "drift"},
              {"ts": now - 1800, "detector": "extraction"}, {"ts": now - 7200, "detector": "drift"}]
    s = alert_series(alerts, "1h", now=now)
    assert sorted(s) == ["drift", "extraction"]
    assert all(len(v) == 60 for v in s.values())  # one point a minute, zeros where the detector was quiet
    assert s["drift"][-1] == (now, 2.0) and sum(y for _, y in s["drift"]) == 2.0  # the 2 h old one is outside
    assert sum(y for _, y in s["extraction"]) == 1.0
    day = alert_series(alerts, "1d", now=now)
    assert sum(y for _, y in day["drift"]) == 3.0 and day["drift"][-1][0] == now
    assert alert_series([], "1h", now=now) == {}
    assert 'data-name="drift"' in alert_chart(alerts, "1h", now=now)
    assert 'id="chart-alerts-empty"' in alert_chart([], "1h", now=now)


def test_drift_charts_keep_only_the_window() -> None:
    snap = {"models": {"m": {"drift_threshold": 3.0, "drift_history": [
        {"ts": 100.0, "statistic": 1.0, "drift": False}, {"ts": 5000.0, "statistic": 4.0, "drift": True},
        {"ts": 5010.0, "statistic": 2.0, "drift": False}]}}}
    (everything,) = charts(snap)
    (recent,) = charts(snap, since=4000.0)
    assert everything["drift_points"] == 3 and recent["drift_points"] == 2 and recent["drifted"]
    assert recent["drift_svg"].count('class="pt over"') == 1


def test_readings_start_with_the_gateway_and_stop_when_it_closes(bastion_home: Path) -> None:
    from bastion.gateway.app import create_app
    from bastion.gateway.config import GatewayConfig
    from bastion.store.db import dispose_engines

    app = create_app(GatewayConfig(), preload=False)  # no dashboard view: the first reading is taken anyway
    deadline = time.monotonic() + 10
    while len(app.state.ui_history) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(app.state.ui_history) == 1
    app.state.service.close()
    app.state.ui_history_thread.join(timeout=10)
    assert not app.state.ui_history_thread.is_alive()
    dispose_engines()


def test_charts_label_the_time_axis_in_utc() -> None:
    from bastion.gateway.ui.charts import line_chart, multi_line_chart

    t0 = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC
    svg = line_chart([(t0, 1.0), (t0 + 3600, 2.0)], title="t", y_label="time →", css_id="c")
    assert '<text class="x0"' in svg and ">00:53</text>" in svg and ">01:53 UTC</text>" in svg
    day = multi_line_chart({"a": [(t0, 1.0), (t0 + 86400, 2.0)]}, title="t", y_label="time →", css_id="d")
    assert ">11-30 00:53</text>" in day and ">12-01 00:53 UTC</text>" in day
    assert "time →" in line_chart([(0.0, 1.0), (1.0, 2.0)], title="t", y_label="time →", css_id="e")
