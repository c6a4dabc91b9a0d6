"""Severity of a finding and status of a check, ordered so they can be compared."""

from __future__ import annotations

from enum import Enum


class Severity(str, Enum):
    """How bad a finding is. Ordered: ``Severity.HIGH > Severity.LOW``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self.value)

    def _cmp(self, other: object) -> int:
        if not isinstance(other, Severity):
            raise TypeError(f"cannot compare Severity with {type(other).__name__}")
        return self.rank - other.rank

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        return self._cmp(other) < 0

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        return self._cmp(other) <= 0

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        return self._cmp(other) > 0

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        return self._cmp(other) >= 0

    def __hash__(self) -> int:
        return hash(self.value)

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Parse a severity name, case-insensitively, with a clear error."""
        if isinstance(value, Severity):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            from bastion.core.errors import ConfigError

            raise ConfigError(
                f"unknown severity {value!r}; expected one of {', '.join(_SEVERITY_ORDER)}"
            ) from None


_SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


class Status(str, Enum):
    """Outcome of one check."""

    PASS = "pass"  # noqa: S105
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"
