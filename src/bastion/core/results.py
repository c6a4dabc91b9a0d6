"""Findings, check results and assessments — what every Bastion check produces.

An ``Assessment`` serialises to the published JSON schema
(``bastion/report/schema/assessment.schema.json``); ``SCHEMA_VERSION`` names its version.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bastion.core.severity import Severity, Status

SCHEMA_VERSION = "1.0"


@dataclass
class Finding:
    """One thing a check found, with the evidence and the fix.

    ``recommendation`` names the ``bastion harden …`` (or other) command that addresses it;
    ``controls`` lists catalog ids such as ``mitre-atlas:AML.T0015`` or ``owasp-ml:ML01:2023``.
    """

    id: str
    severity: Severity
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    recommendation: str = ""
    controls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "title": self.title,
            "evidence": self.evidence,
            "recommendation": self.recommendation,
            "controls": list(self.controls),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            id=d["id"],
            severity=Severity.parse(d["severity"]),
            title=d["title"],
            evidence=dict(d.get("evidence", {})),
            recommendation=d.get("recommendation", ""),
            controls=list(d.get("controls", [])),
        )


@dataclass
class CheckResult:
    """The outcome of one ``Check`` on one ``Target``.

    ``metrics`` holds plain JSON values (numbers, lists, small dicts) — every number with its
    parameters in ``params`` so it can be reproduced. ``artifacts`` maps a file name to bytes
    (PNG plots, example images, npz); the runner writes them under the output directory and
    records their relative paths in ``artifact_paths``.
    """

    check_id: str
    title: str
    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    artifact_paths: dict[str, str] = field(default_factory=dict)
    controls: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    summary: str = ""

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "metrics": self.metrics,
            "params": self.params,
            "findings": [f.to_dict() for f in self.findings],
            "artifacts": dict(self.artifact_paths),
            "controls": list(self.controls),
            "duration_s": round(self.duration_s, 4),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(
            check_id=d["check_id"],
            title=d["title"],
            status=Status(d["status"]),
            summary=d.get("summary", ""),
            metrics=dict(d.get("metrics", {})),
            params=dict(d.get("params", {})),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            artifact_paths=dict(d.get("artifacts", {})),
            controls=list(d.get("controls", [])),
            duration_s=float(d.get("duration_s", 0.0)),
            error=d.get("error"),
        )


def environment_info() -> dict[str, Any]:
    """Versions and host facts recorded in every assessment."""
    import numpy as np

    from bastion import __version__

    env: dict[str, Any] = {
        "bastion": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    return env


@dataclass
class Assessment:
    """A whole assessment run: what was assessed, how, and every check's result."""

    target: dict[str, Any]
    profile: str
    seed: int
    results: list[CheckResult] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=environment_info)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_s: float = 0.0
    schema_version: str = SCHEMA_VERSION

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def result(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.check_id == check_id), None)

    def summary(self) -> dict[str, Any]:
        """A compact, machine-readable summary (what ``--format json`` prints)."""
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        statuses = {s.value: 0 for s in Status}
        for r in self.results:
            statuses[r.status.value] += 1
        ms = self.max_severity
        return {
            "schema_version": self.schema_version,
            "target": self.target.get("name"),
            "profile": self.profile,
            "seed": self.seed,
            "checks": statuses,
            "findings": counts,
            "max_severity": ms.value if ms else "none",
            "verdict": verdict(ms),
            "duration_s": round(self.duration_s, 3),
            "metrics": {r.check_id: _headline(r.metrics) for r in self.results},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "target": self.target,
            "profile": self.profile,
            "seed": self.seed,
            "environment": self.environment,
            "duration_s": round(self.duration_s, 4),
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        return cls(
            target=dict(d["target"]),
            profile=d["profile"],
            seed=int(d["seed"]),
            results=[CheckResult.from_dict(r) for r in d.get("results", [])],
            environment=dict(d.get("environment", {})),
            created_at=d.get("created_at", ""),
            duration_s=float(d.get("duration_s", 0.0)),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
        )


def verdict(max_severity: Severity | None) -> str:
    """Plain-words verdict for a maximum finding severity."""
    if max_severity is None or max_severity <= Severity.LOW:
        return "no significant weaknesses found by the checks run"
    if max_severity == Severity.MEDIUM:
        return "weaknesses found: review recommended"
    return "serious weaknesses found: act before deployment"


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool) or v is None}
