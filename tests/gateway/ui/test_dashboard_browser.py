"""The dashboard in a real headless Chromium (Playwright) against a live uvicorn gateway:
log in, inject drift, see the traffic/latency/rejection/alert/drift charts at 390 and 1280 px, roll back from
the incident and from the model table (confirmed, audited), promote, expand an audit body, get the favicon.
Every wait is for a condition (Playwright's auto-retrying ``expect``), never a fixed sleep."""

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
    from playwright.sync_api import expect, sync_playwright

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.datasets import load_demo_data
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.models.zoo import demo_model_path
    from bastion.monitor.config import AlertRule, MonitorConfig
    from bastion.monitor.service import attach_monitoring, capture_reference
    from bastion.respond.incidents import list_incidents
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
    op, op_key = create_client("ui-operator", role="operator", models=["*"], db_url=config.db_url)
    _, cl_key = create_client("ui-traffic", models=["digits"], db_url=config.db_url,
                              budget={"requests": "100000/minute", "samples": "1000000/minute"})
    rng = np.random.default_rng(0)

    with _Server(app) as base, httpx.Client(base_url=base, timeout=90,
                                            headers={"Authorization": f"Bearer {cl_key}"}) as http, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(30_000)  # a loaded machine: every wait is for a condition, up to 30 s
        expect.set_options(timeout=30_000)
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
        deadline = time.monotonic() + 60  # the detectors run in their own process: wait for them, not a fixed time
        while not any(a["detector"] == "drift" for a in monitor.alerts) and time.monotonic() < deadline:
            monitor.flush(timeout=10)
        assert any(a["detector"] == "drift" for a in monitor.alerts), "no drift alert"
        assert any("drift" in i["title"] for i in list_incidents(db_url=config.db_url)), "drift alert without incident"

        for _ in range(3):  # refused inputs: the rejections chart has a reason to draw
            assert http.post("/v1/models/digits/predict", json={"inputs": [[1.0, 2.0]]}).status_code == 422
        assert monitor.flush(timeout=60)
        page.goto(f"{base}/ui")  # the default page reloads itself; every check below uses ?refresh=off
        assert page.locator("meta[http-equiv='refresh']").count() == 1
        for width in (390, 1280):  # the charts, with data, at a phone's and a laptop's width
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{base}/ui?refresh=off")
            # traffic over time (readings of the request counters): requests/s, p50/p95 latency, rejections
            expect(page.locator("svg#chart-requests circle.pt").first).to_be_attached()
            expect(page.locator("svg#chart-latency polyline.series[data-name='p95']")).to_have_count(1)
            expect(page.locator("svg#chart-latency polyline.series[data-name='p50']")).to_have_count(1)
            expect(page.locator("svg#chart-rejections polyline.series[data-name='invalid_input']")).to_have_count(1)
            expect(page.locator("svg#chart-alerts polyline.series[data-name='drift']")).to_have_count(1)
            drift = page.locator("svg#drift-digits")
            expect(drift.locator("circle.pt").nth(1)).to_be_attached()
            expect(drift.locator("line.threshold")).to_have_count(1)
            # the window(s) where the detector decided "drift" are drawn red, on both drift charts
            expect(drift.locator("circle.pt.over").first).to_be_attached()
            expect(page.locator("svg#mmd-digits circle.pt.over").first).to_be_attached()
            expect(page.locator("svg#anomaly-digits circle.pt").nth(1)).to_be_attached()
            expect(page.locator("main")).to_contain_text("drift detected")
            for chart in ("chart-requests", "chart-latency", "chart-rejections", "chart-alerts", "drift-digits"):
                box = page.locator(f"svg#{chart}").bounding_box()
                assert box is not None and 100 < box["width"] <= width, (chart, width, box)
            over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert over <= 1, f"/ui at {width}px scrolls sideways by {over}px"
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base}/ui?window=1d&refresh=off")
        expect(page.locator("svg#chart-requests")).to_have_count(1)
        expect(page.locator("main")).to_contain_text("last 1d")
        page.goto(f"{base}/ui?refresh=off")
        expect(page.locator("#incidents")).to_contain_text("drift")
        page.locator("#incidents a.incident-link").first.click()
        page.wait_for_selector("#timeline")
        expect(page.locator("#production-version")).to_have_text("2")
        expect(page.locator("#timeline")).to_contain_text("opened")
        expect(page.locator("#clocks")).to_have_count(1)
        page.click("#rollback")
        page.wait_for_selector("#confirm-rollback")  # the confirmation step
        expect(page.locator("#target")).to_have_text("1")
        page.click("#confirm-rollback")
        page.wait_for_selector("#msg")
        assert "/ui/incidents/" in page.url
        expect(page.locator("#production-version")).to_have_text("1")
        expect(page.locator("#timeline")).to_contain_text("rollback")
        page.goto(f"{base}/ui?refresh=off")
        expect(page.locator("#models tr.production")).to_have_attribute("data-version", "1")

        def confirm_on_overview(link: str, button: str, current: str, target: str, msg: str) -> None:
            """Click an action on the model table, check the confirmation page, confirm, check the result."""
            page.click(link)
            page.wait_for_selector(button)  # the confirmation step
            expect(page.locator("#current")).to_have_text(current)
            expect(page.locator("#target")).to_have_text(target)
            page.click(button)
            expect(page.locator("#msg")).to_contain_text(msg)
            expect(page.locator("#models tr.production")).to_have_attribute("data-version", target)

        confirm_on_overview("#models tr[data-version='2'] a.promote", "#confirm-promote", "1", "2", "promoted digits")
        confirm_on_overview("#models tr.production a.rollback", "#confirm-rollback", "2", "1",
                            "rolled back digits: production 2 → 1")
        # … and audited under the operator's key
        page.goto(f"{base}/ui/audit?action=registry.rollback")
        rows = page.locator("#audit tr", has_text="registry.rollback")
        expect(rows).to_have_count(2)  # from the incident page, then from the overview
        expect(rows.first).to_contain_text(f"api_key:{op.id}")
        # the audit log: long bodies are collapsed and open in place
        page.goto(f"{base}/ui/audit?action=registry.promote")
        details = page.locator("#audit details").first
        details.wait_for()
        expect(details.locator("pre")).to_be_hidden()
        details.locator("summary").click()
        expect(details.locator("pre")).to_be_visible()
        expect(details.locator("pre")).to_contain_text('"alias": "production"')  # the whole body, indented
        # readable on a phone and a laptop: no page-wide horizontal scroll
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{base}/ui/audit")
            over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert over <= 1, f"/ui/audit at {width}px scrolls sideways by {over}px"
        browser.close()
        fav = httpx.get(f"{base}/favicon.ico")
        assert fav.status_code == 200 and fav.headers["content-type"].startswith("image/svg+xml")
        assert fav.content.startswith(b"<svg")
    assert service.registry.resolve("digits", "production").version == "1"  # rolled back from the overview
    dispose_engines()
