"""The ``Edge``: pure ASGI middleware in front of every route of the gateway app.

In order: the body limit (413 on ``Content-Length`` and while streaming), then, for every API path
(``/v1/…`` and a non-public ``/metrics``), authentication *before anything else happens* — a caller
without valid credentials gets a constant-cost 401 (no body read, no per-request record; counted per
source and window) — and JSON routes refuse other content types (415) before a body is parsed. It
also counts every answer by route *template* (never by raw path), and serves predict itself (the hot
path skips the router's layers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.gateway.routes.common import PRINCIPAL_KEY, json_bytes, served_routes
from bastion.gateway.service import GatewayHTTPError, GatewayService, clip, is_json

PREDICT_RE = re.compile(r"^/v1/models/([^/]+)(?:/versions/([^/]+))?/predict$")
UPLOAD_RE = re.compile(r"^/v1/models/[^/]+/versions$")
BODY_METHODS = ("POST", "PUT", "PATCH")

# (status, JSON body, headers): a refusal the Edge answers itself
Refusal = tuple[int, dict[str, Any], dict[str, str] | None]
PredictHandler = Callable[[Request, str, str | None], Awaitable[tuple[Response, Callable[[], None]]]]


async def _send_json(send: Send, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
    body = json_bytes(obj)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> Refusal:
    return 413, {"error": "body_too_large", "detail": f"body exceeds {limit} bytes"}, None


def _declared_too_large(length: bytes | None, limit: int) -> bool:
    if length is None:
        return False
    try:
        return int(length) > limit
    except ValueError:
        return True


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    v = headers.get(name)
    return None if v is None else v.decode("latin-1")


def _media_type_refusal(headers: dict[bytes, bytes], upload: bool) -> Refusal | None:
    """415 unless the body is JSON (multipart/form-data for a model upload)."""
    ctype = _header(headers, b"content-type")
    ok = (ctype or "").split(";")[0].strip().lower() == "multipart/form-data" if upload else is_json(ctype)
    if ok:
        return None
    want = "multipart/form-data" if upload else "application/json"
    return 415, {"error": "unsupported_media_type", "detail": f"send the body as {want}, not {clip(ctype, 64)!r}"}, None


class _TooLarge(Exception):
    pass


class _LimitedBody:
    """The request's ``receive`` that raises ``_TooLarge`` once the body streams past ``limit`` bytes, and a
    ``send`` that stays quiet once the Edge has answered 413 itself."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.seen = 0
        self.sent_413 = False

    async def receive(self) -> Message:
        msg = await self._receive()
        if msg["type"] == "http.request":
            self.seen += len(msg.get("body", b""))
            if self.seen > self.limit:
                raise _TooLarge()
        return msg

    async def send(self, msg: Message) -> None:
        if not self.sent_413:
            await self._send(msg)


class Edge:
    """ASGI middleware in front of the app: body limit, authentication gate for API paths, media-type check
    for JSON routes, and per-route-template HTTP metrics."""

    def __init__(self, app: ASGIApp, service: GatewayService, limit: int, upload_limit: int | None = None,
                 gated: Callable[[str], bool] | None = None, router: Any = None,
                 predict: PredictHandler | None = None, predict_routes: Sequence[Any] | None = None) -> None:
        self.app, self.service, self.default_limit = app, service, limit
        self.upload_limit = upload_limit or limit
        self.gated = gated or (lambda path: path.startswith("/v1/"))
        self.router = router  # the app's routes: to name a refused path's template
        self.predict = predict  # served here, without the router (with its routes: unversioned, versioned)
        self.predict_routes = predict_routes

    def template(self, scope: Scope) -> str:
        """The route template a path matches (``unmatched`` when none): never the raw path."""
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", "unmatched"))
        for r in served_routes(getattr(self.router, "routes", ())):
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
        refusal = _too_large(limit) if _declared_too_large(headers.get(b"content-length"), limit) else None
        predict: re.Match[str] | None = None
        if refusal is None and self.gated(path):
            refusal, predict = await self._gate(scope, headers, upload)
        if refusal is not None:
            await _send_json(send, *refusal)
            return
        body = _LimitedBody(receive, send, limit)
        try:
            if predict is not None and self.predict is not None:  # the hot path skips the router's layers
                await self._predict(scope, body.receive, body.send, predict.group(1), predict.group(2))
            else:
                await self.app(scope, body.receive, body.send)
        except _TooLarge:
            body.sent_413 = True
            await _send_json(send, *_too_large(limit))

    async def _gate(self, scope: Scope, headers: dict[bytes, bytes],
                    upload: bool) -> tuple[Refusal | None, re.Match[str] | None]:
        """Authenticate an API request (the principal goes into the scope) and check its media type; a
        refusal, or the predict path's match (None for other paths)."""
        path, method = scope.get("path", ""), scope.get("method", "")
        try:
            principal = await self.service.admit(
                _header(headers, b"authorization"), (scope.get("client") or ("-",))[0], lambda: self._where(scope))
        except GatewayHTTPError as exc:
            return (exc.status, {"error": exc.reason, "detail": exc.detail}, exc.headers), None
        scope[PRINCIPAL_KEY] = principal
        predict = PREDICT_RE.match(path) if method == "POST" else None
        length = headers.get(b"content-length")
        has_body = (length not in (None, b"0")) or b"transfer-encoding" in headers
        if method in BODY_METHODS and has_body and predict is None:
            return _media_type_refusal(headers, upload), None
        return None, predict

    async def _predict(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        if self.predict is None or self.predict_routes is None:
            raise RuntimeError("the Edge serves predict only when given its handler and routes")
        scope["route"] = self.predict_routes[version is not None]
        scope["path_params"] = {"name": name} if version is None else {"name": name, "version": version}
        try:
            response, after = await self.predict(Request(scope, receive), name, version)
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
