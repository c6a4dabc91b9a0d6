"""What every router shares: the service and principal dependencies, the scoped route decorator, the
JSON error body and its documented responses.

Handlers reach the running ``GatewayService`` through ``app.state.service`` (the ``ServiceDep``
dependency), never through a closure, so each router is a module-level ``APIRouter`` that
``create_app`` includes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import cache
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from bastion.core.errors import AuthError
from bastion.gateway.auth import Forbidden, Principal
from bastion.gateway.service import GatewayHTTPError, GatewayService

F = TypeVar("F", bound=Callable[..., Any])

bearer = HTTPBearer(auto_error=False, description="An API key (bst_…) or an OIDC/JWT access token.")
PRINCIPAL_KEY = "bastion.principal"  # where the Edge leaves the principal it authenticated (ASGI scope)
SCOPE_KEY = "x-bastion-scope"  # each scoped operation's OpenAPI extension (and the default-deny table)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "detail"],
    "properties": {"error": {"type": "string", "description": "Machine-readable reason."},
                   "detail": {"description": "What was wrong (a string, or a list of {loc, msg, type})."}},
}
ERR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request was refused (see error).", "content": ERR_CONTENT},
    401: {"description": "Missing, invalid, expired or revoked credentials.", "content": ERR_CONTENT},
    403: {"description": "The principal lacks the scope or the model grant.", "content": ERR_CONTENT},
    404: {"description": "Unknown model, version or client.", "content": ERR_CONTENT},
    409: {"description": "The change conflicts with the registry's state.", "content": ERR_CONTENT},
    413: {"description": "Body larger than the limit.", "content": ERR_CONTENT},
    415: {"description": "The body is not JSON (or, for uploads, not multipart/form-data).", "content": ERR_CONTENT},
    422: {"description": "The request does not validate (loc names the field).", "content": ERR_CONTENT},
    503: {"description": "A store the answer depends on is unreachable (fail closed).", "content": ERR_CONTENT},
}


def json_bytes(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=str)
    except TypeError:  # e.g. an integer beyond 64 bits echoed from a refused body: the stdlib encoder takes any int
        return json.dumps(obj, default=str).encode()


def error_response(status: int, reason: str, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """The gateway's refusal: ``{"error": reason, "detail": detail}``."""
    return Response(json_bytes({"error": reason, "detail": detail}), status_code=status, headers=headers,
                    media_type="application/json")


def get_service(request: Request) -> GatewayService:
    """The app's ``GatewayService`` (``app.state.service``)."""
    return request.app.state.service


ServiceDep = Annotated[GatewayService, Depends(get_service)]


async def _principal(request: Request, scope_name: str) -> Principal:
    service = get_service(request)
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
    return p


@cache
def principal_for(scope_name: str) -> Callable[..., Awaitable[Principal]]:
    """The dependency that yields the request's principal once it holds ``scope_name`` (401/403 otherwise).
    The bearer scheme is declared so that the OpenAPI document lists the security requirement."""
    async def _dep(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
        return await _principal(request, scope_name)

    _dep.__name__ = f"require_{scope_name.replace(':', '_').replace('-', '_')}"
    return _dep


def requires(scope_name: str) -> Any:
    """``p: Principal = requires("models:read")``: a handler parameter holding the checked principal."""
    return Depends(principal_for(scope_name))


def scoped(router: APIRouter, method: str, path: str, scope_name: str | None, **kw: Any) -> Callable[[F], F]:
    """``router.api_route`` for one method, recording the scope the route needs (``x-bastion-scope``, read by
    ``create_app``'s default-deny check) and documenting the error responses of every scoped API route."""
    if scope_name is not None:
        kw["openapi_extra"] = {**kw.get("openapi_extra", {}), SCOPE_KEY: scope_name}
        if kw.get("include_in_schema", True):
            kw["responses"] = {**ERROR_RESPONSES, **kw.get("responses", {})}
    return router.api_route(path, methods=[method], **kw)


def served_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every route an app serves, in matching order, each with ``path``, ``methods``, ``openapi_extra`` and
    ``matches``. FastAPI from 0.13x keeps an included router as one entry of ``app.routes`` (its routes are
    read through ``iter_route_contexts``); older versions copy the routes into ``app.routes``."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # pragma: no cover - FastAPI before the lazy include
        yield from routes
        return
    yield from iter_route_contexts(routes)
