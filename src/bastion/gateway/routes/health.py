"""Probes and metrics: ``/healthz`` and ``/readyz`` (public), ``/metrics`` (``metrics:read`` unless
``metrics_public``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.gateway.routes.common import (
    ERR_CONTENT,
    ServiceDep,
    error_response,
    json_bytes,
    principal_for,
    scoped,
)
from bastion.gateway.service import GatewayService

router = APIRouter(tags=["health"])

READY_SCHEMA = {"type": "object", "required": ["status"], "properties": {
    "status": {"type": "string"},
    "models": {"type": "object", "description": "model@version → confinement layers (operators only)",
               "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready. Anonymous callers get the status only; a caller with models:read also "
                         "gets each served model version and its sandbox layers.",
          "content": {"application/json": {"schema": READY_SCHEMA}}},
    503: {"description": "Not ready (database unreachable or workers starting).", "content": ERR_CONTENT}}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "Prometheus text exposition.", "content": {"text/plain": {"schema": {"type": "string"}}}}}


@scoped(router, "GET", "/healthz", None)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _ping_database(service: GatewayService) -> None:
    from sqlalchemy import text

    with service.audit.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def _served_models(service: GatewayService, header: str | None) -> dict[str, list[str]] | None:
    """model@version → sandbox layers, for a caller holding ``models:read`` (None for anyone else)."""
    if not header:
        return None
    try:
        p = await service.authenticate_async(header)
    except Exception:  # readiness never depends on the caller's credentials
        return None
    if "models:read" not in p.scopes:
        return None
    return {f"{n}@{v}": pool.info.get("layers", []) for (n, v), pool in list(service.pools.items())}


@scoped(router, "GET", "/readyz", None, responses=READY_RESPONSES)
async def readyz(request: Request, service: ServiceDep) -> Response:
    try:
        await run_in_threadpool(_ping_database, service)
    except Exception as exc:
        return error_response(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    if not request.app.state.preloaded:
        return error_response(503, "not_ready", "model workers are starting")
    out: dict[str, Any] = {"status": "ready"}
    models = await _served_models(service, request.headers.get("authorization"))
    if models is not None:
        out["models"] = models
    return Response(json_bytes(out), media_type="application/json")


async def metrics_route(service: ServiceDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    from bastion.gateway.metrics import exposition

    return Response(await run_in_threadpool(exposition, service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_router(public: bool) -> APIRouter:
    """``GET /metrics``: behind ``metrics:read``, or public when the config says ``metrics_public``."""
    scope_name = None if public else "metrics:read"
    deps = [] if scope_name is None else [Security(principal_for(scope_name))]
    metrics = APIRouter(tags=["health"])
    scoped(metrics, "GET", "/metrics", scope_name, responses=METRICS_RESPONSES, dependencies=deps)(metrics_route)
    return metrics
