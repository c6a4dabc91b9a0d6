"""The one interface through which operators and incident playbooks change a running gateway:
``rollback``, ``promote``, ``revoke_client``, ``throttle_client``, ``set_output_policy``, ``output_policy``
(``bastion.respond.playbooks`` acts only through these).

Each call changes the shared store (so every replica sees it within ``auth.cache_ttl_s``) and is
appended to the audit chain as an admin action by ``actor`` (the local admin by default). A running
gateway passes its live ``registry`` (and ``audit_log``) so that the change reaches its caches at once;
otherwise a ``Registry`` is opened on ``config`` (default: the gateway config in effect).

Examples:
    >>> from bastion.gateway import control
    >>> control.rollback("digits")                                      # doctest: +SKIP
    {'model': 'digits', 'alias': 'production', 'version': '1', 'rolled_back_from': '2', ...}
    >>> control.revoke_client("cl_3f…", reason="extraction pattern")     # doctest: +SKIP
    >>> control.set_output_policy("digits", {"type": "label_only"})     # doctest: +SKIP
    >>> control.throttle_client("cl_3f…", requests="10/minute")         # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.gateway.auth import LOCAL_ADMIN, Principal
from bastion.gateway.clients import revoke_client, throttle_client
from bastion.gateway.config import GatewayConfig, load_config

if TYPE_CHECKING:
    from bastion.gateway.registry import Registry

__all__ = ["output_policy", "promote", "revoke_client", "rollback", "set_output_policy", "throttle_client"]


def _cfg(config: GatewayConfig | None) -> GatewayConfig:
    return config if config is not None else load_config()


def _registry(registry: Registry | None, config: GatewayConfig | None) -> Registry:
    if registry is not None:
        return registry
    from bastion.gateway.registry import Registry

    return Registry(_cfg(config))


def rollback(name: str, alias: str = "production", *, config: GatewayConfig | None = None,
             actor: Principal = LOCAL_ADMIN, registry: Registry | None = None) -> dict[str, Any]:
    """Point ``alias`` back at the previous verified version of ``name`` (atomic)."""
    return _registry(registry, config).rollback(name, alias, actor=actor)


def promote(name: str, version: str, alias: str = "production", *, config: GatewayConfig | None = None,
            actor: Principal = LOCAL_ADMIN, registry: Registry | None = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` of ``name`` (refused for unverified versions)."""
    return _registry(registry, config).promote(name, version, alias, actor=actor)


def set_output_policy(name: str, policy: dict[str, Any], *, config: GatewayConfig | None = None,
                      actor: Principal = LOCAL_ADMIN, registry: Registry | None = None) -> dict[str, Any]:
    """Switch a model's output policy (``{"type": "label_only"}`` for protective mode)."""
    return _registry(registry, config).set_output_policy(name, policy, actor=actor)


def output_policy(name: str, *, config: GatewayConfig | None = None,
                  registry: Registry | None = None) -> dict[str, Any] | None:
    """The output policy ``name`` is served with now."""
    return _registry(registry, config).output_policy(name)
