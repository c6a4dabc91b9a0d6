"""Monitoring configuration: the ``monitoring:`` section of ``bastion.yaml``.

```yaml
gateway: {...}
monitoring:
  drift: {window: 300, test_every: 50, ert: 20000}
  extraction: {delta: 0.90, min_queries: 100, ood_share: 0.3}
  anomaly: {window: 200, max_share: 0.35, min_confidence: 0.5}
  squeezing: {enabled: true, bit_depth: 3, median_kernel: 1}   # adversarial-input score (off by default)
  pooling: {store: redis, sync_s: 5}    # replicas pool detector state (redis | database | none | auto)
  process: true                 # detectors in their own process (default): no GIL shared with requests
  nice: 10                      # … at a lower CPU priority than serving
  alerts:                       # detector → severity and playbook
    - {detector: drift, severity: medium, playbook: notify_only}
    - {detector: extraction, severity: high, playbook: contain_client}
    - {detector: anomaly_rate, severity: high, playbook: rollback}
  playbooks:
    notify_only: [{action: notify, webhook: "http://127.0.0.1:9000/hook", secret_env: BASTION_WEBHOOK_SECRET}]
    contain_client: [{action: revoke_key}]
    rollback: [{action: rollback}, {action: protective_mode}]
  dry_run: false
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftSettings(_Strict):
    window: int = Field(default=300, ge=50)
    test_every: int = Field(default=50, ge=1)
    ert: int = Field(default=20_000, ge=100)
    n_bootstrap: int = Field(default=2000, ge=100)
    max_features: int = Field(default=32, ge=1)


class ExtractionSettings(_Strict):
    delta: float = 0.90
    min_queries: int = 100
    ood_share: float = 0.30
    rate_per_min: float = 6000.0
    prada_every: int = Field(default=10, ge=1)  # Shapiro–Wilk test once per this many new PRADA distances


class AnomalySettings(_Strict):
    window: int = Field(default=200, ge=20)
    max_share: float = Field(default=0.35, gt=0, le=1)
    min_confidence: float = Field(default=0.5, gt=0, lt=1)


class SqueezeSettings(_Strict):
    """Feature-squeezing disagreement (Xu et al. 2018) as an input-anomaly signal, scored by the
    monitor's own sandboxed worker of the serving version. ``bit_depth: 1, median_kernel: 2`` is
    Xu et al.'s MNIST setting; for 8x8 digits a 2x2 median destroys the image, hence the default."""

    enabled: bool = False
    bit_depth: int = Field(default=3, ge=0, le=16)
    median_kernel: int = Field(default=1, ge=1, le=5)
    fpr: float = Field(default=0.01, gt=0, lt=0.5)  # per-input false-positive rate on the reference
    calibration_samples: int = Field(default=1000, ge=50)
    window: int = Field(default=200, ge=20)
    max_share: float = Field(default=0.15, gt=0, le=1)  # flagged share that raises adversarial_input
    min_queries: int = Field(default=50, ge=1)  # per client, before its share is judged
    every: int = Field(default=1, ge=1)  # score every k-th request (load shedding)


class PoolingSettings(_Strict):
    """Detector state shared by gateway replicas: ``redis`` (the gateway's Redis), ``database`` (the
    gateway's store: SQLite by default, PostgreSQL in production), ``none``, or ``auto`` (Redis when the
    gateway has one, else none)."""

    store: str = Field(default="auto", pattern="^(auto|redis|database|none)$")
    sync_s: float = Field(default=5.0, gt=0)
    stale_s: float = Field(default=30.0, gt=0)  # a replica silent this long drops out of the merged view
    max_clients: int = Field(default=1000, ge=1)  # per replica, most recently seen
    key_prefix: str = "bastion:monitor"


class AlertRule(_Strict):
    detector: str
    severity: str = "medium"
    playbook: str | None = None


class MonitorConfig(_Strict):
    drift: DriftSettings = Field(default_factory=lambda: DriftSettings())
    extraction: ExtractionSettings = Field(default_factory=lambda: ExtractionSettings())
    anomaly: AnomalySettings = Field(default_factory=lambda: AnomalySettings())
    squeezing: SqueezeSettings = Field(default_factory=lambda: SqueezeSettings())
    pooling: PoolingSettings = Field(default_factory=lambda: PoolingSettings())
    process: bool = True
    nice: int = Field(default=10, ge=0, le=19)  # CPU priority of the detector process below serving
    alerts: list[AlertRule] = Field(default_factory=lambda: [
        AlertRule(detector="drift", severity="medium"),
        AlertRule(detector="extraction", severity="high", playbook="contain_client"),
        AlertRule(detector="anomaly_rate", severity="high", playbook="rollback"),
        AlertRule(detector="adversarial_input", severity="high"),
    ])
    playbooks: dict[str, list[dict[str, Any]]] = Field(default_factory=lambda: {
        "contain_client": [{"action": "revoke_key"}],
        "rollback": [{"action": "rollback"}],
    })
    dry_run: bool = False

    def rule(self, detector: str) -> AlertRule | None:
        return next((r for r in self.alerts if r.detector == detector), None)


def load_monitor_config(path: str | Path | None) -> MonitorConfig:
    """The ``monitoring:`` section of a ``bastion.yaml`` (defaults when absent)."""
    if path is None:
        return MonitorConfig()
    import yaml
    from pydantic import ValidationError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config {p} not found")
    raw = yaml.safe_load(p.read_text()) or {}
    section = raw.get("monitoring", {}) if isinstance(raw, dict) else {}
    try:
        cfg = MonitorConfig.model_validate(section or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{p}: monitoring.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    for name, steps in cfg.playbooks.items():  # the actions themselves are checked by the alert sink that runs them
        for step in steps or []:
            if "action" not in step:
                raise ConfigError(f"{p}: playbook {name!r}: step {step!r} has no 'action'")
    for rule in cfg.alerts:
        if rule.playbook and rule.playbook not in cfg.playbooks:
            raise ConfigError(f"{p}: alert on {rule.detector} names unknown playbook {rule.playbook!r}")
    return cfg
