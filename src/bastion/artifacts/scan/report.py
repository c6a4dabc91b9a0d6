"""Scan results: ``ScanFinding`` per problem, ``FileScan`` per file, ``ScanReport`` per scan.

``ScanReport.to_dict()`` is the JSON that ``bastion model scan --format json`` prints::

    {"scanner": "bastion", "allowlist_version": 6, "max_severity": "critical", "verdict": "unsafe",
     "verdict_reason": "1 finding(s) at high or above",
     "files": [{"path": "m.pt", "format": "torch-zip", "sha256": "...", "bytes": 1234,
                "findings": [{"severity": "critical", "code": "PICKLE_DANGEROUS_CALL",
                              "message": "...", "location": "archive/data.pkl@57",
                              "member": "archive/data.pkl", "offset": 57, "global": "os.system",
                              "module": "os", "name": "system", "count": 1}],
                "error": null}]}

The verdict is one of ``safe``, ``unsafe``, ``error`` or ``unscanned`` (``VERDICTS``):

* ``unsafe`` — a finding at high or above (whatever else happened);
* ``error`` — a file or member could not be read to its end (unreadable archive, broken pickle
  stream, encrypted member, scanner error): what was not read was not judged;
* ``unscanned`` — nothing that is a model format was found (empty file, text, unknown binary, a
  directory holding an unknown binary file);
* ``safe`` — every file was read to its end and no finding is high or above (medium and low
  findings stay listed; ``--fail-on`` decides on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.core.severity import Severity

Verdict = Literal["safe", "unsafe", "error", "unscanned"]
VERDICTS: tuple[Verdict, ...] = ("safe", "unsafe", "error", "unscanned")
# findings that mean part of a file was not read, so the file cannot be called safe
INCOMPLETE_CODES = frozenset({
    "PICKLE_MALFORMED", "ARCHIVE_MALFORMED", "ARCHIVE_MEMBER_TOO_LARGE", "ARCHIVE_TOO_DEEP",
    "ARCHIVE_MEMBER_UNREADABLE", "NUMPY_MALFORMED_HEADER", "KERAS_MALFORMED_CONFIG", "TF_MALFORMED_PROTOBUF",
})


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
    reason: str | None = None  # why the file was not scanned (empty, text, unknown format)
    blocking: bool = True  # an unscanned file keeps the report from being safe (False: inert text in a directory)

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def incomplete(self) -> str | None:
        """Why the file was not read to its end (None when it was)."""
        if self.error:
            return self.error
        bad = next((f for f in self.findings if f.code in INCOMPLETE_CODES), None)
        return f"{bad.code} at {bad.location}" if bad else None

    @property
    def verdict(self) -> Verdict:
        ms = self.max_severity
        if ms is not None and ms >= Severity.HIGH:
            return "unsafe"
        if self.incomplete:
            return "error"
        return "safe" if self.scanned else "unscanned"

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
            "verdict": self.verdict,
            "reason": self.reason or self.incomplete,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
        }


def verdict_for(max_severity: Severity | None) -> Verdict:
    """The verdict of findings alone: ``unsafe`` (high or critical) or ``safe``."""
    if max_severity is not None and max_severity >= Severity.HIGH:
        return "unsafe"
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
    def verdict(self) -> Verdict:
        return self.verdict_and_reason[0]

    @property
    def verdict_and_reason(self) -> tuple[Verdict, str]:
        bad = self.worst(Severity.HIGH)
        if bad:
            return "unsafe", f"{len(bad)} finding(s) at high or above"
        broken = [(f, f.incomplete) for f in self.files if f.incomplete]
        if broken:
            f, why = broken[0]
            more = f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""
            return "error", f"{f.path} was not read to its end: {why}{more}"
        if not self.scanned_files:
            f0 = self.files[0] if self.files else None
            what = f"{f0.path}: {f0.reason or f0.format}" if f0 else "no files"
            return "unscanned", f"no model file was scanned ({what})"
        skipped = [f for f in self.files if not f.scanned and f.blocking]
        if skipped:
            more = f" (+{len(skipped) - 1} more)" if len(skipped) > 1 else ""
            return "unscanned", f"{skipped[0].path} was not scanned: {skipped[0].reason or skipped[0].format}{more}"
        return "safe", f"{len(self.scanned_files)} file(s) read to the end; nothing at high or above"

    @property
    def scanned_files(self) -> list[FileScan]:
        return [f for f in self.files if f.scanned]

    @property
    def errors(self) -> list[FileScan]:
        """Files not read to their end (scanner error, unreadable member, broken stream)."""
        return [f for f in self.files if f.incomplete]

    def worst(self, threshold: Severity) -> list[tuple[FileScan, ScanFinding]]:
        return [(f, x) for f, x in self.findings if x.severity >= threshold]

    def to_dict(self) -> dict[str, Any]:
        ms = self.max_severity
        verdict, reason = self.verdict_and_reason
        return {
            "scanner": "bastion",
            "allowlist_version": self.allowlist_version,
            "max_severity": ms.value if ms else "none",
            "verdict": verdict,
            "verdict_reason": reason,
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
