"""The dashboard's traffic history: per-interval rates, p95 from histogram bucket differences, rejections by reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from bastion.gateway.ui.views import TrafficHistory, traffic_charts


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
