"""The FastAPI app: ``create_app(config) -> FastAPI``.

``create_app`` assembles module-level routers (``bastion.gateway.routes``: health and metrics, predict,
admin, audit; ``bastion.gateway.ui``: the dashboard) behind the ``Edge`` middleware
(``bastion.gateway.edge``: body limit, authentication before anything else, media types, metrics).
Handlers reach the ``GatewayService`` through ``app.state.service``.

Every route declares the scope it needs (``scoped(router, method, path, scope)``, recorded as the
operation's ``x-bastion-scope``); ``create_app`` refuses to build an app with an API route that
declares none and is not one of the public probes (``/healthz``, ``/readyz``, and ``/metrics`` only
when ``metrics_public``): default deny.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from bastion.core.errors import ConfigError
from bastion.gateway.config import GatewayConfig
from bastion.gateway.edge import Edge
from bastion.gateway.routes import admin, audit, health, predict
from bastion.gateway.routes.common import ERROR_SCHEMA, SCOPE_KEY, served_routes
from bastion.gateway.routes.errors import EXCEPTION_HANDLERS
from bastion.gateway.service import GatewayService
from bastion.gateway.ui import install_ui

__all__ = ["PUBLIC_PATHS", "create_app"]

PUBLIC_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/ui/login", "/favicon.ico"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: GatewayService = app.state.service
    if app.state.preload:
        threading.Thread(target=_preload, args=(service, app), daemon=True).start()
    else:
        app.state.preloaded = True
    gc.freeze()  # the app's long-lived objects leave the collector's work: shorter pauses under load
    yield
    await run_in_threadpool(service.close)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def create_app(config: GatewayConfig | None = None, *, apply_migrations: bool = True,
               preload: bool = True) -> FastAPI:
    """Build the gateway app. ``app.state.service`` is the ``GatewayService``;
    ``app.state.observers`` the list of predict observers (called off the request path)."""
    config = config or GatewayConfig()
    if apply_migrations:
        from bastion.store.db import upgrade

        upgrade(config.db_url)
    service = GatewayService(config)
    app = FastAPI(title="Bastion inference gateway", version="1", lifespan=lifespan,
                  exception_handlers=dict(EXCEPTION_HANDLERS),
                  description="Zero-trust inference: scoped keys/JWT, validated inputs, query budgets, "
                              "sandboxed models, output policies, a signed hash-chained audit log.")
    app.state.service = service
    app.state.observers = service.observers
    app.state.preload = preload
    app.state.preloaded = False
    public = PUBLIC_PATHS | ({"/metrics"} if config.metrics_public else set())
    try:
        _include_routers(app, service, public)
    except BaseException:
        service.close()
        raise
    app.add_middleware(Edge, service=service, limit=config.max_body_bytes, upload_limit=config.max_upload_bytes,
                       gated=lambda path: path.startswith("/v1/") or (path == "/metrics" and "/metrics" not in public),
                       router=app.router, predict=predict.answer,
                       predict_routes=predict.ROUTES)
    return app


def _include_routers(app: FastAPI, service: GatewayService, public: set[str]) -> None:
    """The API routers, then the dashboard, in the order they match; ``app.state.route_scopes`` (default deny)."""
    for router in (health.router, health.metrics_router("/metrics" in public), predict.router, admin.router,
                   audit.router):
        app.include_router(router)
    install_ui(app, service)
    _add_error_schema(app)
    app.state.route_scopes = _route_scopes(app, public)


def _route_scopes(app: FastAPI, public: set[str]) -> dict[tuple[str, str], str]:
    """(method, path) → the scope each route declares; a ``ConfigError`` for an API route that declares none
    and is not public (default deny)."""
    scopes: dict[tuple[str, str], str] = {}
    for r in served_routes(app.routes):
        if not isinstance(getattr(r, "original_route", r), APIRoute):
            continue
        scope_name = (r.openapi_extra or {}).get(SCOPE_KEY)
        for m in sorted(r.methods or ()):
            if scope_name is not None:
                scopes[(m, r.path)] = scope_name
            elif r.path not in public:
                raise ConfigError(f"route {m} {r.path} declares no scope (default deny)")
    return scopes


def _add_error_schema(app: FastAPI) -> None:
    """Add the ``Error`` schema that every refusal's documented response refers to."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _preload(service: GatewayService, app: FastAPI) -> None:
    """Start worker pools for every model's production alias (readiness waits for this)."""
    try:
        seen = set()
        for info in service.registry.list():
            if service.config.default_alias in info.aliases and info.name not in seen:
                seen.add(info.name)
                try:
                    service.pool_for(info)
                except Exception:
                    logging.getLogger("bastion.gateway").exception("could not start %s@%s", info.name,
                                                                   info.version)
    finally:
        app.state.preloaded = True
