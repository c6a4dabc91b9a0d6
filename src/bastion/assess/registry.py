"""The ``Check`` protocol, the ``@check`` decorator and the registry of checks.

A check is registered once, by id; registering the same id twice is an error. Built-in
checks are functions declared with ``@check`` and register when their module is imported
(``BUILTIN_CHECK_MODULES`` lists them); third-party checks come in through the ``bastion.checks``
entry point, whose value is a ``Check`` instance, a ``Check`` class, or a callable returning either.

A declared check is its measurement and its severity rule only::

    @check(id="data.anomalies", title="Outlying training rows", controls=ANOMALY_CONTROLS,
           profiles=("quick", "standard", "thorough"), applies=lambda t: t.data.has_train)
    def anomalies(target: Target, ctx: CheckContext) -> Outcome:
        ...
        return Outcome(Status.WARN if findings else Status.PASS, summary, metrics, params, findings)

The decorator returns a ``DeclaredCheck`` (which satisfies ``Check``): its ``run`` turns the ``Outcome``
into a ``CheckResult`` with the check's id, title and controls. The executor
(``bastion.assess.executors.base.run_check``) times every check, turns an exception into an ``error``
result and feeds the progress bars, so no check does any of that itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bastion.core.errors import RegistryError
from bastion.core.results import CheckResult, Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

Profile = Literal["quick", "standard", "thorough"]
PROFILES: tuple[Profile, ...] = ("quick", "standard", "thorough")


@dataclass
class CheckContext:
    """What a check gets besides the target: profile, seed, output dir, options, progress.

    ``options`` carries user options by name (e.g. ``{"eps": [0.1, 0.2]}``);
    ``progress(done, total)`` advances the check's progress bar.
    """

    profile: Profile = "standard"
    seed: int = 0
    out_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[float, float], None] = lambda done, total: None

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


@runtime_checkable
class Check(Protocol):
    """One assessment unit."""

    id: str
    title: str
    controls: list[str]
    profiles: tuple[Profile, ...]

    def applies(self, target: Target) -> bool: ...

    def run(self, target: Target, ctx: CheckContext) -> CheckResult: ...


CHECKS: dict[str, Check] = {}


@dataclass
class Outcome:
    """What a declared check measured; ``DeclaredCheck.run`` adds the id, title and controls."""

    status: Status
    summary: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)


Measure = Callable[[Target, CheckContext], Outcome]


class DeclaredCheck:
    """A check made by :func:`check`: its metadata, an ``applies`` rule and the measurement."""

    def __init__(self, measure: Measure, *, id: str, title: str, controls: list[str],
                 profiles: tuple[Profile, ...], applies: Callable[[Target], bool] | None = None,
                 plan: Callable[[Target, CheckContext], dict[str, Any]] | None = None) -> None:
        self.id, self.title, self.controls, self.profiles = id, title, controls, tuple(profiles)
        self.measure = measure
        self._applies = applies
        self.plan = plan  # the settings ``run`` would use, for ``bastion assess --dry-run`` (None: not reported)
        self.__doc__ = measure.__doc__
        self.__name__ = getattr(measure, "__name__", id)

    def __repr__(self) -> str:
        return f"<check {self.id}>"

    def applies(self, target: Target) -> bool:
        return True if self._applies is None else bool(self._applies(target))

    def run(self, target: Target, ctx: CheckContext) -> CheckResult:
        out = self.measure(target, ctx)
        if not isinstance(out, Outcome):
            raise TypeError(f"check {self.id} returned {type(out).__name__}, not an Outcome")
        return CheckResult(self.id, self.title, out.status, out.metrics, out.params, out.findings, out.artifacts,
                           controls=list(self.controls), summary=out.summary)


def check(*, id: str, title: str, controls: list[str], profiles: tuple[Profile, ...] = PROFILES,
          applies: Callable[[Target], bool] | None = None,
          plan: Callable[[Target, CheckContext], dict[str, Any]] | None = None) -> Callable[[Measure], DeclaredCheck]:
    """Declare and register a check: ``@check(id=…, title=…, controls=…, profiles=…)`` on its measurement.

    ``applies(target)`` says whether the check can run on a target (default: always); ``plan(target, ctx)``
    returns the settings it would use. A second check with the same id raises ``RegistryError``.
    """
    def register(measure: Measure) -> DeclaredCheck:
        declared = DeclaredCheck(measure, id=id, title=title, controls=controls, profiles=profiles,
                                 applies=applies, plan=plan)
        register_check(declared)
        return declared

    return register


def finding_if(severity: Severity | None, id: str, title: str, evidence: dict[str, Any], recommendation: str,
               controls: list[str]) -> list[Finding]:
    """The check's one finding when its severity rule fired (``severity`` is not None), else none."""
    return [] if severity is None else [Finding(id, severity, title, evidence, recommendation, list(controls))]


def status_for_severity(worst: Severity | None) -> Status:
    """The common severity rule: ``fail`` at high or critical, ``warn`` at medium, else ``pass``."""
    if worst is not None and worst >= Severity.HIGH:
        return Status.FAIL
    if worst is not None and worst >= Severity.MEDIUM:
        return Status.WARN
    return Status.PASS


def worst_status(findings: list[Finding]) -> Status:
    """:func:`status_for_severity` of the worst finding."""
    return status_for_severity(max((f.severity for f in findings), default=None))

# Modules whose import registers the built-in checks. Each capability adds its module here.
BUILTIN_CHECK_MODULES: list[str] = [
    "bastion.assess.checks.evasion",
    "bastion.assess.checks.supply_chain",
    "bastion.assess.checks.data",
    "bastion.assess.checks.privacy",
    "bastion.assess.checks.explain",
    "bastion.assess.checks.defenses",
    "bastion.assess.checks.fairness",
    "bastion.monitor.representativeness_check",  # needs the monitor's shift statistics
]

_loaded = False


def register_check(check: Check) -> Check:
    """Register ``check`` under its id. A second check with the same id raises ``RegistryError``."""
    if not isinstance(check, Check):
        raise RegistryError(f"{check!r} does not implement the Check protocol")
    if check.id in CHECKS and CHECKS[check.id] is not check:
        raise RegistryError(f"a check with id {check.id!r} is already registered")
    CHECKS[check.id] = check
    return check


def load_checks() -> dict[str, Check]:
    """Import the built-in check modules and the ``bastion.checks`` entry points, once."""
    global _loaded
    if _loaded:
        return CHECKS
    for mod in BUILTIN_CHECK_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside an existing module
                raise
    for ep in entry_points(group="bastion.checks"):
        obj = ep.load()
        if isinstance(obj, type):
            obj = obj()
        elif callable(obj) and not isinstance(obj, Check):
            obj = obj()
        register_check(obj)
    _loaded = True
    return CHECKS


def get_check(check_id: str) -> Check:
    checks = load_checks()
    if check_id not in checks:
        raise RegistryError(f"no check named {check_id!r}; known: {', '.join(sorted(checks))}")
    return checks[check_id]


def matches_only(check_id: str, selector: str) -> bool:
    """``--only`` selection: the exact id or any prefix of it (``evasion``, ``evasion.``, ``evasion.robust``)."""
    return bool(selector) and check_id.startswith(selector)


def checks_for(target: Target, profile: Profile, only: list[str] | None = None) -> list[Check]:
    """Checks that apply to ``target`` in ``profile`` (optionally restricted to ids/prefixes in ``only``)."""
    chosen = []
    for cid in sorted(load_checks()):
        check = CHECKS[cid]
        if only and not any(matches_only(cid, o) for o in only):
            continue
        if not only and profile not in check.profiles:
            continue
        if check.applies(target):
            chosen.append(check)
    return chosen
