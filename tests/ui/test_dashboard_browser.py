"""The dashboard in a real headless Chromium (Playwright) against a live uvicorn gateway:
log in, inject drift, see the drift chart and the incident, roll back, see production change."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIDECAR = {"input_shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0}
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn in a daemon thread on 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            assert time.monotonic() - t0 < 30, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.mark.browser
@pytest.mark.slow
def test_dashboard_drift_incident_rollback_in_chromium(bastion_home: Path) -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.datasets import load_demo_data
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.models.zoo import demo_model_path
    from bastion.monitor.config import AlertRule, MonitorConfig
    from bastion.monitor.service import attach_monitoring, capture_reference
    from bastion.store.db import dispose_engines

    dispose_engines()
    priv, pub = generate_keypair(bastion_home / "signer")
    config = GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}})
    app = create_app(config, preload=False)
    service = app.state.service
    for v in ("1", "2"):  # a signed v1, then a signed v2 promoted to production
        p = bastion_home / f"digits-v{v}.pt"
        shutil.copyfile(demo_model_path("digits"), p)
        p.with_name(p.name + ".bastion.json").write_text(json.dumps(SIDECAR))
        sign_model(p, priv)
        service.registry.push(p, "digits", v, keys=[pub], promote=True)
    assert service.registry.resolve("digits", "production").version == "2"
    d = load_demo_data("digits").splits
    assert d.x_train is not None and d.x_test is not None
    capture_reference("digits", d.x_train.reshape(len(d.x_train), -1))
    monitor = attach_monitoring(service, MonitorConfig(alerts=[AlertRule(detector="drift", severity="medium")]))
    monitor.prepare(["digits"])  # calibrate the drift detector before traffic (in the detector process)
    _, op_key = create_client("ui-operator", role="operator", models=["*"], db_url=config.db_url)
    _, cl_key = create_client("ui-traffic", models=["digits"], db_url=config.db_url,
                              budget={"requests": "100000/minute", "samples": "1000000/minute"})
    rng = np.random.default_rng(0)

    with _Server(app) as base, httpx.Client(base_url=base, timeout=90,
                                            headers={"Authorization": f"Bearer {cl_key}"}) as http, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        # not logged in: the dashboard sends us to the login page
        page.goto(f"{base}/ui")
        assert "/ui/login" in page.url
        page.fill("#credential", op_key)
        page.click("#login")
        page.wait_for_selector("#models")
        assert page.locator("#models tr.production").get_attribute("data-version") == "2"

        def send(x: np.ndarray) -> None:
            r = http.post("/v1/models/digits/predict", json={"inputs": x.tolist()})
            assert r.status_code == 200, r.text

        for _ in range(40):  # normal traffic
            send(d.x_test[rng.integers(0, len(d.x_test), size=10)])
        sigma = float(d.x_train.std())
        mask = np.zeros((1, 8, 8), dtype=np.float32)
        mask[:, :, :2] = 1.0
        for _ in range(200):  # drifted traffic: +0.5 sigma on a quarter of the pixels
            send(np.clip(d.x_test[rng.integers(0, len(d.x_test), size=10)] + 0.5 * sigma * mask, 0, 1))
            if any(a["detector"] == "drift" for a in monitor.alerts):
                break
        t0 = time.monotonic()
        while not any(a["detector"] == "drift" for a in monitor.alerts) and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        assert any(a["detector"] == "drift" for a in monitor.alerts), "no drift alert"

        for _ in range(3):  # refused inputs: the rejections chart has a reason to draw
            assert http.post("/v1/models/digits/predict", json={"inputs": [[1.0, 2.0]]}).status_code == 422
        page.goto(f"{base}/ui")
        # traffic over time (readings of the request counters): requests/s, p95 latency, rejections by reason
        assert page.locator("svg#chart-requests circle.pt").count() >= 1
        assert page.locator("svg#chart-latency circle.pt").count() >= 1
        assert page.locator("svg#chart-rejections polyline.series").count() >= 1
        page.goto(f"{base}/ui?window=1d")
        assert page.locator("svg#chart-requests").count() == 1 and "last 1d" in page.locator("main").inner_text()
        page.goto(f"{base}/ui")
        chart = page.locator("svg#drift-digits")
        chart.wait_for()
        assert chart.locator("circle.pt").count() >= 2
        assert chart.locator("line.threshold").count() == 1
        # the window(s) where the detector decided "drift" are drawn red, on both drift charts
        assert chart.locator("circle.pt.over").count() >= 1
        assert page.locator("svg#mmd-digits circle.pt.over").count() >= 1
        assert "drift detected" in page.locator("main").inner_text()
        assert page.locator("svg#anomaly-digits circle.pt").count() >= 2
        link = page.locator("#incidents a.incident-link").first
        assert "drift" in page.locator("#incidents").inner_text()

        link.click()
        page.wait_for_selector("#timeline")
        assert page.locator("#production-version").inner_text().strip() == "2"
        assert "opened" in page.locator("#timeline").inner_text()
        assert page.locator("#clocks").count() == 1
        page.click("#rollback")
        page.wait_for_selector("#confirm-rollback")  # the confirmation step
        assert page.locator("#target").inner_text() == "1"
        page.click("#confirm-rollback")
        page.wait_for_selector("#msg")
        assert "/ui/incidents/" in page.url
        assert page.locator("#production-version").inner_text().strip() == "1"
        assert "rollback" in page.locator("#timeline").inner_text()
        page.goto(f"{base}/ui")
        assert page.locator("#models tr.production").get_attribute("data-version") == "1"
        # promote from the model table, with a confirmation step
        page.click("#models tr[data-version='2'] a.promote")
        page.wait_for_selector("#confirm-promote")
        assert page.locator("#current").inner_text() == "1" and page.locator("#target").inner_text() == "2"
        page.click("#confirm-promote")
        page.wait_for_selector("#msg")
        assert page.locator("#models tr.production").get_attribute("data-version") == "2"
        assert page.locator("#models tr.production a.rollback").count() == 1
        # the audit log: long bodies are collapsed and open in place
        page.goto(f"{base}/ui/audit?action=registry.promote")
        details = page.locator("#audit details").first
        details.wait_for()
        assert not details.locator("pre").is_visible()
        details.locator("summary").click()
        assert details.locator("pre").is_visible() and '"version": "2"' in details.locator("pre").inner_text()
        # readable on a phone and a laptop: no page-wide horizontal scroll
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            for path in ("/ui", "/ui/audit"):
                page.goto(f"{base}{path}")
                over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert over <= 1, f"{path} at {width}px scrolls sideways by {over}px"
        browser.close()
        fav = httpx.get(f"{base}/favicon.ico")
        assert fav.status_code == 200 and fav.headers["content-type"].startswith("image/svg+xml")
    assert service.registry.resolve("digits", "production").version == "2"  # promoted back from the dashboard
    dispose_engines()
