"""The monitor → respond hand-off (alert sink) and playbooks acting through ``gateway.control``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.severity import Severity
from bastion.monitor.alerts import Alert, fan_out, registered_sinks
from bastion.monitor.config import AlertRule, MonitorConfig, load_monitor_config
from bastion.monitor.service import MonitorService
from bastion.respond.alerts import IncidentSink
from bastion.respond.incidents import acknowledge, get_incident, open_or_update, resolve
from bastion.respond.playbooks import PlaybookRunner, parse_playbooks


@pytest.fixture
def db(bastion_home: Path) -> None:
    from bastion.store.db import dispose_engines, upgrade

    dispose_engines()
    upgrade()


def _finding(detector: str = "extraction", client: str | None = "cl_x") -> dict[str, Any]:
    return {"detector": detector, "model": "digits", "version": "2", "client": client,
            "evidence": {"signal": "prada", "pooled": False}}


def _inline(cfg: MonitorConfig, **kw: Any) -> MonitorService:
    cfg.process = False
    cfg.pooling.store = "none"
    return MonitorService(cfg, **kw)


def test_monitor_hands_each_matching_alert_to_its_sink_and_records_what_the_sink_did() -> None:
    got: list[tuple[Alert, AlertRule]] = []
    mon = _inline(MonitorConfig(alerts=[AlertRule(detector="extraction", severity="high")]),
                  on_alert=lambda a, r: got.append((a, r)) or {"incident": 7})
    mon._handle([_finding(), _finding("drift")])  # drift has no rule here: dropped
    assert [(a.type, a.severity, a.client, r.severity) for a, r in got] == [("extraction", Severity.HIGH, "cl_x", "high")]
    assert got[0][0].title == "extraction detected on digits"
    assert [(r["detector"], r["client"], r["incident"], r["pooled"]) for r in mon.alerts] == [
        ("extraction", "cl_x", 7, False)]
    assert mon.snapshot()["alerts"][0]["incident"] == 7
    mon.close()


def test_a_failing_sink_loses_that_alert_only() -> None:
    calls: list[str] = []

    def sink(a: Alert, r: AlertRule) -> dict[str, Any]:
        calls.append(a.client or "")
        if a.client == "bad":
            raise RuntimeError("store down")
        return {}

    mon = _inline(MonitorConfig(alerts=[AlertRule(detector="extraction", severity="high")]), on_alert=sink)
    mon._handle([_finding(client="bad"), _finding(client="good")])
    assert calls == ["bad", "good"] and [r["client"] for r in mon.alerts] == ["good"]
    mon.close()


def test_without_on_alert_the_registered_incident_sink_is_used(db) -> None:
    cfg = MonitorConfig()
    assert [type(s).__name__ for s in registered_sinks(cfg)] == ["IncidentSink"]
    mon = _inline(MonitorConfig(alerts=[AlertRule(detector="drift", severity="medium")]))
    mon._handle([_finding("drift", client=None)])
    inc = get_incident(mon.alerts[0]["incident"])
    assert mon.alerts[0]["created"] is True and inc["alert_type"] == "drift" and inc["model"] == "digits"
    mon.close()


def test_fan_out_merges_what_every_sink_returns() -> None:
    sink = fan_out([lambda a, r: {"a": 1}, lambda a, r: {"b": 2}])
    assert sink(Alert("drift", Severity.LOW, "t"), AlertRule(detector="drift")) == {"a": 1, "b": 2}


def test_incident_sink_contains_an_extracting_client_once_per_incident(db) -> None:
    from bastion.gateway.clients import create_client, list_clients

    info, _ = create_client("eve", models=["digits"])
    cfg = MonitorConfig(alerts=[AlertRule(detector="extraction", severity="high", playbook="contain_client")],
                        playbooks={"contain_client": [{"action": "revoke_key"}, {"action": "throttle"}]})
    sink = IncidentSink(cfg)
    alert = Alert("extraction", Severity.HIGH, "extraction on digits", model="digits", client=info.id)
    first = sink(alert, cfg.alerts[0])
    assert first["created"] is True
    assert first["actions"] == [{"action": "revoke_key", "revoked": [info.id]},
                                {"action": "throttle", "throttled": [info.id]}]
    row = next(c for c in list_clients() if c.id == info.id)
    assert row.revoked_at is not None and row.budget == {"requests": "10/minute"}
    again = sink(alert, cfg.alerts[0])  # the same incident: the actions are not repeated
    assert again["incident"] == first["incident"] and again["created"] is False
    assert [a.get("skipped") for a in again["actions"]] == ["already done for this incident"] * 2
    assert get_incident(first["incident"])["occurrences"] == 2


class _Registry:
    """Stands in for the gateway's live registry: records what the playbook asked of it."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def rollback(self, name: str, alias: str, actor: Any = None) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("no verified previous version")
        self.calls.append(("rollback", name, alias))
        return {"model": name, "alias": alias, "version": "1"}

    def output_policy(self, name: str) -> dict[str, Any]:
        return {"type": "probabilities"}

    def set_output_policy(self, name: str, policy: dict[str, Any], actor: Any = None) -> dict[str, Any]:
        self.calls.append(("policy", name, policy["type"]))
        return {"model": name, "policy": policy}


def test_rollback_and_protective_mode_go_to_the_live_registry_and_invalidate_caches(db) -> None:
    reg, changed = _Registry(), []
    runner = PlaybookRunner(registry=reg, on_change=lambda: changed.append(1))
    inc, _ = open_or_update(Alert("anomaly_rate", Severity.HIGH, "anomalies", model="digits", version="2"))
    steps = parse_playbooks({"p": [{"action": "rollback", "alias": "staging"}, {"action": "protective_mode"}]})["p"]
    res = runner.run(inc, steps)
    assert reg.calls == [("rollback", "digits", "staging"), ("policy", "digits", "label_only")]
    assert res[1]["previous_policy"] == {"type": "probabilities"} and changed == [1]
    timeline = get_incident(inc["id"])["actions_done"]
    assert timeline == ["rollback:digits:", "protective_mode:digits:"]


def test_a_failed_action_is_recorded_and_the_next_one_still_runs(db) -> None:
    runner = PlaybookRunner(registry=_Registry(fail=True))
    inc, _ = open_or_update(Alert("anomaly_rate", Severity.HIGH, "anomalies", model="digits"))
    res = runner.run(inc, parse_playbooks({"p": [{"action": "rollback"}, {"action": "open_ticket"},
                                                  {"action": "notify"}, {"action": "protective_mode"}]})["p"])
    assert res[0]["error"] == "RuntimeError: no verified previous version"
    assert res[1]["error"] == "ConfigError: open_ticket needs webhook: URL"
    assert res[2]["error"] == "ConfigError: notify needs webhook: URL and/or smtp_host"
    assert "error" not in res[3]
    assert get_incident(inc["id"])["actions_done"][0] == "failed:rollback:digits:"


def test_dry_run_changes_nothing_and_says_what_it_would_do(db) -> None:
    reg = _Registry()
    inc, _ = open_or_update(Alert("anomaly_rate", Severity.HIGH, "anomalies", model="digits"))
    res = PlaybookRunner(registry=reg, dry_run=True).run(
        inc, parse_playbooks({"p": [{"action": "throttle", "requests": "1/minute"}]})["p"])
    assert res == [{"action": "throttle", "dry_run": True, "would": {"requests": "1/minute"}}] and reg.calls == []


def test_bad_playbooks_are_refused() -> None:
    with pytest.raises(ConfigError, match="must be a mapping with an 'action'"):
        parse_playbooks({"p": ["rollback"]})
    with pytest.raises(ConfigError, match="unknown playbook action 'reboot'"):
        IncidentSink(MonitorConfig(playbooks={"p": [{"action": "reboot"}]}))


def test_monitor_config_file_names_the_bad_playbook(tmp_path: Path) -> None:
    p = tmp_path / "bastion.yaml"
    p.write_text("monitoring:\n  playbooks:\n    contain: [{alias: staging}]\n")
    with pytest.raises(ConfigError, match=r"playbook 'contain': step .* has no 'action'"):
        load_monitor_config(p)
    p.write_text("monitoring:\n  alerts: [{detector: drift, playbook: nope}]\n")
    with pytest.raises(ConfigError, match="unknown playbook 'nope'"):
        load_monitor_config(p)


def test_incident_lifecycle_refuses_what_makes_no_sense(db) -> None:
    with pytest.raises(InvalidInputError, match="no incident with id 999"):
        get_incident(999)
    inc, _ = open_or_update(Alert("drift", Severity.LOW, "drift", model="m", client="a"))
    upd, _ = open_or_update(Alert("drift", Severity.CRITICAL, "drift", model="m", client="a", evidence={"k": 1}))
    assert upd["severity"] == "critical" and upd["evidence"]["latest"] == {"k": 1}
    resolve(inc["id"], "bob", "false alarm")
    with pytest.raises(InvalidInputError, match="already resolved"):
        acknowledge(inc["id"], "alice")
    assert resolve(inc["id"], "bob")["notes"] == "false alarm"  # resolving twice changes nothing
