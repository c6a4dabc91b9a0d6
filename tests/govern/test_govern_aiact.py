"""EU AI Act tiering: prohibited practices, Annex III with and without Art. 6(3) derogations, Art. 50, GPAI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.core.errors import ConfigError
from bastion.govern.aiact import PROHIBITED, Questionnaire, classify, load_questionnaire


def _q(**kw: object) -> Questionnaire:
    return Questionnaire.model_validate({"system": {"name": "s"}, **kw})


@pytest.mark.parametrize("key", sorted(PROHIBITED))
def test_each_prohibited_practice_gives_prohibited(key: str) -> None:
    result = classify(_q(prohibited={key: True}, annex_iii_area="employment"))
    assert result.tier == "prohibited"
    art5 = [o for o in result.obligations if o.article == "Art5"]
    assert art5 and art5[0].applies_from == "2025-02-02" and PROHIBITED[key][0] in art5[0].note


def test_annex_iii_area_is_high_risk_with_provider_obligations_and_dates() -> None:
    result = classify(_q(annex_iii_area="essential_services", system={"name": "loans", "role": "both"}))
    assert result.tier == "high"
    arts = {o.article: o for o in result.obligations}
    for art in ("Art9", "Art10", "Art11", "Art12", "Art13", "Art14", "Art15", "Art26", "Art27", "Art72", "Art73"):
        assert art in arts, art
    assert arts["Art15"].applies_from == "2026-08-02"
    assert arts["Art4"].applies_from == "2025-02-02"
    assert any(r.article == "Art6(2)" and r.answer == "essential_services" for r in result.reasons)


def test_derogation_lowers_tier_unless_profiling() -> None:
    derogated = classify(_q(annex_iii_area="employment", derogation={"preparatory_task": True}))
    assert derogated.tier == "minimal"
    assert any(o.article == "Art6(3)" for o in derogated.obligations)
    profiling = classify(_q(annex_iii_area="employment",
                            derogation={"preparatory_task": True, "performs_profiling": True}))
    assert profiling.tier == "high"


def test_annex_i_safety_component_applies_later() -> None:
    result = classify(_q(safety_component_annex_i=True))
    assert result.tier == "high"
    assert {o.applies_from for o in result.obligations if o.article == "Art9"} == {"2027-08-02"}


def test_transparency_and_gpai() -> None:
    chat = classify(_q(transparency={"interacts_with_natural_persons": True}, gpai={"general_purpose_model": True,
                                                                                   "systemic_risk": True}))
    assert chat.tier == "limited"
    arts = {o.article: o.applies_from for o in chat.obligations}
    assert arts["Art50"] == "2026-08-02" and arts["Art53"] == "2025-08-02" and "Art55" in arts
    assert classify(_q()).tier == "minimal"


def test_bad_answers_name_the_field(write_answers: Callable[[dict], Path]) -> None:
    with pytest.raises(ConfigError, match="annex_iii_area"):
        load_questionnaire(write_answers({"system": {"name": "x"}, "annex_iii_area": "weather"}))
    with pytest.raises(ConfigError, match="social_scorin"):
        load_questionnaire(write_answers({"system": {"name": "x"}, "prohibited": {"social_scorin": True}}))


def test_classify_cli_json_and_bad_input(cli, bastion_home: Path, write_answers: Callable[[dict], Path]) -> None:
    path = write_answers({"system": {"name": "cv-screening", "role": "deployer"}, "annex_iii_area": "employment",
                          "rationale": {"annex_iii_area": "ranks job applicants"}})
    res = cli(["govern", "classify", "--answers", str(path), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["tier"] == "high" and doc["id"] >= 1
    assert any(r["rationale"] == "ranks job applicants" for r in doc["reasons"])
    assert {"Art26", "Art73"} <= {o["article"] for o in doc["obligations"]}
    bad = cli(["govern", "classify", "--answers", str(path.with_name("missing.yaml"))])
    assert bad.exit_code == 2


def test_template_is_a_valid_minimal_questionnaire(cli, bastion_home: Path, tmp_path: Path) -> None:
    res = cli(["govern", "classify", "--template"])
    assert res.exit_code == 0
    path = tmp_path / "t.yaml"
    path.write_text(res.stdout)
    q, _ = load_questionnaire(path)
    assert classify(q).tier == "minimal"
    assert cli(["govern", "classify"]).exit_code == 2
