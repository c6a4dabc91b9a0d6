"""The lab framework: a lab sets up a workspace, states a goal, and checks it automatically."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class LabCheck:
    """The outcome of checking a learner's work: passed, score in [0, 1], what was measured, a message."""

    lab: int
    passed: bool
    score: float
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LabSetup:
    """What ``start`` wrote: the workspace, the files, and the instructions to show."""

    lab: int
    workdir: str
    files: list[str]
    instructions: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Lab(Protocol):
    """A hands-on lab on the demo models."""

    number: int
    slug: str
    title: str
    goal: str
    requires: tuple[str, ...]

    def start(self, workdir: Path, seed: int = 0) -> LabSetup: ...

    def check(self, workdir: Path) -> LabCheck: ...


def missing_requirements(requires: tuple[str, ...]) -> list[str]:
    """Which ``module`` or ``module:attribute`` requirements are not importable in this installation."""
    missing = []
    for req in requires:
        mod, _, attr = req.partition(":")
        try:
            if importlib.util.find_spec(mod) is None:
                missing.append(req)
                continue
            if attr and not hasattr(importlib.import_module(mod), attr):
                missing.append(req)
        except (ImportError, ValueError):
            missing.append(req)
    return missing


def availability(lab: Lab) -> tuple[bool, str]:
    """Whether the Bastion features a lab needs have landed, and if not, which are missing."""
    missing = missing_requirements(lab.requires)
    if not missing:
        return True, "available"
    return False, ("not available in this Bastion build yet: it needs " + ", ".join(missing)
                   + " (that capability has not landed)")
