"""``run_assessment``: choose the checks, run them through an executor, collect an ``Assessment``.

Each check's artifacts (PNG plots, galleries, npz) are written to
``OUT/artifacts/<check_id>/<name>`` and their paths (relative to ``OUT``) recorded in
``CheckResult.artifact_paths``. An exception inside a check becomes an ``error`` result; the run
goes on. Reports (JSON, HTML, SARIF) are written by ``bastion.report.write_reports``.

Examples:
    >>> from bastion.assess.target import build_target                     # doctest: +SKIP
    >>> a = run_assessment(build_target(demo="digits"), "quick", 0, "out")  # doctest: +SKIP
    >>> a.summary()["verdict"]                                             # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.assess.executors import Executor, NullReporter, ProgressReporter, RunSpec, get_executor
from bastion.assess.registry import (
    PROFILES,
    Check,
    CheckContext,
    Profile,
    checks_for,
    get_check,
    load_checks,
    matches_only,
)
from bastion.core.errors import ConfigError, RegistryError
from bastion.core.paths import atomic_write_bytes
from bastion.core.progress import CheckProgress
from bastion.core.results import Assessment, CheckResult
from bastion.core.severity import Status
from bastion.core.target import Target

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHECK_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")


def _conforming(result: CheckResult) -> CheckResult:
    """A result that breaks the report schema becomes an ``error`` result naming the violations."""
    from bastion.report.json_report import result_schema_errors

    errors = result_schema_errors(result.to_dict())
    if not errors:
        return result
    return CheckResult(
        check_id=result.check_id, title=result.title, status=Status.ERROR, controls=list(result.controls),
        duration_s=result.duration_s, summary="the check's result does not match the assessment schema",
        error="invalid result: " + "; ".join(errors[:3]),
    )


def select_checks(target: Target, profile: Profile, only: Sequence[str] | None = None) -> list[Check]:
    """The checks to run; every id in ``only`` must name a check or a check-id prefix."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    only_list = [o for o in (only or []) if o]
    if only_list:
        known = load_checks()
        for o in only_list:
            if not any(matches_only(cid, o) for cid in known):
                get_check(o)  # raises RegistryError naming the known ids
    chosen = checks_for(target, profile, only_list or None)
    bad = [c.id for c in chosen if not _CHECK_ID.match(c.id)]
    if bad:
        raise RegistryError(f"check id(s) {', '.join(map(repr, bad))} must look like 'area.name' (lower case)")
    return chosen


def plan_assessment(
    target: Target, profile: Profile = "standard", seed: int = 0, only: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``run_assessment`` would do, without attacking anything: the target, its resolved input range,
    torch threads, and every selected check with its settings (checks with a ``plan(target, ctx)`` method
    report them, e.g. the evasion ε grid)."""
    import torch

    ctx = CheckContext(profile=profile, seed=seed, options=dict(options or {}))
    checks = []
    for c in select_checks(target, profile, only):
        row: dict[str, Any] = {"id": c.id, "title": c.title}
        plan = getattr(c, "plan", None)
        if callable(plan):
            row["settings"] = plan(target, ctx)
        checks.append(row)
    return {"target": target.describe(), "input_range": target.input_range().to_dict(),
            "input_range_text": target.input_range().describe(), "profile": profile, "seed": seed,
            "threads": torch.get_num_threads(), "checks": checks}


def write_artifacts(result: CheckResult, out_dir: Path) -> None:
    """Write ``result.artifacts`` under ``out_dir/artifacts/<check_id>/`` and fill ``artifact_paths``.

    Files a previous run left in that check's folder are removed first, so the folder always
    matches the report.
    """
    for name in result.artifacts:
        if not _SAFE_NAME.match(name) or ".." in name:
            raise ConfigError(f"check {result.check_id} produced an artifact with an unsafe name {name!r}")
    if not _SAFE_NAME.match(result.check_id):
        raise ConfigError(f"check id {result.check_id!r} cannot name an artifact folder")
    folder = out_dir / "artifacts" / result.check_id
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    for name, data in result.artifacts.items():
        rel = Path("artifacts") / result.check_id / name
        atomic_write_bytes(out_dir / rel, bytes(data), mode=0o644)
        result.artifact_paths[name] = rel.as_posix()


def run_assessment(
    target: Target,
    profile: Profile = "standard",
    seed: int = 0,
    out_dir: str | Path | None = None,
    only: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    executor: Executor | str | None = None,
    progress: bool | ProgressReporter = True,
) -> Assessment:
    """Run the checks that apply to ``target`` in ``profile`` and return the ``Assessment``.

    ``only`` restricts to check ids or id prefixes (``evasion`` = every ``evasion.*`` check).
    ``progress`` is ``True`` (rich bars on stderr), ``False``, or a ``ProgressReporter``.
    """
    checks = select_checks(target, profile, only)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ex = get_executor(executor or "local") if executor is None or isinstance(executor, str) else executor
    spec = RunSpec(profile=profile, seed=seed, out_dir=out, options=dict(options or {}))
    t0 = time.perf_counter()
    if progress is True and checks:
        with CheckProgress() as reporter:
            results = ex.run(checks, target, spec, reporter)
    else:
        rep: ProgressReporter = progress if not isinstance(progress, bool) else NullReporter()
        results = ex.run(checks, target, spec, rep)
    results = [_conforming(r) for r in results]
    for result in results:
        if out is not None and result.artifacts:
            try:
                write_artifacts(result, out)
            except ConfigError as exc:
                result.status = Status.ERROR
                result.error = str(exc)
    return Assessment(
        target=target.describe(), profile=profile, seed=seed, results=results,
        duration_s=time.perf_counter() - t0,
    )
