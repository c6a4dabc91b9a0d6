"""Typed gateway configuration, loaded from ``bastion.yaml`` (every field has a secure default).

Examples:
    >>> cfg = GatewayConfig.model_validate({"sandbox": {"workers_per_model": 2}})
    >>> cfg.sandbox.workers_per_model, cfg.host
    (2, '127.0.0.1')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bastion.core.errors import ConfigError
from bastion.core.paths import bastion_home
from bastion.core.yamlfile import load_yaml_mapping

ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
HMAC_ALGS = ("HS256", "HS384", "HS512")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelGrant(_Strict):
    """Models granted to a JWT that has no models claim but whose ``claim`` holds ``value``
    (e.g. ``{claim: groups, value: ml-team, models: [digits]}``)."""

    claim: str = Field(min_length=1)
    value: str = Field(min_length=1)
    models: list[str] = Field(min_length=1)


class JWTConfig(_Strict):
    """OIDC / JWT bearer tokens. Exactly one key source: ``jwks_url``, ``jwks_file`` or ``public_key_file``.

    A token must name its models: the ``models_claim`` claim, or a claim mapped to models by
    ``model_grants``; a token with neither is refused (there is no implicit ``*``)."""

    issuer: str
    audience: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwks_url: str | None = None
    jwks_file: Path | None = None
    public_key_file: Path | None = None
    hmac_secret_env: str | None = None
    role_claim: str = "bastion_role"
    models_claim: str = "bastion_models"
    model_grants: list[ModelGrant] = Field(default_factory=list)
    leeway_s: float = 0.0

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, algs: list[str]) -> list[str]:
        bad = [a for a in algs if a.lower() == "none" or a not in (*ASYMMETRIC_ALGS, *HMAC_ALGS)]
        if bad:
            raise ValueError(f"algorithms {bad} are not allowed; use some of {', '.join(ASYMMETRIC_ALGS)}")
        if not algs:
            raise ValueError("algorithms must list at least one algorithm")
        return algs


class AuthConfig(_Strict):
    jwt: JWTConfig | None = None
    cache_ttl_s: float = 1.0


class BudgetConfig(_Strict):
    """Query budgets per (client, model), in ``limits`` notation, e.g. ``600/minute``."""

    requests: str = "600/minute"
    samples: str = "60000/minute"
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "fixed-window"


class SandboxConfig(_Strict):
    workers_per_model: int = Field(default=1, ge=1, le=64)
    timeout_s: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=4096, ge=256)
    cpu_s: int = Field(default=3600, ge=1)
    nofile: int = Field(default=64, ge=16)
    network: Literal["namespace", "seccomp", "auto"] = "auto"
    drop_privileges: bool = True
    loader: str = "bastion.gateway.sandbox.loading:load_registered_model"
    start_timeout_s: float = 120.0
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    python_path: list[str] = Field(default_factory=list)
    batching: bool = True
    """Requests waiting for a busy worker go to it together, as one batch, when it is free (no added wait)."""
    max_batch_samples: int = Field(default=256, ge=1)


class AuditConfig(_Strict):
    """``durable``: a response waits for its record's commit (group commit; crash-safe).
    ``fsync``: on SQLite, also fsync each commit (power-loss safe; ~8 ms per commit on slow disks).
    With ``durable: false`` records are committed within ``batch_window_ms`` after the response.
    Requests refused before authentication are not recorded one by one: they are counted per
    (reason, source address) and written as one ``refusal`` record per pair every ``refusal_window_s``
    (at most ``refusal_max_sources`` addresses per window; the rest are counted under ``*``)."""

    durable: bool = True
    fsync: bool = False
    batch_window_ms: float = Field(default=2.0, ge=0, le=1000)
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoint_interval_s: float = Field(default=30.0, gt=0)
    key_path: Path | None = None
    wal_restart_pages: int = Field(default=65536, ge=0)
    """SQLite: once the write-ahead log holds this many pages (65536: 256 MiB) it is restarted — a short wait for
    writers, rare; 0: passive checkpoints only, which under sustained load never let it shrink."""
    refusal_window_s: float = Field(default=10.0, ge=0.1, le=3600)
    refusal_max_sources: int = Field(default=1000, ge=1, le=100_000)


class RegistryConfig(_Strict):
    trusted_keys: list[Path] = Field(default_factory=list)
    require_attestation: bool = False
    max_severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    max_attestation_age_days: float | None = Field(default=None, gt=0)  # refuse assessments older than this
    store_dir: Path | None = None


class GatewayConfig(_Strict):
    """Everything ``bastion serve`` needs. Unknown keys are an error (typos never pass silently)."""

    host: str = "127.0.0.1"
    port: int = 8000
    db_url: str | None = None
    redis_url: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=2 << 30, ge=1024)
    metrics_public: bool = False
    log_requests: bool = True
    default_alias: str = "production"
    output_policy: dict[str, Any] = Field(default_factory=lambda: {"type": "none"})
    auth: AuthConfig = Field(default_factory=lambda: AuthConfig())
    budgets: BudgetConfig = Field(default_factory=lambda: BudgetConfig())
    sandbox: SandboxConfig = Field(default_factory=lambda: SandboxConfig())
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig())
    registry: RegistryConfig = Field(default_factory=lambda: RegistryConfig())

    def resolved_redis_url(self) -> str | None:
        return self.redis_url or os.environ.get("BASTION_REDIS_URL") or None

    def audit_key_path(self) -> Path:
        return self.audit.key_path or (gateway_home() / "audit-key")

    def registry_dir(self) -> Path:
        return self.registry.store_dir or (gateway_home() / "models")


def gateway_home() -> Path:
    d = bastion_home() / "gateway"
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_config(path: str | os.PathLike[str] | None = None) -> GatewayConfig:
    """Load ``path`` (YAML; a top-level ``gateway:`` section is accepted), or the defaults."""
    if path is None:
        env = os.environ.get("BASTION_GATEWAY_CONFIG")
        if not env:
            return GatewayConfig()
        path = env
    p = Path(path)
    raw = load_yaml_mapping(p, missing=f"gateway config {p} not found",
                            not_mapping=f"{p}: expected a mapping at the top level")
    if isinstance(raw.get("gateway"), dict):
        raw = raw["gateway"]
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: {loc}: {first['msg']}") from None
