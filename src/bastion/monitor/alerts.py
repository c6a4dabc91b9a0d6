"""Alerts: what the monitor raises, and the one interface through which it hands them on.

The detectors find things (``{"detector", "model", "version", "client", "evidence"}``); the alert
rules of the ``MonitorConfig`` turn a finding into an ``Alert``; an *alert sink* decides what the
alert does. The monitor does not know about incidents or playbooks: it calls its sink, which is

- the ``on_alert`` callable given to ``MonitorService`` / ``attach_monitoring``, or else
- the sinks registered under the ``bastion.alert_sinks`` entry point (Bastion registers
  ``incidents = bastion.respond.alerts:IncidentSink``: open or update an incident, run the rule's
  playbook), each built once with ``factory(config, gateway)``.

A sink returns the fields it adds to the alert's record (``incident``, ``created``, ``actions``…);
an exception from a sink is logged and the alert is not recorded (the run goes on).

Examples:
    >>> seen = []
    >>> sink = lambda alert, rule: seen.append(alert.type) or {}
    >>> MonitorService(MonitorConfig(process=False), on_alert=sink)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bastion.core.severity import Severity

if TYPE_CHECKING:
    from bastion.monitor.config import AlertRule, MonitorConfig

log = logging.getLogger("bastion.monitor")
SINK_GROUP = "bastion.alert_sinks"


@dataclass
class Alert:
    """What a detector raises; alert rules turn it into an incident and playbook actions."""

    type: str  # drift | extraction | adversarial_inputs | anomaly_rate | …
    severity: Severity  # the matching alert rule's, for monitor alerts; an open incident's only ever goes up
    title: str  # one line for the incident list
    model: str | None = None  # registry name of the model the finding is about
    version: str | None = None  # its served version
    model_sha256: str | None = None  # digest of that model's file, for the forensic bundle
    client: str | None = None  # the API client the finding points at (extraction), else None
    evidence: dict[str, Any] = field(default_factory=dict)  # the detector's numbers, kept on the incident
    personal_data: bool = False  # starts the GDPR Art. 33 72-hour clock on the incident
    serious: bool = False  # starts the EU AI Act Art. 73 serious-incident clock

    @property
    def dedupe_key(self) -> str:
        return f"{self.type}|{self.model or '-'}|{self.client or '-'}"


class AlertSink(Protocol):
    """Receives every alert that matched a rule; returns the fields it adds to the alert record."""

    def __call__(self, alert: Alert, rule: AlertRule) -> dict[str, Any]: ...


SinkFactory = Callable[["MonitorConfig", Any], AlertSink]


def registered_sinks(config: MonitorConfig, gateway: Any = None) -> list[AlertSink]:
    """The sinks of the ``bastion.alert_sinks`` entry point, each built with ``(config, gateway)``."""
    from importlib.metadata import entry_points

    return [ep.load()(config, gateway) for ep in sorted(entry_points(group=SINK_GROUP), key=lambda e: e.name)]


def fan_out(sinks: list[AlertSink]) -> AlertSink:
    """One sink calling ``sinks`` in order; their returned fields are merged."""

    def sink(alert: Alert, rule: AlertRule) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in sinks:
            out.update(s(alert, rule))
        return out

    return sink
