"""Scan results: ``ScanFinding`` per problem, ``FileScan`` per file, ``ScanReport`` per scan.

``ScanReport.to_dict()`` is the JSON that ``bastion model scan --format json`` prints::

    {"scanner": "bastion", "allowlist_version": 3, "max_severity": "critical", "verdict": "unsafe",
     "files": [{"path": "m.pt", "format": "torch-zip", "sha256": "...", "bytes": 1234,
                "findings": [{"severity": "critical", "code": "PICKLE_DANGEROUS_CALL",
                              "message": "...", "location": "archive/data.pkl@57",
                              "member": "archive/data.pkl", "offset": 57, "global": "os.system",
                              "module": "os", "name": "system", "count": 1}],
                "error": null}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.core.severity import Severity


@dataclass
class ScanFinding:
    """One problem in one file. ``location`` is ``member@offset`` (member may be empty)."""

    severity: Severity
    code: str
    message: str
    member: str = ""
    offset: int | None = None
    global_name: str | None = None
    count: int = 1
    module: str | None = None
    name: str | None = None

    @property
    def location(self) -> str:
        if self.offset is None:
            return self.member or "-"
        return f"{self.member}@{self.offset}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "location": self.location,
            "member": self.member,
            "offset": self.offset,
            "global": self.global_name,
            "module": self.module,
            "name": self.name,
            "count": self.count,
        }


@dataclass
class FileScan:
    """Result for one file: its detected format, findings and any scanner error (a value, not a crash)."""

    path: str
    format: str
    findings: list[ScanFinding] = field(default_factory=list)
    error: str | None = None
    size: int = 0
    sha256: str | None = None
    scanned: bool = True
    members_scanned: int = 0

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        ms = self.max_severity
        return {
            "path": self.path,
            "format": self.format,
            "bytes": self.size,
            "sha256": self.sha256,
            "scanned": self.scanned,
            "members_scanned": self.members_scanned,
            "max_severity": ms.value if ms else "none",
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
        }


def verdict_for(max_severity: Severity | None) -> str:
    """``unsafe`` (high or critical), ``suspicious`` (medium), ``safe`` (low, info or nothing)."""
    if max_severity is not None and max_severity >= Severity.HIGH:
        return "unsafe"
    if max_severity == Severity.MEDIUM:
        return "suspicious"
    return "safe"


@dataclass
class ScanReport:
    """All files of one scan."""

    files: list[FileScan] = field(default_factory=list)
    allowlist_version: int = 0
    duration_s: float = 0.0

    @property
    def findings(self) -> list[tuple[FileScan, ScanFinding]]:
        return [(f, x) for f in self.files for x in f.findings]

    @property
    def max_severity(self) -> Severity | None:
        return max((x.severity for _, x in self.findings), default=None)

    @property
    def verdict(self) -> str:
        return verdict_for(self.max_severity)

    @property
    def scanned_files(self) -> list[FileScan]:
        return [f for f in self.files if f.scanned]

    @property
    def errors(self) -> list[FileScan]:
        return [f for f in self.files if f.error]

    def worst(self, threshold: Severity) -> list[tuple[FileScan, ScanFinding]]:
        return [(f, x) for f, x in self.findings if x.severity >= threshold]

    def to_dict(self) -> dict[str, Any]:
        ms = self.max_severity
        return {
            "scanner": "bastion",
            "allowlist_version": self.allowlist_version,
            "max_severity": ms.value if ms else "none",
            "verdict": self.verdict,
            "files_scanned": len(self.scanned_files),
            "duration_s": round(self.duration_s, 4),
            "files": [f.to_dict() for f in self.files],
        }

    def to_sarif(self) -> dict[str, Any]:
        """SARIF 2.1.0 (one rule per finding code)."""
        levels = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
        rules: dict[str, dict[str, Any]] = {}
        results = []
        for f, x in self.findings:
            rules.setdefault(x.code, {"id": x.code, "shortDescription": {"text": x.code.replace("_", " ").lower()}})
            results.append({
                "ruleId": x.code,
                "level": levels[x.severity.value],
                "message": {"text": x.message},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": f.path}},
                    "logicalLocations": [{"name": x.location, "kind": "member"}],
                }],
                "properties": {"severity": x.severity.value, "global": x.global_name, "offset": x.offset},
            })
        return {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "bastion-model-scan", "informationUri": "https://github.com/bastion",
                                    "rules": list(rules.values())}},
                "results": results,
            }],
        }
