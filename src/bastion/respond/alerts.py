"""The respond side of monitoring: the alert sink that turns a monitor alert into an incident and
runs the rule's playbook.

``IncidentSink`` is registered under the ``bastion.alert_sinks`` entry point, so a ``MonitorService``
built without an explicit ``on_alert`` uses it; the monitor itself never imports ``bastion.respond``
(see docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from bastion.monitor.alerts import Alert
from bastion.monitor.config import AlertRule, MonitorConfig
from bastion.respond.incidents import open_or_update
from bastion.respond.playbooks import PlaybookRunner, parse_playbooks


class IncidentSink:
    """Open (or update) the incident of each alert; run the playbook its rule names."""

    def __init__(self, config: MonitorConfig, gateway: Any = None) -> None:
        self.playbooks = parse_playbooks(config.playbooks)
        gw_cfg = getattr(gateway, "config", None)
        self.runner = PlaybookRunner(
            registry=getattr(gateway, "registry", None), db_url=getattr(gw_cfg, "db_url", None),
            audit_log=getattr(gateway, "audit", None), dry_run=config.dry_run,
            on_change=getattr(gateway, "invalidate", None))

    def __call__(self, alert: Alert, rule: AlertRule) -> dict[str, Any]:
        incident, created = open_or_update(alert, self.runner.db_url)
        rec: dict[str, Any] = {"incident": incident["id"], "created": created}
        if rule.playbook:
            rec["actions"] = self.runner.run(incident, self.playbooks.get(rule.playbook, []))
        return rec
