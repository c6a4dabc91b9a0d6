"""Incidents, regulatory clocks, playbook notifications (webhook with HMAC, SMTP), bundles."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from bastion.core.errors import IntegrityError
from bastion.core.severity import Severity
from bastion.respond.clocks import regulatory_clocks
from bastion.respond.incidents import (
    Alert,
    acknowledge,
    get_incident,
    list_incidents,
    open_or_update,
    resolve,
)
from bastion.respond.playbooks import PlaybookRunner, parse_playbooks


@pytest.fixture
def db(bastion_home: Path) -> None:
    from bastion.store.db import dispose_engines, upgrade

    dispose_engines()
    upgrade()


def test_alerts_dedupe_into_one_incident_with_a_timeline(db) -> None:
    alert = Alert("extraction", Severity.HIGH, "extraction on digits", model="digits", version="1",
                  client="cl_1", evidence={"signal": "prada"})
    inc, created = open_or_update(alert)
    again, created2 = open_or_update(alert)
    assert created and not created2 and again["id"] == inc["id"] and again["occurrences"] == 2
    assert [e["action"] for e in again["timeline"]] == ["opened", "alert repeated"]
    assert "AML.T0024.002" in again["atlas"]
    acknowledge(inc["id"], "alice")
    done = resolve(inc["id"], "alice", "key revoked, attacker blocked")
    assert done["status"] == "resolved" and done["closed_at"]
    new, created3 = open_or_update(alert)
    assert created3 and new["id"] != inc["id"]
    assert len(list_incidents()) == 2 and len(list_incidents("resolved")) == 1


def test_regulatory_clocks() -> None:
    opened = datetime(2026, 11, 1, 12, tzinfo=UTC)
    clocks = regulatory_clocks(opened, personal_data=True, serious=True, now=opened + timedelta(hours=24))
    gdpr = next(c for c in clocks if c["regime"] == "GDPR")
    ai = next(c for c in clocks if c["regime"] == "EU AI Act")
    assert gdpr["hours_left"] == 48.0 and ai["article"] == "Art. 73(2)" and ai["hours_left"] == 14 * 24
    death = regulatory_clocks(opened, False, True, "death", now=opened)
    assert death == [{**death[0], "article": "Art. 73(4)", "hours_left": 240.0}]


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_notify_signs_webhooks_and_sends_email_and_is_idempotent(db, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    class Sink:
        messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):
            Sink.messages.append(envelope.content)
            return "250 OK"

    httpd = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        monkeypatch.setenv("HOOK_SECRET", "s3cret")
        steps = parse_playbooks({"p": [{"action": "notify", "webhook": f"http://127.0.0.1:{httpd.server_port}/h",
                                        "secret_env": "HOOK_SECRET", "smtp_host": "127.0.0.1",
                                        "smtp_port": smtp_port,
                                        "to": ["sec@example.org"]}]})["p"]
        inc, _ = open_or_update(Alert("drift", Severity.MEDIUM, "drift on digits", model="digits", version="1"))
        runner = PlaybookRunner()
        res = runner.run(inc, steps)
        assert res[0]["webhook"]["status"] == 200 and res[0]["email"]["to"] == "sec@example.org"
        headers, body = _Hook.received[-1]
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Bastion-Signature"] == expected
        assert "drift on digits" in json.loads(body)["text"]
        assert b"drift on digits" in Sink.messages[-1]
        again = runner.run(get_incident(inc["id"]), steps)  # idempotent per incident
        assert again[0]["skipped"] and len(_Hook.received) == 1
        dry = PlaybookRunner(dry_run=True).run(open_or_update(Alert("anomaly_rate", Severity.HIGH, "x", model="m"))[0],
                                               parse_playbooks({"r": [{"action": "rollback"}]})["r"])
        assert dry[0]["dry_run"] is True
    finally:
        httpd.shutdown()
        smtp.stop()


@pytest.mark.slow
def test_attack_and_respond_scenario_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.demos.attack_and_respond import attack_and_respond
    from bastion.respond.forensics import verify_bundle
    from bastion.store.db import dispose_engines

    # the scenario switches $BASTION_HOME to its own directory: restore the session's afterwards
    # (its demo model still comes from the session's zoo cache)
    monkeypatch.setenv("BASTION_HOME", os.environ["BASTION_HOME"])
    try:
        report = attack_and_respond(tmp_path / "demo", clean_requests=400, log=lambda m: None)
    finally:
        dispose_engines()
    assert report["false_alarms"] == {"drift": 0, "extraction": 0, "anomaly_rate": 0}
    assert report["drift_detected_after_requests"] is not None and report["drift_detected_after_requests"] <= 500
    assert report["extraction_revoked_after_queries"] is not None
    assert report["extraction_revoked_after_queries"] <= 1000 and report["attacker_status_after_revoke"] == 401
    assert report["honest_flagged"] == []
    assert report["production_version_after"] == "1" and report["rollback_after_requests"] is not None
    types = {i["type"] for i in report["incidents"]}
    assert types == {"drift", "extraction", "anomaly_rate"}
    assert all(b["valid"] and b["records_with_inclusion_proof"] == b["audit_records"] > 0 for b in report["bundles"])
    bundle = Path(report["bundles"][0]["path"])
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        verify_bundle(bundle, tmp_path / "demo" / "signer.pub")
