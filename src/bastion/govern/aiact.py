"""EU AI Act (Regulation (EU) 2024/1689) tiering from a questionnaire, with reasoning and obligations.

The questionnaire (YAML) answers yes/no questions about Art. 5 prohibited practices (a–h), Annex I
safety components, the Annex III area, the Art. 6(3) derogations, Art. 50 transparency cases and
general-purpose AI. The result is a tier — ``prohibited``, ``high``, ``limited`` or ``minimal`` — the
reasoning for every answer, and the obligations that follow with their application dates.

This is decision support for a compliance lead, not legal advice. Dates are those of Art. 113 as
published; later amendments (e.g. the Commission's 2025 "digital omnibus" proposal to postpone
high-risk obligations) may move them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import ConfigError, InvalidInputError

Tier = Literal["prohibited", "high", "limited", "minimal"]
AnnexIIIArea = Literal[
    "none", "biometrics", "critical_infrastructure", "education", "employment", "essential_services",
    "law_enforcement", "migration", "justice_democracy",
]
DATES_NOTE = ("Application dates from Art. 113 of Regulation (EU) 2024/1689 as published; check later "
              "amendments (e.g. the 2025 digital-omnibus proposal on high-risk timelines) before relying on them.")

ANNEX_III_TITLES: dict[str, str] = {
    "biometrics": "Annex III(1) biometrics (remote identification, categorisation, emotion recognition)",
    "critical_infrastructure": "Annex III(2) safety components of critical infrastructure",
    "education": "Annex III(3) education and vocational training",
    "employment": "Annex III(4) employment, workers management and access to self-employment",
    "essential_services": "Annex III(5) access to essential private and public services and benefits",
    "law_enforcement": "Annex III(6) law enforcement",
    "migration": "Annex III(7) migration, asylum and border control",
    "justice_democracy": "Annex III(8) administration of justice and democratic processes",
}
PROHIBITED: dict[str, tuple[str, str]] = {
    "a_subliminal_manipulation": ("Art5(1)(a)", "uses subliminal, manipulative or deceptive techniques that "
                                  "materially distort behaviour and cause significant harm"),
    "b_exploits_vulnerabilities": ("Art5(1)(b)", "exploits vulnerabilities due to age, disability or a "
                                   "social or economic situation"),
    "c_social_scoring": ("Art5(1)(c)", "scores people on social behaviour or personal traits leading to "
                         "detrimental or unjustified treatment"),
    "d_crime_prediction_by_profiling": ("Art5(1)(d)", "predicts criminal offences solely from profiling or "
                                        "personality traits"),
    "e_untargeted_facial_scraping": ("Art5(1)(e)", "builds facial recognition databases by untargeted "
                                     "scraping of images"),
    "f_emotion_recognition_work_education": ("Art5(1)(f)", "infers emotions at the workplace or in education "
                                             "(outside medical or safety reasons)"),
    "g_biometric_categorisation_sensitive": ("Art5(1)(g)", "categorises people by biometrics to infer race, "
                                             "political opinions, union membership, beliefs, sex life or orientation"),
    "h_realtime_remote_biometric_id_law_enforcement": ("Art5(1)(h)", "performs real-time remote biometric "
                                                       "identification in public spaces for law enforcement"),
}
DEROGATIONS: dict[str, str] = {
    "narrow_procedural_task": "performs a narrow procedural task (Art. 6(3)(a))",
    "improves_completed_human_activity": "improves the result of a previously completed human activity (Art. 6(3)(b))",
    "detects_decision_patterns_without_replacing_review": "detects decision patterns or deviations without "
                                                          "replacing or influencing the human assessment (Art. 6(3)(c))",
    "preparatory_task": "performs a preparatory task to an assessment relevant to an Annex III use (Art. 6(3)(d))",
}
TRANSPARENCY: dict[str, str] = {
    "interacts_with_natural_persons": "interacts directly with people: they must be told they deal with an AI (Art. 50(1))",
    "generates_synthetic_content": "generates synthetic audio, image, video or text: outputs must be marked "
                                   "machine-readable (Art. 50(2))",
    "emotion_recognition_or_biometric_categorisation": "emotion recognition or biometric categorisation: "
                                                       "exposed people must be informed (Art. 50(3))",
    "deep_fake": "generates or manipulates deep fakes: disclose that content is artificial (Art. 50(4))",
    "generates_public_interest_text": "publishes AI-generated text on matters of public interest: disclose (Art. 50(4))",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SystemInfo(_Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    role: Literal["provider", "deployer", "both"] = "provider"
    deployer_is_public_body_or_public_service: bool = False


class Prohibited(_Strict):
    a_subliminal_manipulation: bool = False
    b_exploits_vulnerabilities: bool = False
    c_social_scoring: bool = False
    d_crime_prediction_by_profiling: bool = False
    e_untargeted_facial_scraping: bool = False
    f_emotion_recognition_work_education: bool = False
    g_biometric_categorisation_sensitive: bool = False
    h_realtime_remote_biometric_id_law_enforcement: bool = False


class Derogation(_Strict):
    narrow_procedural_task: bool = False
    improves_completed_human_activity: bool = False
    detects_decision_patterns_without_replacing_review: bool = False
    preparatory_task: bool = False
    performs_profiling: bool = False


class Transparency(_Strict):
    interacts_with_natural_persons: bool = False
    generates_synthetic_content: bool = False
    emotion_recognition_or_biometric_categorisation: bool = False
    deep_fake: bool = False
    generates_public_interest_text: bool = False


class GPAI(_Strict):
    general_purpose_model: bool = False
    systemic_risk: bool = False


class Questionnaire(_Strict):
    """The answers file for ``bastion govern classify --answers system.yaml``."""

    system: SystemInfo
    prohibited: Prohibited = Field(default_factory=Prohibited)
    safety_component_annex_i: bool = False
    annex_iii_area: AnnexIIIArea = "none"
    use_case: str = ""
    derogation: Derogation = Field(default_factory=Derogation)
    transparency: Transparency = Field(default_factory=Transparency)
    gpai: GPAI = Field(default_factory=GPAI)
    rationale: dict[str, str] = Field(default_factory=dict, description="free-text reasons per question key")


@dataclass
class Reason:
    question: str
    answer: Any
    article: str
    effect: str
    rationale: str = ""


@dataclass
class Obligation:
    article: str
    title: str
    applies_to: str
    applies_from: str
    note: str = ""


@dataclass
class Classification:
    system: str
    tier: Tier
    summary: str
    reasons: list[Reason] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    gpai: dict[str, bool] = field(default_factory=dict)
    answers_sha256: str = ""
    dates_note: str = DATES_NOTE
    disclaimer: str = "Decision support, not legal advice: a qualified person must confirm the tier."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROHIBITIONS_FROM = "2025-02-02"
GPAI_FROM = "2025-08-02"
GENERAL_FROM = "2026-08-02"
ANNEX_I_FROM = "2027-08-02"

_HIGH_RISK_PROVIDER = [
    ("Art9", "Risk management system across the lifecycle"),
    ("Art10", "Data and data governance for training, validation and test sets"),
    ("Art11", "Technical documentation (Annex IV) before placing on the market"),
    ("Art12", "Automatic event logging (record-keeping)"),
    ("Art13", "Transparency and instructions for use for deployers"),
    ("Art14", "Design for effective human oversight"),
    ("Art15", "Accuracy, robustness and cybersecurity, incl. resilience to poisoning and adversarial examples"),
    ("Art72", "Post-market monitoring system and plan"),
    ("Art73", "Report serious incidents to market surveillance authorities"),
]


TEMPLATE = """# EU AI Act questionnaire for 'bastion govern classify --answers FILE'. Answer true/false.
system:
  name: my-system
  description: What the system does, for whom.
  role: provider            # provider | deployer | both
  deployer_is_public_body_or_public_service: false
prohibited:                 # Art. 5(1) — any true makes the practice prohibited
  a_subliminal_manipulation: false
  b_exploits_vulnerabilities: false
  c_social_scoring: false
  d_crime_prediction_by_profiling: false
  e_untargeted_facial_scraping: false
  f_emotion_recognition_work_education: false
  g_biometric_categorisation_sensitive: false
  h_realtime_remote_biometric_id_law_enforcement: false
safety_component_annex_i: false   # Art. 6(1): safety component of a product under Annex I law
annex_iii_area: none        # none | biometrics | critical_infrastructure | education | employment |
                            # essential_services | law_enforcement | migration | justice_democracy
use_case: ""
derogation:                 # Art. 6(3) — only for Annex III systems
  narrow_procedural_task: false
  improves_completed_human_activity: false
  detects_decision_patterns_without_replacing_review: false
  preparatory_task: false
  performs_profiling: false  # profiling of natural persons: always high-risk
transparency:               # Art. 50
  interacts_with_natural_persons: false
  generates_synthetic_content: false
  emotion_recognition_or_biometric_categorisation: false
  deep_fake: false
  generates_public_interest_text: false
gpai:
  general_purpose_model: false
  systemic_risk: false
rationale: {}               # optional free text per question key, e.g. annex_iii_area: "ranks job applicants"
"""


def load_questionnaire(path: Path) -> tuple[Questionnaire, str]:
    """Read and validate the answers YAML; return it and the sha256 of its bytes."""
    if not path.is_file():
        raise InvalidInputError(f"answers file {path} does not exist")
    raw = path.read_bytes()
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with at least 'system: {{name: …}}'")
    try:
        return Questionnaire.model_validate(doc), hashlib.sha256(raw).hexdigest()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def classify(q: Questionnaire, answers_sha256: str = "") -> Classification:
    """Tier a system and list its obligations (see the module docstring for the rules)."""
    why = q.rationale
    reasons: list[Reason] = []
    obligations: list[Obligation] = [
        Obligation("Art4", "AI literacy: staff who operate or use the system are trained", "provider and deployer",
                   PROHIBITIONS_FROM),
    ]
    role = q.system.role
    hits = []
    for key, (article, text) in PROHIBITED.items():
        ans = getattr(q.prohibited, key)
        reasons.append(Reason(f"prohibited.{key}", ans, article,
                              f"PROHIBITED: the system {text}" if ans else f"not a prohibited practice: {text}",
                              why.get(f"prohibited.{key}", "")))
        if ans:
            hits.append(article)
    tier: Tier
    if hits:
        tier = "prohibited"
        obligations.append(Obligation("Art5", "Must not be placed on the market, put into service or used",
                                      "provider and deployer", PROHIBITIONS_FROM, ", ".join(hits)))
        summary = f"prohibited practice ({', '.join(hits)}): the system may not be offered or used in the EU"
    else:
        high_from: str | None = None
        derogated: list[str] = []
        if q.safety_component_annex_i:
            high_from = ANNEX_I_FROM
            reasons.append(Reason("safety_component_annex_i", True, "Art6(1)",
                                  "high-risk: safety component of a product under Annex I harmonisation law",
                                  why.get("safety_component_annex_i", "")))
        else:
            reasons.append(Reason("safety_component_annex_i", False, "Art6(1)", "not an Annex I safety component",
                                  why.get("safety_component_annex_i", "")))
        area = q.annex_iii_area
        if area != "none":
            derogations = [k for k in DEROGATIONS if getattr(q.derogation, k)]
            profiling = q.derogation.performs_profiling
            reasons.append(Reason("annex_iii_area", area, "Art6(2)",
                                  f"listed high-risk use: {ANNEX_III_TITLES[area]}", why.get("annex_iii_area", "")))
            for k in derogations:
                reasons.append(Reason(f"derogation.{k}", True, "Art6(3)", f"derogation condition: {DEROGATIONS[k]}",
                                      why.get(f"derogation.{k}", "")))
            if profiling:
                reasons.append(Reason("derogation.performs_profiling", True, "Art6(3)",
                                      "profiles natural persons: an Annex III system that profiles is always high-risk",
                                      why.get("derogation.performs_profiling", "")))
            if derogations and not profiling and high_from is None:
                derogated = derogations
                obligations.append(Obligation("Art6(3)", "Document the assessment that the system is not "
                                              "high-risk before placing it on the market (Art. 6(4)) and register "
                                              "it (Art. 49(2)); a national authority may ask for it",
                                              "provider", GENERAL_FROM))
            elif high_from is None:
                high_from = GENERAL_FROM
        else:
            reasons.append(Reason("annex_iii_area", "none", "Art6(2)", "not in an Annex III high-risk area",
                                  why.get("annex_iii_area", "")))
        if high_from is not None:
            tier = "high"
            if role in ("provider", "both"):
                obligations += [Obligation(a, t, "provider", high_from) for a, t in _HIGH_RISK_PROVIDER]
                obligations.append(Obligation("Art17", "Quality management system", "provider", high_from))
            if role in ("deployer", "both"):
                obligations.append(Obligation("Art26", "Use per instructions, assign human oversight, monitor, "
                                              "keep logs at least six months, inform workers", "deployer", high_from))
                obligations.append(Obligation("Art73", "Inform the provider and authorities of serious incidents "
                                              "(via Art. 26(5))", "deployer", high_from))
                if q.system.deployer_is_public_body_or_public_service or area == "essential_services":
                    obligations.append(Obligation("Art27", "Fundamental rights impact assessment before first use",
                                                  "deployer", high_from))
            summary = "high-risk system: Arts. 9–15 requirements apply" + (
                f" ({ANNEX_III_TITLES[area]})" if area != "none" else " (Annex I safety component)")
        else:
            tier = "minimal"
            summary = ("not high-risk: an Annex III use covered by the Art. 6(3) derogation ("
                       + ", ".join(k.replace("_", " ") for k in derogated) + "); document and register that assessment"
                       if derogated else
                       "minimal risk: no specific AI Act requirements beyond AI literacy and voluntary codes")
    transparency = [k for k in TRANSPARENCY if getattr(q.transparency, k)]
    for k in TRANSPARENCY:
        ans = getattr(q.transparency, k)
        reasons.append(Reason(f"transparency.{k}", ans, "Art50",
                              TRANSPARENCY[k] if ans else "no transparency duty from this case",
                              why.get(f"transparency.{k}", "")))
    if transparency and tier != "prohibited":
        obligations.append(Obligation("Art50", "Transparency: " + "; ".join(TRANSPARENCY[k] for k in transparency),
                                      "provider and deployer", GENERAL_FROM))
        if tier == "minimal":
            tier = "limited"
            summary = "limited risk: Art. 50 transparency obligations apply"
    if q.gpai.general_purpose_model:
        reasons.append(Reason("gpai.general_purpose_model", True, "Art53",
                              "general-purpose AI model: documentation, copyright policy, training-content summary",
                              why.get("gpai.general_purpose_model", "")))
        obligations.append(Obligation("Art53", "GPAI provider obligations (technical documentation, downstream "
                                      "information, copyright policy, training-data summary)", "provider", GPAI_FROM))
        if q.gpai.systemic_risk:
            reasons.append(Reason("gpai.systemic_risk", True, "Art55", "GPAI model with systemic risk",
                                  why.get("gpai.systemic_risk", "")))
            obligations.append(Obligation("Art55", "Model evaluation incl. adversarial testing, serious-incident "
                                          "reporting, cybersecurity protection", "provider", GPAI_FROM))
    return Classification(system=q.system.name, tier=tier, summary=summary, reasons=reasons,
                          obligations=obligations, gpai=q.gpai.model_dump(), answers_sha256=answers_sha256)


def save_classification(result: Classification, url: str | None = None) -> int:
    """Store a classification (evidence for BC-GV-01); returns its id."""
    from datetime import UTC, datetime

    from bastion.govern.store import ensure_schema
    from bastion.store.db import session_scope
    from bastion.store.models_govern import GovernClassification

    ensure_schema(url)
    with session_scope(url) as s:
        row = GovernClassification(system=result.system, tier=result.tier, answers_sha256=result.answers_sha256,
                                   result=result.to_dict(), created_at=datetime.now(UTC))
        s.add(row)
        s.flush()
        return int(row.id)


def latest_classification(system: str, url: str | None = None) -> dict[str, Any] | None:
    """The most recent stored classification of ``system`` (its result dict), or ``None``."""
    from sqlalchemy import select

    from bastion.govern.store import ensure_schema
    from bastion.store.db import session_scope
    from bastion.store.models_govern import GovernClassification

    ensure_schema(url)
    with session_scope(url) as s:
        row = s.scalars(select(GovernClassification).where(GovernClassification.system == system)
                        .order_by(GovernClassification.id.desc()).limit(1)).first()
        if row is None:
            return None
        return {**row.result, "id": row.id, "created_at": row.created_at.isoformat()}
