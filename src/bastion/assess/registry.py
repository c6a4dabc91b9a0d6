"""The ``Check`` protocol and the registry of checks.

A check is registered once, by id; registering the same id twice is an error. Built-in
checks register when their module is imported (``bastion.assess.builtin`` lists them);
third-party checks come in through the ``bastion.checks`` entry point, whose value is a
``Check`` instance, a ``Check`` class, or a callable returning either.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bastion.core.errors import RegistryError
from bastion.core.results import CheckResult
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
