"""Risk register: scoring, residual risk from passing evidence, history, seeding, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.errors import InvalidInputError, RegistryError
from bastion.govern.risk import (
    add_risk,
    band,
    list_risks,
    residual_likelihood,
    risk_history,
    seed_risks,
    update_risk,
)


def test_bands_and_residual() -> None:
    assert [band(s) for s in (1, 4, 5, 9, 10, 15, 16, 25)] == ["low", "low", "medium", "medium", "high", "high",
                                                               "critical", "critical"]
    assert residual_likelihood(4, ["pass", "warn", "pass"]) == 2
    assert residual_likelihood(2, ["pass", "pass", "pass"]) == 1
    assert residual_likelihood(3, ["fail", "no evidence"]) == 3


def test_add_update_history_and_residual(bastion_home: Path) -> None:
    rid = add_risk("Model theft via API", 4, 3, controls=["BC-EX-01", "BC-AC-01"], owner="alice", system="loans",
                   review_date="2020-01-01")
    views = list_risks("loans", {"BC-EX-01": "pass", "BC-AC-01": "fail"})
    v = next(x for x in views if x.id == rid)
    assert (v.inherent, v.residual, v.controls_passing) == (12, 9, ["BC-EX-01"])
    assert v.review_overdue
    diff = update_risk(rid, actor="bob", owner="carol", likelihood=2)
    assert diff == {"owner": ["alice", "carol"], "likelihood": [4, 2]}
    assert update_risk(rid, actor="bob", owner="carol") == {}
    hist = risk_history(rid)
    assert [h["action"] for h in hist] == ["create", "update"]
    assert hist[1]["changed_by"] == "bob" and hist[1]["changes"]["owner"] == ["alice", "carol"]


def test_bad_input_is_refused(bastion_home: Path) -> None:
    with pytest.raises(InvalidInputError, match="likelihood"):
        add_risk("x", 7, 2)
    with pytest.raises(RegistryError, match="BC-NOPE-01"):
        add_risk("x", 2, 2, controls=["BC-NOPE-01"])
    rid = add_risk("y", 2, 2)
    with pytest.raises(InvalidInputError, match="status"):
        update_risk(rid, status="done")
    with pytest.raises(InvalidInputError, match="no risk"):
        update_risk(99999, owner="z")


def test_seed_from_catalog_and_findings_is_idempotent(bastion_home: Path, assessment_factory) -> None:
    make_assessment = assessment_factory
    first = seed_risks("digits", [make_assessment()])
    assert first["created"] > 20
    again = seed_risks("digits", [make_assessment()])
    assert again == {"created": 0, "existing": first["created"]}
    finding_risks = [v for v in list_risks("digits") if v.source == "finding"]
    assert len(finding_risks) == 1 and finding_risks[0].control_ids == ["BC-EV-01"]


def test_risks_cli(cli, bastion_home: Path, assessment_file: Path) -> None:
    res = cli(["govern", "risks", "add", "--title", "Drift", "-l", "3", "-i", "3", "--control",
                              "BC-MO-01", "--owner", "ops", "--format", "json"])
    assert res.exit_code == 0, res.output
    rid = json.loads(res.stdout)["id"]
    res = cli(["govern", "risks", "update", str(rid), "--status", "mitigated", "--format", "json"])
    assert json.loads(res.stdout)["changes"] == {"status": ["open", "mitigated"]}
    res = cli(["govern", "risks", "seed", "--assessment", str(assessment_file), "--format", "json"])
    assert json.loads(res.stdout)["created"] > 0
    res = cli(["govern", "risks", "list", "--assessment", str(assessment_file), "--format", "json"])
    risks = json.loads(res.stdout)["risks"]
    scan = next(r for r in risks if r["control_ids"] == ["BC-SC-01"])
    assert scan["residual"] < scan["inherent"]  # supply_chain.scan passed in the assessment
    bad = cli(["govern", "risks", "update", "424242", "--owner", "x"])
    assert bad.exit_code == 2


@given(st.integers(1, 5), st.lists(st.sampled_from(["pass", "warn", "fail", "no evidence"]), max_size=6))
def test_residual_never_exceeds_inherent_and_stays_in_range(likelihood: int, statuses: list[str]) -> None:
    r = residual_likelihood(likelihood, statuses)
    assert 1 <= r <= likelihood
    assert r == max(1, likelihood - statuses.count("pass"))
