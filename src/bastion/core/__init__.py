"""Bastion's shared vocabulary. Nothing here imports from the rest of the package."""

from bastion.core.errors import (
    AuthError,
    BastionError,
    ConfigError,
    DependencyError,
    IntegrityError,
    InvalidInputError,
    ModelLoadError,
    QueryBudgetExceeded,
    RegistryError,
    SignatureError,
    UnsafeArtifactError,
    UnsupportedFormatError,
)
from bastion.core.model import InputSpec, ModelAdapter, ModelInfo, predict_labels
from bastion.core.paths import bastion_home
from bastion.core.results import SCHEMA_VERSION, Assessment, CheckResult, Finding, environment_info
from bastion.core.severity import Severity, Status
from bastion.core.target import DataKind, DataSplits, Target, TargetMetadata

__all__ = [
    "SCHEMA_VERSION",
    "Assessment",
    "AuthError",
    "BastionError",
    "CheckResult",
    "ConfigError",
    "DataKind",
    "DataSplits",
    "DependencyError",
    "Finding",
    "InputSpec",
    "IntegrityError",
    "InvalidInputError",
    "ModelAdapter",
    "ModelInfo",
    "ModelLoadError",
    "QueryBudgetExceeded",
    "RegistryError",
    "Severity",
    "SignatureError",
    "Status",
    "Target",
    "TargetMetadata",
    "UnsafeArtifactError",
    "UnsupportedFormatError",
    "bastion_home",
    "environment_info",
    "predict_labels",
]
