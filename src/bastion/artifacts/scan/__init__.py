"""Model-file scanning: allowlist-first static analysis of pickles and every common model format.

Formats are detected by content: raw pickles (protocols 0–5), PyTorch zip and legacy
checkpoints, TorchScript and ``torch.export`` archives, joblib (plain or compressed), NumPy
``.npy``/``.npz``, safetensors, ONNX, Keras ``.keras``/``.h5``, TensorFlow SavedModel directories,
and zip/tar/7z archives and directories of these. Nothing is ever deserialised by the scanner.

Examples:
    >>> from bastion.artifacts.scan import scan_path, ensure_safe
    >>> report = scan_path("model.pt")                       # doctest: +SKIP
    >>> report.verdict, report.max_severity                   # doctest: +SKIP
    ('safe', None)                 # or 'unsafe', 'error' (not read to its end), 'unscanned' (no model format)
    >>> ensure_safe("evil.pkl")                               # doctest: +SKIP
    Traceback (most recent call last):
    bastion.core.errors.UnsafeArtifactError: evil.pkl: critical PICKLE_DANGEROUS_CALL os.system at -@28 ...
"""

from __future__ import annotations

import os
from pathlib import Path

from bastion.artifacts.scan.policy import GlobalKind, Policy, get_policy
from bastion.artifacts.scan.report import FileScan, ScanFinding, ScanReport, verdict_for
from bastion.artifacts.scan.restricted import restricted_load
from bastion.core.errors import UnsafeArtifactError, UnsupportedFormatError
from bastion.core.severity import Severity

__all__ = [
    "FileScan",
    "GlobalKind",
    "Policy",
    "ScanFinding",
    "ScanReport",
    "ensure_safe",
    "get_policy",
    "restricted_load",
    "scan_path",
    "verdict_for",
]

PathLike = str | os.PathLike[str]


def scan_path(path: PathLike | list[PathLike], allow: list[str] | None = None, digest: bool = False) -> ScanReport:
    """Scan a file, a directory or several of them; never raises for a bad file (errors are values)."""
    from bastion.artifacts.scan.walk import scan_paths

    paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
    return scan_paths(paths, get_policy(allow), digest=digest)


def ensure_safe(path: PathLike, allow: list[str] | None = None,
                max_severity: Severity = Severity.MEDIUM) -> ScanReport:
    """Scan ``path`` and raise ``UnsafeArtifactError`` if any finding is worse than ``max_severity``.

    Call this before deserialising any model file. The error names the file, the finding code,
    the offending ``module.name`` and the member/opcode offset. A single file whose format the
    scanner does not know raises ``UnsupportedFormatError``; a file the scanner could not read
    raises ``UnsafeArtifactError`` (an unscanned file is never loaded).
    """
    report = scan_path(path, allow=allow)
    bad = [(f, x) for f, x in report.findings if x.severity > max_severity]
    if bad:
        bad.sort(key=lambda fx: -fx[1].severity.rank)
        f, x = bad[0]
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        what = f" {x.global_name}" if x.global_name else ""
        raise UnsafeArtifactError(
            f"{f.path}: {x.severity.value} {x.code}{what} at {x.location}: {x.message}{more}; "
            f"the file was not loaded (inspect it with: bastion model scan {f.path})"
        )
    errors = report.errors
    if errors:
        raise UnsafeArtifactError(f"{errors[0].path} could not be scanned to its end ({errors[0].incomplete}); "
                                  "it was not loaded")
    if Path(path).is_file() and not report.scanned_files:
        f0 = report.files[0] if report.files else None
        why = (f0.reason or f"format {f0.format!r}") if f0 else "nothing scanned"
        raise UnsupportedFormatError(f"{path}: {why}; not a model format Bastion can scan")
    return report
