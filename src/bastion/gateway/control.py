"""Library calls for operators and incident playbooks (the monitor/respond engineers use these).

Each call changes the shared store (so every replica sees it within ``auth.cache_ttl_s``) and is
appended to the audit chain as an admin action by ``actor`` (the local admin by default).

Examples:
    >>> from bastion.gateway import control
    >>> control.rollback("digits")                                      # doctest: +SKIP
    {'model': 'digits', 'alias': 'production', 'version': '1', 'rolled_back_from': '2', ...}
    >>> control.revoke_client("cl_3f…", reason="extraction pattern")     # doctest: +SKIP
    >>> control.set_output_policy("digits", {"type": "label_only"})     # doctest: +SKIP
    >>> control.throttle_client("cl_3f…", requests="10/minute")         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from bastion.gateway.auth import LOCAL_ADMIN, Principal
from bastion.gateway.clients import ClientInfo
from bastion.gateway.config import GatewayConfig, load_config


def _cfg(config: GatewayConfig | None) -> GatewayConfig:
    return config if config is not None else load_config()


def rollback(name: str, alias: str = "production", *, config: GatewayConfig | None = None,
             actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
    """Point ``alias`` back at the previous verified version of ``name`` (atomic)."""
    from bastion.gateway.registry import Registry

    return Registry(_cfg(config)).rollback(name, alias, actor=actor)


def promote(name: str, version: str, alias: str = "production", *, config: GatewayConfig | None = None,
            actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
    from bastion.gateway.registry import Registry

    return Registry(_cfg(config)).promote(name, version, alias, actor=actor)


def revoke_client(ident: str, *, reason: str = "", config: GatewayConfig | None = None,
                  actor: Principal = LOCAL_ADMIN) -> ClientInfo:
    """Revoke a client's API key (by id or unique name)."""
    from bastion.gateway.clients import revoke_client as _revoke

    return _revoke(ident, db_url=_cfg(config).db_url, actor=actor, reason=reason)


def throttle_client(ident: str, requests: str | None = None, samples: str | None = None, *,
                    config: GatewayConfig | None = None, actor: Principal = LOCAL_ADMIN) -> ClientInfo:
    """Give a client a tighter query budget, e.g. ``requests="10/minute", samples="100/hour"``."""
    from bastion.gateway.clients import throttle_client as _throttle

    return _throttle(ident, requests, samples, db_url=_cfg(config).db_url, actor=actor)


def set_output_policy(name: str, policy: dict[str, Any], *, config: GatewayConfig | None = None,
                      actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
    """Switch a model's output policy (``{"type": "label_only"}`` for protective mode)."""
    from bastion.gateway.registry import Registry

    return Registry(_cfg(config)).set_output_policy(name, policy, actor=actor)


def output_policy(name: str, *, config: GatewayConfig | None = None) -> dict[str, Any] | None:
    from bastion.gateway.registry import Registry

    return Registry(_cfg(config)).output_policy(name)
