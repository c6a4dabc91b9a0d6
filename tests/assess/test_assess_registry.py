"""``@check`` declares and registers a check; ids are unique; the executor (not the check) owns timing, errors and
progress; third-party ``Check`` objects still come in through ``register_check`` and the ``bastion.checks`` entry point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.assess import registry
from bastion.assess.executors.base import RunSpec, run_check
from bastion.assess.registry import (
    CHECKS,
    Check,
    CheckContext,
    DeclaredCheck,
    Outcome,
    check,
    get_check,
    load_checks,
    register_check,
    worst_status,
)
from bastion.assess.runner import plan_assessment, run_assessment
from bastion.core.errors import RegistryError
from bastion.core.results import CheckResult, Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

CONTROLS = ["owasp-ml:ML01:2023"]


class FakeClock:
    """``time.perf_counter`` for the executor: it moves only when a check says time has passed."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from bastion.assess.executors import base

    fake = FakeClock()
    monkeypatch.setattr(base.time, "perf_counter", fake)
    return fake


@pytest.fixture
def declared() -> Iterator[list[str]]:
    """Ids of the checks a test declares; unregistered afterwards."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        CHECKS.pop(cid, None)


def _declare(ids: list[str], cid: str, measure: Any, **kw: Any) -> DeclaredCheck:
    ids.append(cid)
    return check(id=cid, title=f"Declared {cid}", controls=CONTROLS, profiles=(), **kw)(measure)


def test_a_declared_check_is_registered_and_its_result_carries_the_declared_header(declared, digits_target) -> None:  # type: ignore[no-untyped-def]
    def measure(target: Target, ctx: CheckContext) -> Outcome:
        """Counts the evaluation inputs."""
        n = len(target.data.eval_split()[0])
        finding = Finding("test_assess.declared.many", Severity.MEDIUM, f"{n} inputs", {"n": n}, "fewer", CONTROLS)
        return Outcome(worst_status([finding]), f"{n} inputs", {"inputs": n}, {"seed": ctx.seed}, [finding])

    made = _declare(declared, "test_assess.declared", measure)

    assert get_check("test_assess.declared") is made and isinstance(made, Check)
    assert made.title == "Declared test_assess.declared" and made.profiles == () and made.applies(digits_target)
    assert made.__doc__ == "Counts the evaluation inputs."
    res = made.run(digits_target, CheckContext(seed=4))
    n = len(digits_target.data.eval_split()[0])
    assert isinstance(res, CheckResult)
    assert res.to_dict() == {
        "check_id": "test_assess.declared", "title": "Declared test_assess.declared", "status": "warn",
        "summary": f"{n} inputs", "metrics": {"inputs": n}, "params": {"seed": 4},
        "findings": [{"id": "test_assess.declared.many", "severity": "medium", "title": f"{n} inputs",
                      "evidence": {"n": n}, "recommendation": "fewer", "controls": CONTROLS}],
        "artifacts": {}, "controls": CONTROLS, "duration_s": 0.0, "error": None,
    }


def test_applies_and_plan_come_from_the_declaration(declared, digits_target) -> None:  # type: ignore[no-untyped-def]
    def measure(target: Target, ctx: CheckContext) -> Outcome:
        return Outcome(Status.PASS)

    never = _declare(declared, "test_assess.never", measure, applies=lambda target: False)
    _declare(declared, "test_assess.planned", measure, plan=lambda target, ctx: {"eps": [0.1], "seed": ctx.seed})

    assert not never.applies(digits_target) and never.plan is None
    plan = plan_assessment(digits_target, "quick", seed=2, only=["test_assess."])
    assert plan["checks"] == [{"id": "test_assess.planned", "title": "Declared test_assess.planned",
                               "settings": {"eps": [0.1], "seed": 2}}]  # the check that does not apply is not planned


def test_a_second_check_with_the_same_id_is_refused(declared) -> None:  # type: ignore[no-untyped-def]
    def measure(target: Target, ctx: CheckContext) -> Outcome:
        return Outcome(Status.PASS)

    first = _declare(declared, "test_assess.twice", measure)
    with pytest.raises(RegistryError, match=r"'test_assess\.twice' is already registered"):
        check(id="test_assess.twice", title="again", controls=CONTROLS)(measure)
    with pytest.raises(RegistryError, match=r"'data\.pii' is already registered"):
        check(id="data.pii", title="a second PII check", controls=CONTROLS)(measure)
    assert get_check("test_assess.twice") is first
    assert register_check(first) is first  # the same object again is not a second check


def test_the_executor_times_a_check_that_does_not_time_itself(declared, clock, digits_target) -> None:  # type: ignore[no-untyped-def]
    def measure(target: Target, ctx: CheckContext) -> Outcome:
        clock.now += 2.5  # the measurement takes 2.5 s
        return Outcome(Status.PASS, "done")

    made = _declare(declared, "test_assess.slow", measure)
    res = run_check(made, digits_target, RunSpec())

    assert res.status == Status.PASS and res.duration_s == 2.5
    assert made.run(digits_target, CheckContext()).duration_s == 0.0  # the check alone carries no timing


def test_a_check_that_raises_becomes_an_error_result_with_its_duration(declared, clock, digits_target) -> None:  # type: ignore[no-untyped-def]
    def measure(target: Target, ctx: CheckContext) -> Outcome:
        clock.now += 1.25
        raise RuntimeError("the attack diverged")

    def wrong_type(target: Target, ctx: CheckContext) -> Outcome:
        return CheckResult("test_assess.wrong", "wrong", Status.PASS)  # type: ignore[return-value]

    res = run_check(_declare(declared, "test_assess.raises", measure), digits_target, RunSpec())
    assert res.status == Status.ERROR and res.duration_s == 1.25
    assert res.error is not None and res.error.startswith("RuntimeError: the attack diverged (at test_assess_registry.py:")
    assert res.summary == "the check failed to run: RuntimeError: the attack diverged"
    assert (res.check_id, res.title, res.controls) == ("test_assess.raises", "Declared test_assess.raises", CONTROLS)

    wrong = run_check(_declare(declared, "test_assess.wrong", wrong_type), digits_target, RunSpec())
    assert wrong.status == Status.ERROR and "returned CheckResult, not an Outcome" in (wrong.error or "")


def test_progress_events_come_from_the_executor_for_every_check(declared, digits_target, recorder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def steps(target: Target, ctx: CheckContext) -> Outcome:
        ctx.progress(1, 2)
        ctx.progress(2, 2)
        return Outcome(Status.PASS)

    def boom(target: Target, ctx: CheckContext) -> Outcome:
        raise ValueError("no")

    _declare(declared, "test_assess.a_steps", steps)
    _declare(declared, "test_assess.b_boom", boom)
    a = run_assessment(digits_target, "quick", out_dir=tmp_path, only=["test_assess."], progress=recorder)

    assert [r.status for r in a.results] == [Status.PASS, Status.ERROR]
    assert recorder.events == [
        ("started", "test_assess.a_steps"), ("progress", "test_assess.a_steps:1/2"),
        ("progress", "test_assess.a_steps:2/2"), ("finished", "test_assess.a_steps"),
        ("started", "test_assess.b_boom"), ("finished", "test_assess.b_boom"),
    ]


def test_builtin_checks_are_declared_and_a_third_party_entry_point_still_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = load_checks()
    assert all(isinstance(builtin[cid], DeclaredCheck) for cid in builtin if not cid.startswith("test_"))
    assert {"data.pii", "evasion.robustness_curve", "privacy.membership", "supply_chain.scan"} <= set(builtin)

    class ThirdParty:  # a plain Check class, as a plugin ships it
        id = "plugin_test.third_party"
        title = "Third-party check"
        controls = CONTROLS
        profiles = ("quick",)

        def applies(self, target: Target) -> bool:
            return True

        def run(self, target: Target, ctx: CheckContext) -> CheckResult:
            return CheckResult(self.id, self.title, Status.PASS)

    class EntryPoint:
        def load(self) -> type:
            return ThirdParty

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()] if group == "bastion.checks" else [])
    try:
        assert isinstance(load_checks()["plugin_test.third_party"], ThirdParty)
    finally:
        CHECKS.pop("plugin_test.third_party", None)
