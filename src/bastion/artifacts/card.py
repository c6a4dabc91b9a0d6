"""Model cards (Mitchell et al., FAT* 2019) in Markdown and HTML from a model, an assessment and a YAML.

Measured facts — file digest, scan verdict, signature, every metric with its parameters,
findings — come from the model file and the assessment JSON; prose sections come from a
small YAML the user writes::

    model_details: {name: digits-mlp, version: "1.2", owners: ML team, license: Apache-2.0}
    intended_use: {primary_uses: [digit recognition demos], out_of_scope: [handwriting forensics]}
    factors: [stroke width, scanner noise]
    metric_descriptions: [robust accuracy under PGD L-inf at the listed eps]
    evaluation_data: sklearn digits test split (360 images)
    training_data: sklearn digits train split
    ethical_considerations: [not for decisions about people]
    caveats: [8x8 greyscale inputs only]

Examples:
    >>> md, html = render_card(model="m.pt", assessment="a.json", info="card.yaml")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bastion.core.errors import ConfigError, InvalidInputError

_SEVERE = ("medium", "high", "critical")


@dataclass
class CardInfo:
    """Human-written sections of a model card (all optional)."""

    model_details: dict[str, Any] = field(default_factory=dict)
    intended_use: dict[str, Any] = field(default_factory=dict)
    factors: list[str] = field(default_factory=list)
    metric_descriptions: list[str] = field(default_factory=list)
    evaluation_data: str = ""
    training_data: str = ""
    ethical_considerations: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> CardInfo:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"model card YAML {p} is not readable: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"model card YAML {p} must be a mapping")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model card YAML {p}: unknown keys {unknown}; allowed: {sorted(known)}")
        for key in ("model_details", "intended_use"):
            if not isinstance(data.get(key, {}), dict):
                raise ConfigError(f"model card YAML {p}: {key} must be a mapping")
        for key in ("factors", "metric_descriptions", "ethical_considerations", "caveats"):
            v = data.get(key, [])
            if isinstance(v, str):
                data[key] = [v]
            elif not isinstance(v, list):
                raise ConfigError(f"model card YAML {p}: {key} must be a list of strings")
        for key in ("evaluation_data", "training_data"):
            if not isinstance(data.get(key, ""), str):
                raise ConfigError(f"model card YAML {p}: {key} must be text")
        return cls(**data)


def card_context(
    model: str | os.PathLike[str] | None = None,
    assessment: str | os.PathLike[str] | dict[str, Any] | None = None,
    info: CardInfo | str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Everything the templates show, as plain data (also what ``--format json`` prints)."""
    from bastion import __version__
    from bastion.artifacts.bom import _load_assessment, performance_metrics

    ci = info if isinstance(info, CardInfo) else CardInfo.from_yaml(info) if info is not None else CardInfo()
    a = _load_assessment(assessment)
    details = dict(ci.model_details)
    target = (a or {}).get("target") or {}
    details.setdefault("name", target.get("name") or (Path(model).name if model else "model"))
    if target.get("model_format"):
        details.setdefault("type", f"{target['model_format']} classifier ({target.get('n_classes')} classes)")
    ctx: dict[str, Any] = {
        "bastion_version": __version__,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_details": details,
        **{k: v for k, v in asdict(ci).items() if k != "model_details"},
        "metrics": performance_metrics(a) if a else [],
        "findings": [f for r in (a or {}).get("results", []) for f in r.get("findings", [])
                     if f.get("severity") in _SEVERE],
        "datasets": [{"name": k, "digest": v} for k, v in sorted((target.get("fingerprints") or {}).items())
                     if k != "model"],
        "artifact": None,
    }
    if model is not None:
        from bastion.artifacts.scan import scan_path
        from bastion.artifacts.signing import attestation_path_for, bundle_path_for
        from bastion.core.paths import sha256_file

        mp = Path(model)
        if not mp.exists():
            raise InvalidInputError(f"model {mp} does not exist")
        report = scan_path(mp)
        ctx["artifact"] = {
            "name": mp.name,
            "format": next((f.format for f in report.scanned_files), "unknown"),
            "sha256": sha256_file(mp) if mp.is_file() else "(directory: see the ML-BOM)",
            "verdict": report.verdict,
            "max_severity": report.max_severity.value if report.max_severity else "none",
            "signed": bundle_path_for(mp).is_file(),
            "attested": attestation_path_for(mp).is_file(),
        }
    return ctx


def render_card(
    model: str | os.PathLike[str] | None = None,
    assessment: str | os.PathLike[str] | dict[str, Any] | None = None,
    info: CardInfo | str | os.PathLike[str] | None = None,
) -> tuple[str, str]:
    """(Markdown, HTML) model card. HTML is autoescaped."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    if model is None and assessment is None:
        raise InvalidInputError("a model card needs a model file, an assessment, or both")
    ctx = card_context(model, assessment, info)
    md_env = Environment(loader=PackageLoader("bastion.artifacts", "templates"), autoescape=False,  # noqa: S701
                         trim_blocks=False, keep_trailing_newline=True)
    html_env = Environment(loader=PackageLoader("bastion.artifacts", "templates"),
                           autoescape=select_autoescape(["html", "html.j2"], default=True))
    md = md_env.get_template("model_card.md.j2").render(c=ctx)
    html = html_env.get_template("model_card.html.j2").render(c=ctx)
    return md, html
