"""Executors run an assessment's checks: ``local`` here; cluster executors plug in by name."""

from __future__ import annotations

import importlib

from bastion.assess.executors.base import Executor, NullReporter, ProgressReporter, RunSpec, run_check
from bastion.assess.executors.local import LocalExecutor
from bastion.core.errors import ConfigError

EXECUTORS: dict[str, type] = {"local": LocalExecutor}


def available_executors() -> list[str]:
    """Executor names: the registered ones and every ``bastion.assess.executors.<name>`` module."""
    import pkgutil

    names = set(EXECUTORS)
    names.update(m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base", "local"))
    return sorted(names)


def get_executor(name: str, **kwargs: object) -> Executor:
    """An executor by name (``local``, or ``bastion.assess.executors.<name>.EXECUTOR``), built with ``kwargs``."""
    if name not in EXECUTORS:
        if not name.isidentifier():
            raise ConfigError(f"unknown executor {name!r}")
        try:
            mod = importlib.import_module(f"bastion.assess.executors.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("bastion.assess.executors"):
                raise ConfigError(f"unknown executor {name!r}; available: {', '.join(available_executors())}") from None
            raise
        cls = getattr(mod, "EXECUTOR", None)
        if cls is None:
            raise ConfigError(f"bastion.assess.executors.{name} defines no EXECUTOR")
        EXECUTORS[name] = cls
    executor = EXECUTORS[name](**kwargs)
    if not isinstance(executor, Executor):
        raise ConfigError(f"executor {name!r} does not implement the Executor protocol")
    return executor


__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "NullReporter",
    "ProgressReporter",
    "RunSpec",
    "available_executors",
    "get_executor",
    "run_check",
]
