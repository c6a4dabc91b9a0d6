"""Assessment: the ``Check`` protocol, registry, profiles and the runner."""

from bastion.assess.registry import (
    CHECKS,
    PROFILES,
    Check,
    CheckContext,
    Profile,
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
    "Profile",
    "checks_for",
    "get_check",
    "load_checks",
    "register_check",
]
