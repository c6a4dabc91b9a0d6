"""Restricted loading of joblib/pickle scikit-learn models: scan first, then an allowlisted unpickler.

``find_class`` asks the same ``Policy`` the static scanner uses, so a global the scanner
passes is a global the loader accepts, and nothing else (defence in depth).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bastion.artifacts.scan.argpatterns import runtime_guard
from bastion.artifacts.scan.policy import GlobalKind, Policy, get_policy
from bastion.core.errors import ModelLoadError, UnsafeArtifactError
from bastion.core.severity import Severity

_LOADABLE = {"pickle", "joblib", "pickle+gzip", "pickle+bz2", "pickle+xz", "pickle+zlib"}


def _restricted_unpickler_class(policy: Policy, source: str) -> type:
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedUnpickler(NumpyUnpickler):  # type: ignore[misc]
        """joblib's unpickler (reads its array wrappers) with an allowlisted ``find_class``."""

        def find_class(self, module: str, name: str) -> Any:
            decision = policy.classify(module, name)
            if decision.kind == GlobalKind.CONDITIONAL:  # the call is checked on its real arguments
                return runtime_guard(decision.reason, super().find_class(module, name), f"{module}.{name}", policy)
            if decision.kind != GlobalKind.SAFE:
                raise UnsafeArtifactError(
                    f"{source}: refused to load global {module}.{name} ({decision.kind.value}: "
                    f"{decision.reason or 'not on the allowlist'})"
                )
            return super().find_class(module, name)

        def persistent_load(self, pid: Any) -> Any:
            raise UnsafeArtifactError(f"{source}: persistent ids are not allowed in scikit-learn pickles")

    return RestrictedUnpickler


def restricted_load(path: str | os.PathLike[str], allow: list[str] | None = None) -> Any:
    """Load a joblib/pickle file only after a clean scan, with the allowlisted unpickler.

    Raises ``UnsafeArtifactError`` when the scan finds anything at high or above, or when the
    loader meets a global the allowlist refuses.

    Examples:
        >>> from bastion.artifacts.scan import restricted_load
        >>> model = restricted_load("model.joblib")          # doctest: +SKIP
    """
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    from bastion.artifacts.scan import ensure_safe

    p = Path(path)
    report = ensure_safe(p, allow=allow, max_severity=Severity.MEDIUM)
    fmt = report.files[0].format if report.files else "unknown"
    if fmt not in _LOADABLE:
        raise ModelLoadError(f"{p} is a {fmt} file; restricted_load reads joblib/pickle files only")
    policy = get_policy(allow)
    cls = _restricted_unpickler_class(policy, str(p))
    with open(p, "rb") as f, _validate_fileobject_and_memmap(f, str(p), None) as (fobj, _mmap):
        unpickler = cls(str(p), fobj, ensure_native_byte_order=True, mmap_mode=None)
        try:
            return unpickler.load()
        except UnsafeArtifactError:
            raise
        except Exception as exc:  # any loader failure is a load error, never a traceback
            raise ModelLoadError(f"{p}: {type(exc).__name__}: {exc}") from None
