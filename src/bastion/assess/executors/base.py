"""The ``Executor`` interface: how an assessment runs its checks.

An executor takes the chosen checks, the target and a ``RunSpec`` (profile, seed, output dir,
options), runs every check through :func:`run_check` and returns the results in the order of
``checks``. ``run_check`` is where the bookkeeping of every check lives, so checks hold only their
measurement: it times the check (``duration_s``), turns an exception into an ``error`` result
(:func:`error_result`), fills the id, title and controls a result leaves empty, and tells the
``ProgressReporter`` when the check starts, how far it is (``ctx.progress``) and how it ended.
``LocalExecutor`` runs checks one after another in this process; a cluster executor (e.g. Ray) ships
``(check id, target, spec)`` to workers, where ``run_check`` runs without a reporter, and reports
``started``/``finished`` itself as tasks are sent and results come back.

To add one: implement ``name`` and ``run`` and register the class in
``bastion.assess.executors.EXECUTORS`` (or a module ``bastion.assess.executors.<name>`` defining
``EXECUTOR``), then ``bastion assess --executor <name>`` picks it up.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bastion.assess.registry import Check, CheckContext, Profile
from bastion.core.results import CheckResult
from bastion.core.severity import Status
from bastion.core.target import Target


@dataclass
class RunSpec:
    """What every check of one run shares (plain data, picklable for remote executors)."""

    profile: Profile = "standard"
    seed: int = 0
    out_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)


class ProgressReporter(Protocol):
    """Receives progress events; the CLI draws one progress bar per check from them."""

    def started(self, check: Check) -> None: ...

    def progress(self, check_id: str, done: float, total: float) -> None: ...

    def finished(self, result: CheckResult) -> None: ...


class NullReporter:
    """A reporter that ignores every event."""

    def started(self, check: Check) -> None:
        return None

    def progress(self, check_id: str, done: float, total: float) -> None:
        return None

    def finished(self, result: CheckResult) -> None:
        return None


@runtime_checkable
class Executor(Protocol):
    """Runs checks on a target; see the module docstring."""

    name: str

    def run(
        self, checks: Sequence[Check], target: Target, spec: RunSpec, reporter: ProgressReporter
    ) -> list[CheckResult]: ...


TIMING_KEYS = ("seconds", "duration", "_s", "per_s", "throughput")


def untimed(metrics: Any) -> Any:
    """``metrics`` without wall-clock timings, at any depth (they legitimately differ between runs
    and machines): what two executors must agree on for the same seed."""
    if isinstance(metrics, dict):
        return {k: untimed(v) for k, v in metrics.items() if not any(k.endswith(t) or t in k for t in TIMING_KEYS)}
    if isinstance(metrics, list | tuple):
        return [untimed(v) for v in metrics]
    return metrics


def error_result(check: Check, error: str, summary: str, duration_s: float = 0.0) -> CheckResult:
    """The ``error`` result of a check that could not run (its exception, or its lost worker)."""
    return CheckResult(check_id=check.id, title=check.title, status=Status.ERROR, error=error, summary=summary,
                       controls=list(check.controls), duration_s=duration_s)


def run_check(check: Check, target: Target, spec: RunSpec, reporter: ProgressReporter | None = None) -> CheckResult:
    """Run one check safely: report its start and end, time it, and turn any exception into an ``error`` result."""
    rep = reporter or NullReporter()
    ctx = CheckContext(
        profile=spec.profile, seed=spec.seed, out_dir=spec.out_dir, options=dict(spec.options),
        progress=lambda done, total: rep.progress(check.id, done, total),
    )
    rep.started(check)
    t0 = time.perf_counter()
    try:
        result = check.run(target, ctx)
        if not isinstance(result, CheckResult):
            raise TypeError(f"check {check.id} returned {type(result).__name__}, not a CheckResult")
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        result = error_result(check, f"{type(exc).__name__}: {exc}{where}",
                              f"the check failed to run: {type(exc).__name__}: {exc}")
    result.duration_s = time.perf_counter() - t0
    if not result.check_id:
        result.check_id = check.id
    if not result.title:
        result.title = check.title
    if not result.controls:
        result.controls = list(check.controls)
    rep.finished(result)
    return result
