"""The FastAPI app: ``create_app(config) -> FastAPI``.

Every route declares the scope it needs (``_route(..., scope=...)``); ``create_app`` refuses to
build an app with an API route that declares none and is not one of the public probes
(``/healthz``, ``/readyz``, and ``/metrics`` only when ``metrics_public``): default deny.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.errors import AuthError, BastionError, ConfigError, InvalidInputError, RegistryError
from bastion.gateway.auth import Forbidden, Principal
from bastion.gateway.config import GatewayConfig
from bastion.gateway.service import GatewayHTTPError, GatewayService

access_log = logging.getLogger("bastion.gateway.access")
bearer = HTTPBearer(auto_error=False, description="An API key (bst_…) or an OIDC/JWT access token.")
PUBLIC_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/ui/login"}

PREDICT_BODY_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {"inputs": {
        "type": "array", "minItems": 1,
        "description": "A batch: one nested list per sample, shaped like the model's input (or flat).",
        "items": {"type": "array", "items": {}}},
    },
}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Predictions (probabilities when the model's output policy allows them).",
          "content": {"application/json": {"schema": {"type": "object", "properties": {
              "model": {"type": "string"}, "version": {"type": "string"},
              "predictions": {"type": "array", "items": {"type": "integer"}},
              "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}}}},
    401: {"description": "Missing, invalid, expired or revoked credentials."},
    403: {"description": "The principal lacks the scope or the model grant."},
    404: {"description": "Unknown model or version."},
    413: {"description": "Body larger than max_body_bytes."},
    422: {"description": "Input does not match the model's input spec (loc names the element)."},
    429: {"description": "Query budget exhausted; see Retry-After."},
    502: {"description": "The sandboxed model failed or its worker crashed."},
    504: {"description": "The model did not answer within the timeout."},
}


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before reading them whole
    (model uploads to ``POST /v1/models/{name}/versions`` get ``upload_limit``)."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int | None = None) -> None:
        self.app, self.default_limit = app, limit
        self.upload_limit = upload_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        upload = scope.get("method") == "POST" and path.startswith("/v1/models/") and path.endswith("/versions")
        limit = self.upload_limit if upload else self.default_limit
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_json(send, 413, {"error": "body_too_large",
                                                 "detail": f"body exceeds {limit} bytes"})
                    return
        seen = 0
        sent_413 = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return msg

        async def guarded_send(msg: Message) -> None:
            if not sent_413:
                await send(msg)

        try:
            await self.app(scope, limited, guarded_send)
        except _TooLarge:
            sent_413 = True
            await _send_json(send, 413, {"error": "body_too_large", "detail": f"body exceeds {limit} bytes"})


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, reason: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status, headers=headers)


def create_app(config: GatewayConfig | None = None, *, apply_migrations: bool = True,
               preload: bool = True) -> FastAPI:
    """Build the gateway app. ``app.state.service`` is the ``GatewayService``;
    ``app.state.observers`` the list of predict observers (called off the request path)."""
    config = config or GatewayConfig()
    if apply_migrations:
        from bastion.store.db import upgrade

        upgrade(config.db_url)
    service = GatewayService(config)
    route_scopes: dict[tuple[str, str], str] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if preload:
            threading.Thread(target=_preload, args=(service, app), daemon=True).start()
        else:
            app.state.preloaded = True
        yield
        await run_in_threadpool(service.close)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(title="Bastion inference gateway", version="1", lifespan=lifespan,
                  description="Zero-trust inference: scoped keys/JWT, validated inputs, query budgets, "
                              "sandboxed models, output policies, a signed hash-chained audit log.")
    app.state.service = service
    app.state.observers = service.observers
    app.state.preloaded = False
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, upload_limit=config.max_upload_bytes)

    def principal_for(scope_name: str) -> Callable[..., Awaitable[Principal]]:
        async def _dep(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
            header = request.headers.get("authorization")
            try:
                p = await run_in_threadpool(service.authenticate, header)
                p.require(scope_name)
            except Forbidden as exc:
                service.metrics.rejections.labels("forbidden").inc()
                raise GatewayHTTPError(403, "forbidden", str(exc)) from None
            except AuthError as exc:
                service.metrics.rejections.labels("unauthenticated").inc()
                raise GatewayHTTPError(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer"}) from None
            return p

        _dep.__name__ = f"require_{scope_name.replace(':', '_').replace('-', '_')}"
        return _dep

    def route(method: str, path: str, scope_name: str | None, **kw: Any) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            if scope_name is not None:
                route_scopes[(method, path)] = scope_name
                extra = kw.setdefault("openapi_extra", {})
                extra["x-bastion-scope"] = scope_name
            app.add_api_route(path, fn, methods=[method], **kw)
            return fn
        return deco

    @app.exception_handler(GatewayHTTPError)
    async def _gw_error(_: Request, exc: GatewayHTTPError) -> JSONResponse:
        return _error(exc.status, exc.reason, exc.detail, exc.headers)

    @app.exception_handler(BastionError)
    async def _bastion_error(_: Request, exc: BastionError) -> JSONResponse:
        if isinstance(exc, Forbidden):
            return _error(403, "forbidden", str(exc))
        if isinstance(exc, AuthError):
            return _error(401, "unauthenticated", str(exc))
        if isinstance(exc, RegistryError):
            return _error(404 if "no " in str(exc) else 409, "registry", str(exc))
        if isinstance(exc, InvalidInputError | ConfigError):
            return _error(422, "invalid", str(exc))
        return _error(400, type(exc).__name__, str(exc))

    # ------------------------------------------------------------------ public probes
    @route("GET", "/healthz", None, tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @route("GET", "/readyz", None, tags=["health"])
    async def readyz() -> Response:
        def check() -> dict[str, Any]:
            from sqlalchemy import text

            with service.audit.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return {f"{n}@{v}": p.info.get("layers", []) for (n, v), p in list(service.pools.items())}

        try:
            models = await run_in_threadpool(check)
        except Exception as exc:
            return _error(503, "not_ready", f"database unreachable: {type(exc).__name__}")
        if not app.state.preloaded:
            return _error(503, "not_ready", "model workers are starting")
        return JSONResponse({"status": "ready", "models": models})

    metrics_scope = None if config.metrics_public else "metrics:read"

    async def metrics_route(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from bastion.gateway.metrics import exposition

        if metrics_scope is not None:
            await principal_for(metrics_scope)(request, None)
        return Response(await run_in_threadpool(exposition, service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    route("GET", "/metrics", metrics_scope, tags=["health"],
          dependencies=[Security(bearer)] if metrics_scope else None)(metrics_route)

    # ------------------------------------------------------------------ predict
    async def _predict(request: Request, name: str, version: str | None) -> Response:
        body = await request.body()
        rid = uuid.uuid4().hex
        try:
            res = await run_in_threadpool(service.predict, request.headers.get("authorization"), name, version,
                                          body, rid)
        except GatewayHTTPError as exc:
            _log(config, rid, name, version, exc.status, exc.reason)
            raise
        _log(config, rid, name, res.body["version"], 200, "ok")
        return Response(json.dumps(res.body, separators=(",", ":")), media_type="application/json",
                        headers=res.headers)

    predict_kw: dict[str, Any] = {
        "tags": ["predict"], "responses": PREDICT_RESPONSES,
        "openapi_extra": {"requestBody": {"required": True, "content": {
            "application/json": {"schema": PREDICT_BODY_SCHEMA}}}},
    }

    @route("POST", "/v1/models/{name}/predict", "predict", **predict_kw)
    async def predict(request: Request, name: str,
                      creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Response:
        """Predict with the model's production version."""
        return await _predict(request, name, None)

    @route("POST", "/v1/models/{name}/versions/{version}/predict", "predict",
           **{**predict_kw, "openapi_extra": dict(predict_kw["openapi_extra"])})
    async def predict_version(request: Request, name: str, version: str,
                              creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Response:
        """Predict with one pinned version."""
        return await _predict(request, name, version)

    # ------------------------------------------------------------------ admin: models
    from bastion.gateway.admin import add_admin_routes

    add_admin_routes(app, service, route, principal_for, Body, Query)

    # ------------------------------------------------------------------ dashboard (/ui, session cookie)
    from bastion.gateway.ui import add_ui_routes

    add_ui_routes(app, service, route)

    # default deny: every API route must declare a scope or be a public probe
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path not in PUBLIC_PATHS:
            for m in r.methods or ():
                if (m, r.path) not in route_scopes:
                    raise ConfigError(f"route {m} {r.path} declares no scope (default deny)")
    app.state.route_scopes = route_scopes
    return app


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


def _log(config: GatewayConfig, rid: str, model: str, version: str | None, status: int, reason: str) -> None:
    if config.log_requests and access_log.isEnabledFor(logging.INFO):
        access_log.info("predict", extra={"event": {"request_id": rid, "model": model, "version": version,
                                                     "status": status, "reason": reason, "ts": time.time()}})
