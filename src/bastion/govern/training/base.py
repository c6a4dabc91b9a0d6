"""The lab framework: a lab sets up a workspace, states a goal, and checks it automatically.

One module per lab (``lab_evasion`` … ``lab_incident``), each a subclass of :class:`Lab` that declares its
number, slug, title, goal and README text, writes its own workspace files (``prepare``) and holds its
``check``; ``Lab.start`` writes the README and returns the :class:`LabSetup`. Checkers read plain files (npz, JSON,
TorchScript via Bastion's scanning loader, with ``read_npz``/``read_json`` below), so what is checked —
the goal — does not depend on how the learner reached it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_text


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


class Lab:
    """A hands-on lab on the demo models: what it is, the README it writes, and how it is checked.

    ``readme`` is a ``str.format`` template; it is given ``workdir`` and the entries of ``readme_fields``.
    """

    number: ClassVar[int]
    slug: ClassVar[str]
    title: ClassVar[str]
    goal: ClassVar[str]
    readme: ClassVar[str]
    readme_fields: ClassVar[dict[str, object]] = {}

    def prepare(self, workdir: Path, seed: int) -> list[str]:
        """Write the lab's own workspace files; returns their names relative to ``workdir``."""
        return []

    def start(self, workdir: Path, seed: int = 0) -> LabSetup:
        """Set up the workspace: the lab's files, then ``README.md`` with the instructions."""
        files = self.prepare(workdir, seed)
        text = self.readme.format(workdir=workdir, **self.readme_fields)
        write_text(workdir, "README.md", text)
        return LabSetup(self.number, str(workdir), [*files, "README.md"], text)

    def check(self, workdir: Path) -> LabCheck:
        raise NotImplementedError


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a learner's .npz (pickles refused), or an error naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in keys}
    except (KeyError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{path}: expected an .npz with arrays {', '.join(keys)} ({exc})") from None


def read_json(path: Path) -> dict[str, Any]:
    """A learner's JSON object, or an error naming the file."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{path}: expected a JSON object")
    return doc


def write_text(workdir: Path, name: str, text: str) -> None:
    """Write a workspace file atomically."""
    atomic_write_text(workdir / name, text)
