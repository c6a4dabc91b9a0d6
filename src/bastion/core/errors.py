"""The Bastion exception tree.

Every error Bastion raises on purpose is a ``BastionError``. The CLI turns one into a
one-line message and exit code 2; the gateway turns one into a 4xx answer. Messages name
the file, field or value that is wrong and what to do about it.

    BastionError
    ├── ConfigError            bad configuration or option combination
    ├── InvalidInputError      bad data: wrong shape/dtype, NaN, labels out of range, missing file
    │   └── UnsupportedFormatError   a file whose format Bastion cannot read
    ├── ModelLoadError         a model file that cannot be loaded
    ├── UnsafeArtifactError    a scan found something dangerous: the file is never deserialised
    ├── SignatureError         a signature, attestation or manifest does not verify
    ├── IntegrityError         data or a log does not match its recorded digests/chain
    ├── QueryBudgetExceeded    a black-box model ran out of its query budget
    ├── RegistryError          a check id registered twice, or a name that is not registered
    ├── AuthError              missing, malformed, expired or revoked credentials
    └── DependencyError        an optional extra is not installed
"""

from __future__ import annotations


class BastionError(Exception):
    """Root of every error Bastion raises on purpose."""

    exit_code: int = 2


class ConfigError(BastionError):
    """A configuration file or an option combination is invalid."""


class InvalidInputError(BastionError):
    """Input data is invalid: wrong shape or dtype, NaN, labels out of range, missing file."""


class UnsupportedFormatError(InvalidInputError):
    """A file's format is unknown or not supported here."""


class ModelLoadError(BastionError):
    """A model file exists but cannot be loaded."""


class UnsafeArtifactError(BastionError):
    """A scanned artifact is unsafe to load; it was not deserialised."""


class SignatureError(BastionError):
    """A signature, attestation or signed manifest does not verify."""


class IntegrityError(BastionError):
    """Data, a file set or a log does not match its recorded digests or hash chain."""


class QueryBudgetExceeded(BastionError):
    """A query-budgeted (black-box) model has no queries left."""


class RegistryError(BastionError):
    """A registry refused a duplicate, or a name is not registered."""


class AuthError(BastionError):
    """Credentials are missing, malformed, expired, revoked or lack the scope."""


class DependencyError(BastionError):
    """An optional dependency (extra) needed for this feature is not installed."""

    @classmethod
    def missing(cls, package: str, extra: str) -> DependencyError:
        return cls(f"{package} is not installed; install it with: pip install 'bastion-ml[{extra}]'")
