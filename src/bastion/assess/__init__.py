"""Assessment: the ``Check`` protocol, the ``@check`` decorator, registry, profiles and the runner."""

from bastion.assess.registry import (
    CHECKS,
    PROFILES,
    Check,
    CheckContext,
    DeclaredCheck,
    Outcome,
    Profile,
    check,
    checks_for,
    get_check,
    load_checks,
    register_check,
)

__all__ = [
    "CHECKS",
    "PROFILES",
    "Check",
    "CheckContext",
    "DeclaredCheck",
    "Outcome",
    "Profile",
    "check",
    "checks_for",
    "get_check",
    "load_checks",
    "register_check",
]
