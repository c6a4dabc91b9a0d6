"""EU AI Act Annex IV technical documentation, pre-filled with everything Bastion knows.

Fields come from the latest assessment (target description, fingerprints, environment, measured
metrics with their parameters), the registry (versions, signatures, scan verdicts), the audit log,
the risk register, the AI Act classification and the catalog's controls. What only a person can state
(intended purpose, provider, design choices, standards, declaration of conformity…) is taken from an
optional ``--info`` YAML or marked ``TO BE WRITTEN BY A HUMAN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.yamlfile import load_yaml_mapping
from bastion.govern.document import Document
from bastion.govern.evidence import collect_evidence
from bastion.report import load_assessment

INFO_KEYS = (
    "intended_purpose", "provider", "version_history", "interaction_with_other_systems", "market_forms",
    "hardware", "user_interface", "instructions_for_use", "development_methods", "design_choices",
    "optimisation_goal", "data_provenance", "labelling", "human_oversight", "predetermined_changes",
    "limitations", "foreseeable_misuse", "input_specification", "lifecycle_changes", "standards",
    "declaration_of_conformity", "post_market_monitoring_plan",
)


def load_info(path: Path | None) -> dict[str, str]:
    """Human-written fields (YAML mapping of the ``INFO_KEYS``); unknown keys are refused."""
    if path is None:
        return {}
    doc = load_yaml_mapping(path, missing=f"info file {path} does not exist", missing_error=InvalidInputError,
                            not_mapping=f"{path}: expected a mapping of {', '.join(INFO_KEYS[:3])} …")
    unknown = sorted(set(doc) - set(INFO_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(INFO_KEYS)}")
    return {k: str(v) for k, v in doc.items()}


def build_annex_iv(system: str, assessments: list[Path] | None = None, info: dict[str, str] | None = None,
                   version: str | None = None, url: str | None = None) -> Document:
    """The Annex IV skeleton for ``system``, filled from evidence and ``info``."""
    from bastion.govern.aiact import latest_classification
    from bastion.govern.risk import list_risks

    info = info or {}
    runs = [(load_assessment(p), str(p)) for p in assessments or []]
    runs.sort(key=lambda ap: ap[0].created_at)
    latest = runs[-1] if runs else None
    cls = latest_classification(system, url)
    tier = cls["tier"] if cls and cls["tier"] != "prohibited" else "high"
    ev = collect_evidence(assessments, system, version, tier=tier, url=url)  # type: ignore[arg-type]
    statuses = ev.statuses()
    doc = Document("annex-iv", "EU AI Act Annex IV — technical documentation", system,
                   "Skeleton of the technical documentation required by Art. 11 and Annex IV of Regulation (EU) "
                   "2024/1689, filled with what Bastion measured and recorded. It shows evidence toward the "
                   "requirements, not conformity; a person must complete and sign it.")
    a = latest[0] if latest else None
    t: dict[str, Any] = a.target if a else {}
    src_a = f"assessment {latest[1]}" if latest else ""

    s1 = doc.section("1", "General description of the AI system")
    s1.add("Intended purpose", info.get("intended_purpose"), "info")
    s1.add("Provider", info.get("provider"), "info")
    s1.add("EU AI Act tier", f"{cls['tier']}: {cls['summary']}" if cls else "", "bastion govern classify")
    reg = [e for e in ev.items if e.source == "signature" and e.control_id == "BC-SC-02"]
    s1.add("Versions", "; ".join(e.summary for e in reg) or info.get("version_history", ""),
           "gateway registry" if reg else "info")
    fp = t.get("fingerprints") or {}
    s1.add("Model format and fingerprint", f"{t.get('model_format')} file {t.get('model_path')}, sha256 {fp['model']}"
           if fp.get("model") else "", src_a)
    s1.add("Interaction with other hardware/software", info.get("interaction_with_other_systems"), "info")
    s1.add("Forms in which it is placed on the market", info.get("market_forms"), "info")
    s1.add("Hardware it runs on", info.get("hardware") or (
        f"{a.environment.get('platform')}; torch {a.environment.get('torch')}" if a else ""),
        "info" if info.get("hardware") else src_a)
    s1.add("User interface for deployers", info.get("user_interface"), "info")
    s1.add("Instructions for use", info.get("instructions_for_use"), "info")

    s2 = doc.section("2", "Elements of the system and its development process")
    s2.add("Development methods, pre-trained systems and tools", info.get("development_methods"), "info")
    s2.add("Design choices, general logic, what the system optimises",
           " ".join(x for x in (info.get("design_choices", ""), info.get("optimisation_goal", "")) if x), "info")
    s2.add("Architecture and inputs", f"{t['n_classes']} classes; input {t.get('input_spec')}; white-box "
           f"{t.get('white_box')}" if t.get("n_classes") else "", src_a)
    s2.add("Data: sizes and fingerprints", f"{t.get('data_path')}: train {t.get('n_train')}, test {t.get('n_test')}; "
           f"data sha256 {fp['data']}" if fp.get("data") else "", src_a)
    manifests = [e.summary for e in ev.items if e.source == "data_manifest"]
    s2.add("Data provenance, labelling and cleaning", info.get("data_provenance", "") + (
        (" Signed manifests: " + "; ".join(manifests)) if manifests else ""), "info / data manifests")
    s2.add("Human oversight measures (Art. 14)", info.get("human_oversight"), "info")
    s2.add("Pre-determined changes", info.get("predetermined_changes"), "info")
    if a:
        measured = [f"{r.check_id}: {r.status.value} — " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(r.metrics.items())[:5]
            if isinstance(v, int | float | str)) + (f" (params {r.params})" if r.params else "") for r in a.results]
        s2.add("Validation and testing procedures and results", "\n".join(measured),
               f"{src_a} (profile {a.profile}, seed {a.seed}, {a.created_at})")
    else:
        s2.add("Validation and testing procedures and results", "", "")
    sec = [f"{c.id} {c.title}: {statuses[c.id]}" for c in (r.control for r in ev.results())
           if c.capability in ("evasion", "hardening", "poisoning", "privacy", "extraction", "supply-chain",
                               "access-control", "audit-logging")]
    s2.add("Cybersecurity measures (Art. 15(5))", "\n".join(sec), "control catalog + evidence")

    s3 = doc.section("3", "Monitoring, functioning and control")
    if a:
        acc = [f"{r.check_id} clean_accuracy={r.metrics['clean_accuracy']:.4g}" for r in a.results
               if isinstance(r.metrics.get("clean_accuracy"), float)]
        s3.add("Accuracy and robustness levels measured", "; ".join(acc) + "; " + "; ".join(
            f"{r.check_id} robust_accuracy={r.metrics['robust_accuracy']:.4g}" for r in a.results
            if isinstance(r.metrics.get("robust_accuracy"), float)), src_a)
    else:
        s3.add("Accuracy and robustness levels measured", "", "")
    s3.add("Known limitations and foreseeable unintended outcomes", info.get("limitations"), "info")
    s3.add("Foreseeable misuse", info.get("foreseeable_misuse"), "info")
    s3.add("Input data specification", info.get("input_specification") or str(t.get("input_spec") or ""),
           "info" if info.get("input_specification") else src_a)
    logs = [e.summary for e in ev.items if e.source == "audit_log"]
    s3.add("Logging (Art. 12)", "; ".join(logs), "bastion audit verify")

    s4 = doc.section("4", "Appropriateness of the performance metrics")
    tier_key: Any = tier
    s4.add("Metrics and thresholds used", "; ".join(
        f"{c.id}: {th.metric} ({'higher' if th.direction == 'min' else 'lower'} is better; {tier}-tier pass "
        f"{th.tiers.get(tier_key, {}).get('pass')})" for c in (r.control for r in ev.results()) for th in c.thresholds),
        "control catalog")

    s5 = doc.section("5", "Risk management system (Art. 9)")
    risks = list_risks(system, dict(statuses), url)
    s5.add("Risk register", "\n".join(f"#{r.id} {r.title}: inherent {r.inherent} ({r.inherent_band}), residual "
                                      f"{r.residual} ({r.residual_band}), owner {r.owner or '—'}"
                                      for r in risks[:15]), "bastion govern risks")

    s6 = doc.section("6", "Relevant changes through the lifecycle")
    s6.add("Changes", info.get("lifecycle_changes") or "\n".join(f"{ap[0].created_at}: assessment {ap[1]} "
                                                                  f"({ap[0].summary()['verdict']})" for ap in runs),
           "info" if info.get("lifecycle_changes") else "assessment history")
    doc.section("7", "Harmonised standards and other specifications applied").add(
        "Standards", info.get("standards"), "info")
    doc.section("8", "EU declaration of conformity").add("Declaration", info.get("declaration_of_conformity"), "info")
    s9 = doc.section("9", "Post-market monitoring plan (Art. 72)")
    mon = [e.summary for e in ev.items if e.source in ("monitoring", "incidents")]
    s9.add("Plan", info.get("post_market_monitoring_plan"), "info")
    s9.add("Monitoring and incident evidence so far", "; ".join(mon), "store")
    return doc
