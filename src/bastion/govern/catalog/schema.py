"""Pydantic schema of Bastion's control catalog and its framework references.

A *framework reference* names one item of an external framework, optionally pinned to a
version::

    mitre-atlas:AML.T0015@5.6.0       MITRE ATLAS technique / sub-technique / mitigation
    owasp-ml:ML01:2023                OWASP Machine Learning Security Top 10 (year is the version)
    nist-ai-rmf:MEASURE-2.7@1.0       NIST AI RMF function-category.subcategory
    eu-ai-act:Art15(5)@2024/1689      Regulation (EU) 2024/1689, article (paragraph)(point)
    gdpr:Art35@2016/679               Regulation (EU) 2016/679

A *control* is Bastion's own statement of what should hold, the checks and other evidence
that speak to it, pass/warn thresholds per AI Act risk tier, and typed mappings (SKOS
relations) to framework items.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.core.errors import ConfigError

FRAMEWORKS: dict[str, str] = {
    "mitre-atlas": "MITRE ATLAS",
    "owasp-ml": "OWASP Machine Learning Security Top 10",
    "nist-ai-rmf": "NIST AI Risk Management Framework",
    "eu-ai-act": "EU AI Act (Regulation (EU) 2024/1689)",
    "gdpr": "GDPR (Regulation (EU) 2016/679)",
}
FrameworkName = Literal["mitre-atlas", "owasp-ml", "nist-ai-rmf", "eu-ai-act", "gdpr"]
Relation = Literal["exactMatch", "closeMatch", "narrowMatch", "broadMatch", "relatedMatch"]
Tier = Literal["prohibited", "high", "limited", "minimal"]
EvidenceSource = Literal[
    "assessment",
    "signature",
    "data_manifest",
    "audit_log",
    "monitoring",
    "incidents",
    "training",
    "ethics_review",
    "risk_register",
    "classification",
    "documentation",
]

_ITEM_PATTERNS: dict[str, re.Pattern[str]] = {
    "mitre-atlas": re.compile(r"^AML\.(T|M)\d{4}(\.\d{3})?$"),
    "owasp-ml": re.compile(r"^ML(0[1-9]|10):2023$"),
    "nist-ai-rmf": re.compile(r"^(GOVERN|MAP|MEASURE|MANAGE)-\d\.\d{1,2}$"),
    "eu-ai-act": re.compile(r"^(Art\d{1,3}(\(\d+\))?(\([a-h]\))?|Annex(I|III|IV)(\(\d\))?)$"),
    "gdpr": re.compile(r"^Art\d{1,2}(\(\d+\))?$"),
}


class FrameworkRef(BaseModel):
    """A parsed framework reference such as ``mitre-atlas:AML.T0015@5.6.0``."""

    model_config = ConfigDict(frozen=True)

    framework: FrameworkName
    item: str
    version: str | None = None

    @property
    def key(self) -> str:
        """The unversioned form used on findings: ``mitre-atlas:AML.T0015``."""
        return f"{self.framework}:{self.item}"

    def __str__(self) -> str:
        return self.key if self.version is None else f"{self.key}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> FrameworkRef:
        """Parse ``framework:item[@version]``; raise ``ConfigError`` naming what is wrong."""
        raw = text.strip()
        framework, sep, rest = raw.partition(":")
        if not sep or framework not in FRAMEWORKS:
            raise ConfigError(
                f"framework reference {text!r}: expected 'framework:item[@version]' with framework one of "
                f"{', '.join(FRAMEWORKS)}"
            )
        item, _, version = rest.partition("@")
        if not _ITEM_PATTERNS[framework].match(item):
            raise ConfigError(f"framework reference {text!r}: {item!r} is not a valid {framework} item id")
        return cls(framework=framework, item=item, version=version or None)  # type: ignore[arg-type]


class Mapping(BaseModel):
    """One typed, version-pinned mapping from a control to a framework item."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(description="framework:item@version, e.g. mitre-atlas:AML.T0015@5.6.0")
    relation: Relation = "relatedMatch"

    @property
    def parsed(self) -> FrameworkRef:
        return FrameworkRef.parse(self.ref)

    @field_validator("ref")
    @classmethod
    def _valid_ref(cls, v: str) -> str:
        FrameworkRef.parse(v)
        return v


class Threshold(BaseModel):
    """Pass/warn bounds on one metric. ``direction`` min: higher is better; max: lower is better."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    direction: Literal["min", "max"] = "min"
    tiers: dict[Tier, dict[Literal["pass", "warn"], float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        for tier, bounds in self.tiers.items():
            if "pass" in bounds and "warn" in bounds:
                ok = bounds["pass"] >= bounds["warn"] if self.direction == "min" else bounds["pass"] <= bounds["warn"]
                if not ok:
                    raise ValueError(f"threshold {self.metric!r} tier {tier}: pass bound is looser than warn bound")
        return self


class Risk(BaseModel):
    """The risk a control addresses, used to seed the risk register."""

    model_config = ConfigDict(extra="forbid")

    title: str
    likelihood: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)


class Control(BaseModel):
    """One Bastion control: what should hold, what shows it, and what it maps to."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^BC-[A-Z]{2,4}-\d{2}$")
    title: str
    capability: str
    objective: str
    checks: list[str] = Field(default_factory=list, description="check ids or id prefixes ending in '.'")
    evidence: list[EvidenceSource] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list, description="bastion commands that produce evidence")
    thresholds: list[Threshold] = Field(default_factory=list)
    risk: Risk | None = None
    mappings: list[Mapping] = Field(default_factory=list)

    @field_validator("mappings", mode="before")
    @classmethod
    def _shorthand(cls, v: object) -> object:
        """Accept ``"relatedMatch mitre-atlas:AML.T0015@5.6.0"`` as well as ``{ref, relation}``."""
        if not isinstance(v, list):
            return v
        out: list[object] = []
        for m in v:
            if isinstance(m, str):
                relation, _, ref = m.strip().partition(" ")
                out.append({"ref": ref.strip(), "relation": relation})
            else:
                out.append(m)
        return out

    def matches_check(self, check_id: str) -> bool:
        """True when ``check_id`` is one of this control's checks (or under one of its prefixes)."""
        return any(check_id == c or (c.endswith(".") and check_id.startswith(c)) for c in self.checks)


class FrameworkItem(BaseModel):
    """One item of an external framework, with its title (ids and short titles only)."""

    model_config = ConfigDict(extra="forbid")

    framework: FrameworkName
    id: str
    title: str
    version: str
    kind: str = ""
    parent: str | None = None

    @property
    def key(self) -> str:
        return f"{self.framework}:{self.id}"

    @property
    def pinned(self) -> str:
        return self.key if self.framework == "owasp-ml" else f"{self.key}@{self.version}"


class Catalog(BaseModel):
    """The whole catalog: framework items, controls, and the catalog's own version."""

    model_config = ConfigDict(extra="forbid")

    version: str
    framework_versions: dict[FrameworkName, str]
    items: list[FrameworkItem]
    controls: list[Control]

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        problems = validate_catalog(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def validate_catalog(cat: Catalog) -> list[str]:
    """Every problem with ``cat`` (opacus-style: a list, raise only when asked)."""
    problems: list[str] = []
    keys = [i.key for i in cat.items]
    dup_items = {k for k in keys if keys.count(k) > 1}
    problems += [f"framework item {k} listed twice" for k in sorted(dup_items)]
    known = set(keys)
    for item in cat.items:
        if not _ITEM_PATTERNS[item.framework].match(item.id):
            problems.append(f"framework item {item.key}: not a valid {item.framework} id")
        if item.version != cat.framework_versions[item.framework]:
            problems.append(f"framework item {item.key}: version {item.version} differs from the catalog's")
    ids = [c.id for c in cat.controls]
    problems += [f"control {c} defined twice" for c in sorted({c for c in ids if ids.count(c) > 1})]
    for control in cat.controls:
        if not control.checks and not control.evidence:
            problems.append(f"control {control.id}: names no check and no evidence source")
        for m in control.mappings:
            ref = m.parsed
            if ref.key not in known:
                problems.append(f"control {control.id}: mapping {m.ref} names an item not in the catalog")
            expected = cat.framework_versions[ref.framework]
            if ref.framework == "owasp-ml":
                continue
            if ref.version != expected:
                problems.append(f"control {control.id}: mapping {m.ref} must be pinned to @{expected}")
    return problems
