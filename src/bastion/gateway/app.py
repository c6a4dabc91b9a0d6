"""The FastAPI app: ``create_app(config) -> FastAPI``.

Every route declares the scope it needs (``_route(..., scope=...)``); ``create_app`` refuses to
build an app with an API route that declares none and is not one of the public probes
(``/healthz``, ``/readyz``, and ``/metrics`` only when ``metrics_public``): default deny.

In front of every route sits the ``Edge`` (pure ASGI): the body limit (413 on ``Content-Length``
and while streaming), then, for every API path (``/v1/…`` and a non-public ``/metrics``),
authentication *before anything else happens* — a caller without valid credentials gets a
constant-cost 401 (no body read, no per-request record; counted per source and window), and JSON
routes refuse other content types (415) before a body is parsed. It also counts every answer by
route *template* (never by raw path).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Body, FastAPI, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.errors import AuthError, BastionError, ConfigError, InvalidInputError, RegistryError
from bastion.gateway.auth import Forbidden, Principal
from bastion.gateway.config import GatewayConfig
from bastion.gateway.service import GatewayHTTPError, GatewayService, clip, is_json

access_log = logging.getLogger("bastion.gateway.access")
bearer = HTTPBearer(auto_error=False, description="An API key (bst_…) or an OIDC/JWT access token.")
PUBLIC_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/ui/login", "/favicon.ico"}
PREDICT_RE = re.compile(r"^/v1/models/([^/]+)(?:/versions/([^/]+))?/predict$")
UPLOAD_RE = re.compile(r"^/v1/models/[^/]+/versions$")
PRINCIPAL_KEY = "bastion.principal"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "detail"],
    "properties": {"error": {"type": "string", "description": "Machine-readable reason."},
                   "detail": {"description": "What was wrong (a string, or a list of {loc, msg, type})."}},
}
_ERR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request was refused (see error).", "content": _ERR},
    401: {"description": "Missing, invalid, expired or revoked credentials.", "content": _ERR},
    403: {"description": "The principal lacks the scope or the model grant.", "content": _ERR},
    404: {"description": "Unknown model, version or client.", "content": _ERR},
    409: {"description": "The change conflicts with the registry's state.", "content": _ERR},
    413: {"description": "Body larger than the limit.", "content": _ERR},
    415: {"description": "The body is not JSON (or, for uploads, not multipart/form-data).", "content": _ERR},
    422: {"description": "The request does not validate (loc names the field).", "content": _ERR},
    503: {"description": "A store the answer depends on is unreachable (fail closed).", "content": _ERR},
}
PREDICT_BODY_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {"inputs": {
        "type": "array", "minItems": 1,
        "description": "A batch: one nested list per sample, shaped like the model's input (or flat). "
                       "Numbers only: booleans, strings and nulls are refused at their own position.",
        "items": {"type": "array", "items": {}}},
    },
}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {"description": "Predictions (probabilities when the model's output policy allows them).",
          "content": {"application/json": {"schema": {"type": "object", "required": ["model", "version",
                                                                                       "predictions"],
                                                      "properties": {
              "model": {"type": "string"}, "version": {"type": "string"},
              "predictions": {"type": "array", "items": {"type": "integer"}},
              "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}}}},
    429: {"description": "Query budget exhausted; see Retry-After.", "content": _ERR},
    502: {"description": "The sandboxed model failed or its worker crashed.", "content": _ERR},
    504: {"description": "The model did not answer within the timeout.", "content": _ERR},
}


def _json_bytes(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=str)
    except TypeError:  # e.g. an integer beyond 64 bits echoed from a refused body: the stdlib encoder takes any int
        return json.dumps(obj, default=str).encode()


def _error(status: int, reason: str, detail: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_json_bytes({"error": reason, "detail": detail}), status_code=status, headers=headers,
                    media_type="application/json")


async def _send_json(send: Send, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
    body = _json_bytes(obj)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class Edge:
    """ASGI middleware in front of the app: body limit, authentication gate for API paths, media-type check
    for JSON routes, and per-route-template HTTP metrics."""

    def __init__(self, app: ASGIApp, service: GatewayService, limit: int, upload_limit: int | None = None,
                 gated: Callable[[str], bool] | None = None, router: Any = None,
                 handlers: dict[str, Any] | None = None) -> None:
        self.app, self.service, self.default_limit = app, service, limit
        self.upload_limit = upload_limit or limit
        self.gated = gated or (lambda path: path.startswith("/v1/"))
        self.router = router  # the app's routes: to name a refused path's template
        self.handlers = handlers if handlers is not None else {}  # "predict": served here, without the router

    def template(self, scope: Scope) -> str:
        """The route template a path matches (``unmatched`` when none): never the raw path."""
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", "unmatched"))
        for r in getattr(self.router, "routes", ()):
            match, _ = r.matches(scope)
            if match == Match.FULL:
                return str(getattr(r, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def counted_send(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self._handle(scope, receive, counted_send)
        finally:
            self.service.metrics.http_request(self.template(scope), scope.get("method", ""), status[0] or 500)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope.get("path", ""), scope.get("method", "")
        upload = method == "POST" and UPLOAD_RE.match(path) is not None
        limit = self.upload_limit if upload else self.default_limit
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = True
            if too_big:
                await _send_json(send, 413, {"error": "body_too_large", "detail": f"body exceeds {limit} bytes"})
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

        predict = None
        if self.gated(path):
            try:
                principal = await self.service.admit(
                    _header(headers, b"authorization"), (scope.get("client") or ("-",))[0], lambda: self._where(scope))
            except GatewayHTTPError as exc:
                await _send_json(send, exc.status, {"error": exc.reason, "detail": exc.detail}, exc.headers)
                return
            scope[PRINCIPAL_KEY] = principal
            predict = PREDICT_RE.match(path) if method == "POST" else None
            has_body = (length not in (None, b"0")) or b"transfer-encoding" in headers
            if method in ("POST", "PUT", "PATCH") and has_body and predict is None:
                ctype = _header(headers, b"content-type")
                ok = (ctype or "").split(";")[0].strip().lower() == "multipart/form-data" if upload else is_json(ctype)
                if not ok:
                    want = "multipart/form-data" if upload else "application/json"
                    await _send_json(send, 415, {"error": "unsupported_media_type",
                                                 "detail": f"send the body as {want}, not {clip(ctype, 64)!r}"})
                    return
        try:
            if predict is not None and "predict" in self.handlers:  # the hot path skips the router's layers
                await self._predict(scope, limited, guarded_send, predict.group(1), predict.group(2))
            else:
                await self.app(scope, limited, guarded_send)
        except _TooLarge:
            sent_413 = True
            await _send_json(send, 413, {"error": "body_too_large", "detail": f"body exceeds {limit} bytes"})

    async def _predict(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        scope["route"] = self.handlers["predict_routes"][version is not None]
        scope["path_params"] = {"name": name} if version is None else {"name": name, "version": version}
        try:
            response, after = await self.handlers["predict"](Request(scope, receive), name, version)
        except _TooLarge:
            raise
        except Exception:  # what ServerErrorMiddleware does for the other routes
            logging.getLogger("bastion.gateway").exception("predict failed")
            await _send_json(send, 500, {"error": "internal", "detail": "internal error"})
            return
        await response(scope, receive, send)
        after()

    def _where(self, scope: Scope) -> tuple[str, str | None]:
        m = PREDICT_RE.match(scope.get("path", ""))
        return self.template(scope), (m.group(1) if m else None)


def _nothing() -> None:
    return None


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    v = headers.get(name)
    return None if v is None else v.decode("latin-1")


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
        gc.freeze()  # the app's long-lived objects leave the collector's work: shorter pauses under load
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
    metrics_public = config.metrics_public
    handlers: dict[str, Any] = {}
    app.add_middleware(Edge, service=service, limit=config.max_body_bytes, upload_limit=config.max_upload_bytes,
                       gated=lambda path: path.startswith("/v1/") or (path == "/metrics" and not metrics_public),
                       router=app.router, handlers=handlers)

    def principal_for(scope_name: str) -> Callable[..., Awaitable[Principal]]:
        async def _dep(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
            p = request.scope.get(PRINCIPAL_KEY)  # authenticated by the Edge
            if p is None:
                try:
                    p = await service.authenticate_async(request.headers.get("authorization"))
                except AuthError as exc:
                    service.metrics.child(service.metrics.rejections, "unauthenticated").inc()
                    raise GatewayHTTPError(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer"}) from None
            try:
                p.require(scope_name)
            except Forbidden as exc:
                service.metrics.child(service.metrics.rejections, "forbidden").inc()
                raise GatewayHTTPError(403, "forbidden", str(exc)) from None
            return p  # type: ignore[no-any-return]

        _dep.__name__ = f"require_{scope_name.replace(':', '_').replace('-', '_')}"
        return _dep

    def route(method: str, path: str, scope_name: str | None, **kw: Any) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            if scope_name is not None:
                route_scopes[(method, path)] = scope_name
                extra = kw.setdefault("openapi_extra", {})
                extra["x-bastion-scope"] = scope_name
                if kw.get("include_in_schema", True):
                    kw["responses"] = {**ERROR_RESPONSES, **kw.get("responses", {})}
            app.add_api_route(path, fn, methods=[method], **kw)
            return fn
        return deco

    @app.exception_handler(GatewayHTTPError)
    async def _gw_error(_: Request, exc: GatewayHTTPError) -> Response:
        return _error(exc.status, exc.reason, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        reason = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, reason, exc.detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return _error(422, "invalid_request", jsonable_encoder(exc.errors()))

    @app.exception_handler(BastionError)
    async def _bastion_error(_: Request, exc: BastionError) -> Response:
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

    ready_schema = {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string"},
        "models": {"type": "object", "description": "model@version → confinement layers (operators only)",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}

    @route("GET", "/readyz", None, tags=["health"], responses={
        200: {"description": "Ready. Anonymous callers get the status only; a caller with models:read also "
                             "gets each served model version and its sandbox layers.",
              "content": {"application/json": {"schema": ready_schema}}},
        503: {"description": "Not ready (database unreachable or workers starting).", "content": _ERR}})
    async def readyz(request: Request) -> Response:
        def check() -> None:
            from sqlalchemy import text

            with service.audit.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(check)
        except Exception as exc:
            return _error(503, "not_ready", f"database unreachable: {type(exc).__name__}")
        if not app.state.preloaded:
            return _error(503, "not_ready", "model workers are starting")
        out: dict[str, Any] = {"status": "ready"}
        header = request.headers.get("authorization")
        if header:
            try:
                p = await service.authenticate_async(header)
            except Exception:  # readiness never depends on the caller's credentials
                p = None
            if p is not None and "models:read" in p.scopes:
                out["models"] = {f"{n}@{v}": pool.info.get("layers", []) for (n, v), pool in list(service.pools.items())}
        return Response(_json_bytes(out), media_type="application/json")

    metrics_scope = None if config.metrics_public else "metrics:read"

    async def metrics_route(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from bastion.gateway.metrics import exposition

        return Response(await run_in_threadpool(exposition, service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    metrics_kw: dict[str, Any] = {"tags": ["health"], "responses": {200: {
        "description": "Prometheus text exposition.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}
    if metrics_scope is not None:
        metrics_kw["dependencies"] = [Security(principal_for(metrics_scope))]
    route("GET", "/metrics", metrics_scope, **metrics_kw)(metrics_route)

    # ------------------------------------------------------------------ predict
    async def _predict(request: Request, name: str, version: str | None) -> tuple[Response, Callable[[], None]]:
        """The predict answer and the bookkeeping to run once it is sent (the Edge calls this directly)."""
        p = request.scope.get(PRINCIPAL_KEY)
        if p is None:  # the Edge authenticates every /v1 path; this is a second lock on the door
            raise GatewayHTTPError(401, "unauthenticated", "missing credentials", {"WWW-Authenticate": "Bearer"})
        try:
            res = await service.predict(p, name, version, request.body,
                                        content_type=request.headers.get("content-type"))
        except GatewayHTTPError as exc:
            _log(config, exc.headers.get("X-Request-ID", "-"), name, version, exc.status, exc.reason)
            return _error(exc.status, exc.reason, exc.detail, exc.headers), _nothing

        def after() -> None:
            res.after()
            _log(config, res.headers["X-Request-ID"], name, res.version, 200, "ok")

        return Response(res.body, media_type="application/json", headers=res.headers), after

    handlers["predict"] = _predict

    predict_kw: dict[str, Any] = {
        "tags": ["predict"], "responses": PREDICT_RESPONSES,
        "openapi_extra": {"security": [{"HTTPBearer": []}], "requestBody": {"required": True, "content": {
            "application/json": {"schema": PREDICT_BODY_SCHEMA}}}},
    }

    async def _routed(request: Request, name: str, version: str | None) -> Response:
        response, after = await _predict(request, name, version)
        response.background = BackgroundTask(after)
        return response

    @route("POST", "/v1/models/{name}/predict", "predict", **predict_kw)
    async def predict(request: Request, name: str) -> Response:
        """Predict with the model's production version (scope ``predict`` and a grant for the model)."""
        return await _routed(request, name, None)

    @route("POST", "/v1/models/{name}/versions/{version}/predict", "predict",
           **{**predict_kw, "openapi_extra": dict(predict_kw["openapi_extra"])})
    async def predict_version(request: Request, name: str, version: str) -> Response:
        """Predict with one pinned version (``predict:versions`` unless it is the production version)."""
        return await _routed(request, name, version)

    by_path = {r.path: r for r in app.routes if isinstance(r, APIRoute)}
    handlers["predict_routes"] = (by_path["/v1/models/{name}/predict"],
                                  by_path["/v1/models/{name}/versions/{version}/predict"])

    # ------------------------------------------------------------------ admin: models
    from bastion.gateway.admin import add_admin_routes

    add_admin_routes(app, service, route, principal_for, Body, Query)

    # ------------------------------------------------------------------ dashboard (/ui, session cookie)
    from bastion.gateway.ui import add_ui_routes

    add_ui_routes(app, service, route)
    _add_error_schema(app)

    # default deny: every API route must declare a scope or be a public probe
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path not in PUBLIC_PATHS:
            for m in r.methods or ():
                if (m, r.path) not in route_scopes:
                    raise ConfigError(f"route {m} {r.path} declares no scope (default deny)")
    app.state.route_scopes = route_scopes
    return app


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


def _log(config: GatewayConfig, rid: str, model: str, version: str | None, status: int, reason: str) -> None:
    if config.log_requests and access_log.isEnabledFor(logging.INFO):
        access_log.info("predict", extra={"event": {"request_id": rid, "model": clip(model), "version": clip(version),
                                                     "status": status, "reason": reason, "ts": time.time()}})
