"""How a refusal raised in a handler becomes the JSON error body (``{"error", "detail"}``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.core.errors import AuthError, BastionError, ConfigError, InvalidInputError, RegistryError
from bastion.gateway.auth import Forbidden
from bastion.gateway.routes.common import error_response
from bastion.gateway.service import GatewayHTTPError

HTTP_REASONS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def gateway_error(_: Request, exc: GatewayHTTPError) -> Response:
    return error_response(exc.status, exc.reason, exc.detail, exc.headers)


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    reason = HTTP_REASONS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, reason, exc.detail, dict(exc.headers or {}))


async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
    return error_response(422, "invalid_request", jsonable_encoder(exc.errors()))


def _bastion_status(exc: BastionError) -> tuple[int, str]:
    if isinstance(exc, Forbidden):
        return 403, "forbidden"
    if isinstance(exc, AuthError):
        return 401, "unauthenticated"
    if isinstance(exc, RegistryError):
        return (404 if "no " in str(exc) else 409), "registry"
    if isinstance(exc, InvalidInputError | ConfigError):
        return 422, "invalid"
    return 400, type(exc).__name__


async def bastion_error(_: Request, exc: BastionError) -> Response:
    status, reason = _bastion_status(exc)
    return error_response(status, reason, str(exc))


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    GatewayHTTPError: gateway_error,
    StarletteHTTPException: http_error,
    RequestValidationError: invalid_request,
    BastionError: bastion_error,
}
