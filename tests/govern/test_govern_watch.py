"""Continuous re-assessment: stored runs, history and trend, due-ness (schedule, model change, Bastion
upgrade, catalog change), incidents on new or worse findings, demotion by policy, and the lease that
keeps two runners from assessing the same model at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bastion.assess.history import diff, get_run, runs, trend
from bastion.core.errors import ConfigError


@pytest.fixture
def watched(bastion_home: Path, tmp_path: Path) -> dict[str, object]:
    from bastion.artifacts.signing import sign_model
    from bastion.demos.tour import write_tour
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.registry import Registry
    from bastion.govern.watch import add_watch
    from bastion.store.db import upgrade

    upgrade()
    t = tmp_path / "t"
    write_tour(t)
    for m in ("digits.pt", "digits-v2.pt"):
        sign_model(t / m, t / "keys" / "release")
    cfg = GatewayConfig.model_validate({"registry": {"trusted_keys": [str(t / "keys" / "release.pub")]}})
    reg = Registry(cfg)
    reg.push(t / "digits.pt", "digits")
    # evasion only, few samples: the undefended CNN has a high finding at eps 0.1 on every run
    add_watch("digits", str(t / "digits.npz"), profile="quick", every="7d", only=["evasion.robustness"],
              demote=True, demote_at="high", config=cfg)
    return {"tour": t, "cfg": cfg, "reg": reg}


def test_policy_inputs_are_checked(bastion_home: Path) -> None:
    from bastion.govern.watch import parse_every, parse_triggers

    assert parse_every("7d") == 7 * 86400 and parse_every("90s") == 90 and parse_every("1.5h") == 5400
    for bad in ("7", "-1d", "soon", "3y"):
        with pytest.raises(ConfigError, match="--every"):
            parse_every(bad)
    with pytest.raises(ConfigError, match="--on 'model-changed'"):
        parse_triggers("model-changed,catalog-change")


def test_first_run_then_not_due_then_upgrade_and_catalog_change_rerun(watched: dict[str, object]) -> None:
    from bastion.govern.watch import run_due

    cfg = watched["cfg"]
    first = run_due(config=cfg)
    assert [(o.status, o.reasons) for o in first] == [("ran", ["first run"])]
    assert first[0].incident_id is None, "the first run has nothing to regress from"
    assert [o.status for o in run_due(config=cfg)] == ["not-due"]
    up = run_due(config=cfg, bastion_version="99.0.0")
    assert up[0].status == "ran" and up[0].reasons == [f"bastion-upgrade ({get_run(first[0].run_id).bastion_version} "
                                                       "→ 99.0.0)"]  # type: ignore[arg-type]
    assert up[0].incident_id is None, "the same findings as before: nothing new, no incident"
    # the upgraded run is made to look clean: the catalog change's re-run then has a new high finding
    from bastion.respond.incidents import get_incident
    from bastion.store.db import session_scope
    from bastion.store.models_assess import AssessRun

    with session_scope() as s:
        row = s.get(AssessRun, up[0].run_id)
        row.findings, row.n_findings, row.max_severity = [], 0, None
    cat = run_due(config=cfg, bastion_version="99.0.0", catalog="2.0.0")
    assert cat[0].status == "ran" and cat[0].reasons[0].startswith("catalog-change")
    assert cat[0].diff["new"] and cat[0].incident_id is not None
    inc = get_incident(cat[0].incident_id)
    assert inc["alert_type"] == "reassessment" and inc["evidence"]["diff"]["new"] == cat[0].diff["new"]
    assert inc["evidence"]["catalog_version"][1] == "2.0.0" and inc["evidence"]["previous_run"] == up[0].run_id
    # demotion is on, but v1 is the only version: the failed roll-back is recorded, not hidden
    assert cat[0].demoted is not None and "error" in cat[0].demoted and "demote production" in inc["actions_done"]
    # the schedule: due again once --every has passed (decided without paying for a fifth run)
    from bastion.govern.watch import due_reasons
    from bastion.store.models_assess import WatchPolicy

    with session_scope() as s:
        policy = s.get(WatchPolicy, "digits")
        sha = get_run(cat[0].run_id).model_sha256  # type: ignore[arg-type]
        assert policy is not None and due_reasons(policy, sha, "99.0.0", "2.0.0", datetime.now(UTC)) == []
        later = due_reasons(policy, sha, "99.0.0", "2.0.0", datetime.now(UTC) + timedelta(days=8))
    assert later == ["schedule (every 604800 s)"]
    history = runs("digits")
    assert len(history) == 3 and {r.source for r in history} == {"watch"}
    assert trend(history[1], history[0]) in ("same", "better", "worse")


def test_model_change_with_a_new_finding_opens_an_incident_and_demotes(watched: dict[str, object]) -> None:
    from bastion.govern.watch import run_due
    from bastion.respond.incidents import get_incident

    cfg, reg, t = watched["cfg"], watched["reg"], watched["tour"]
    base = run_due(config=cfg)[0]
    assert base.status == "ran"
    # a new production version whose stored predecessor run is made to look clean: the re-run's high
    # evasion finding is then new, so an incident opens and production is demoted to v1
    from bastion.store.db import session_scope
    from bastion.store.models_assess import AssessRun

    with session_scope() as s:
        row = s.get(AssessRun, base.run_id)
        row.findings, row.n_findings, row.max_severity = [], 0, None
    reg.push(t / "digits-v2.pt", "digits", promote=True)  # type: ignore[union-attr]
    out = run_due(config=cfg)[0]
    assert out.status == "ran" and out.reasons[0].startswith("model-change")
    assert out.diff["new"] and out.incident_id is not None
    inc = get_incident(out.incident_id)
    assert inc["alert_type"] == "reassessment" and inc["evidence"]["diff"]["new"]
    assert inc["evidence"]["previous_run"] == base.run_id and inc["evidence"]["run"] == out.run_id
    assert out.demoted is not None and "error" not in out.demoted
    assert reg.resolve("digits").version == "1"  # type: ignore[union-attr]
    assert "demote production" in inc["actions_done"]


def test_two_runners_at_once_assess_once(watched: dict[str, object]) -> None:
    from bastion.govern.watch import run_due

    cfg = watched["cfg"]
    results: list[list[str]] = []

    def go() -> None:
        results.append([o.status for o in run_due(config=cfg)])

    threads = [threading.Thread(target=go) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(s for r in results for s in r)
    assert statuses.count("ran") == 1 and len(runs("digits")) == 1, statuses  # the other was leased or not due

    # the other runner reads the policy, then the first one runs and releases before the lease is taken:
    # under the lease the run is no longer due, so it is not run twice
    from bastion.govern import watch

    take, raced = watch._take_lease, []

    def racing(model: str, owner: str, now: datetime, db_url: str | None) -> bool:
        if not raced:
            raced.append("")
            raced.extend(o.status for o in run_due(config=cfg, catalog="2.0.0"))
        return take(model, owner, now, db_url)

    watch._take_lease = racing  # type: ignore[assignment]
    try:
        late = run_due(config=cfg, catalog="2.0.0")
    finally:
        watch._take_lease = take  # type: ignore[assignment]
    assert raced[1:] == ["ran"] and [o.status for o in late] == ["not-due"] and len(runs("digits")) == 2


def test_serve_runs_what_is_due_then_sleeps_and_stops(watched: dict[str, object]) -> None:
    from bastion.govern.watch import serve

    logs: list[str] = []
    sleeps: list[float] = []
    passes = serve(interval_s=30, max_passes=3, config=watched["cfg"], log=logs.append, sleep=sleeps.append)
    assert passes == 3 and sleeps == [30, 30], "bounded: three passes, a sleep between each"
    ran = [m for m in logs if m.startswith("digits: ran")]
    assert len(ran) == 1 and len(runs("digits")) == 1, logs  # first pass runs it; the next two find it not due


def test_record_diff_and_unknown_model(watched: dict[str, object]) -> None:
    from bastion.govern.watch import run_due

    with pytest.raises(ConfigError, match="not watched"):
        run_due("nope", config=watched["cfg"])
    from bastion.assess.history import RunInfo

    a = RunInfo(1, "m", "x", None, "1", "1", "quick", "v", "high", 2, [
        {"id": "a", "severity": "high"}, {"id": "b", "severity": "low"}], "assess", "", "t")
    b = RunInfo(2, "m", "x", None, "1", "1", "quick", "v", "critical", 2, [
        {"id": "a", "severity": "critical"}, {"id": "c", "severity": "low"}], "assess", "", "t")
    d = diff(a, b)
    assert [f["id"] for f in d["new"]] == ["c"] and [f["id"] for f in d["worse"]] == ["a"]
    assert [f["id"] for f in d["gone"]] == ["b"] and trend(a, b) == "worse" and trend(None, b) == "first"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from bastion.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_assess_stores_every_run_history_shows_the_trend_and_compare_last(
        watched: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = watched["tour"]
    assert isinstance(t, Path)
    base = ["assess", "--model", str(t / "digits.pt"), "--data", str(t / "digits.npz"), "--profile", "quick"]
    code, _, err = _cli([*base, "--only", "supply_chain", "--out", str(tmp_path / "a"), "--compare", "last"], capsys)
    assert code == 2 and "no earlier stored assessment of digits.pt" in err
    code, _, _ = _cli([*base, "--only", "evasion.robustness", "--out", str(tmp_path / "b")], capsys)
    assert code == 1
    code, out, _ = _cli([*base, "--only", "supply_chain", "--out", str(tmp_path / "c"), "--compare", "last",
                         "--format", "json"], capsys)
    assert code == 0 and '"stored_run"' in out and (tmp_path / "c" / "compare.json").is_file()
    code, out, _ = _cli(["history", "digits.pt"], capsys)
    assert code == 0 and "better" in out and "first" in out  # a run with only low findings after a high one
    code, out, _ = _cli(["watch", "list"], capsys)
    assert code == 0 and "digits" in out and "now" in out
    code, out, _ = _cli(["watch", "run"], capsys)
    assert code == 0 and "digits: ran (first run)" in out
    code, out, _ = _cli(["watch", "run"], capsys)
    assert code == 0 and "digits: not-due" in out


def test_runs_and_the_lease_on_postgresql(pg_schema: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same store code on PostgreSQL: record, history, and a lease only one writer wins."""
    from bastion.core.results import Assessment
    from bastion.govern import watch
    from bastion.store.db import session_scope, upgrade
    from bastion.store.models_assess import WatchPolicy

    with pg_schema("watch") as url:  # type: ignore[operator]
        upgrade(url)
        a = Assessment(target={"name": "m", "fingerprints": {"model": "ab" * 32}}, profile="quick", seed=0)
        first = watch_record(a, url)
        second = watch_record(a, url)
        assert [r.id for r in runs("m", db_url=url)] == [second, first]
        now = datetime.now(UTC)
        with session_scope(url) as s:
            s.add(WatchPolicy(model="m", data="x.npz", profile="quick", only=[], every_s=60.0, triggers=[],
                              demote=False, demote_at="high", created_at=now, created_by="t"))
        assert watch._take_lease("m", "one", now, url) is True
        assert watch._take_lease("m", "two", now, url) is False, "a held lease is not taken twice"
        assert watch._take_lease("m", "three", now + timedelta(seconds=watch.LEASE_S + 1), url) is True
        watch._release_lease("m", "three", url, second, now)
        with session_scope(url) as s:
            row = s.get(WatchPolicy, "m")
            assert row is not None and row.lease_owner is None and row.last_run_id == second


def watch_record(a: object, url: str) -> int:
    from bastion.assess.history import record

    return record(a, "m", catalog_version="1.0.0", db_url=url)  # type: ignore[arg-type]
