"""``LocalExecutor``: run checks one after another in this process."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.assess.executors.base import ProgressReporter, RunSpec, run_check
from bastion.assess.registry import Check
from bastion.core.results import CheckResult
from bastion.core.target import Target


class LocalExecutor:
    """Sequential, in-process execution (checks use torch's intra-op threads for speed)."""

    name = "local"

    def run(
        self, checks: Sequence[Check], target: Target, spec: RunSpec, reporter: ProgressReporter
    ) -> list[CheckResult]:
        return [run_check(check, target, spec, reporter) for check in checks]


EXECUTOR = LocalExecutor
