"""``POST /v1/models/{name}/predict`` and ``…/versions/{version}/predict`` (scope ``predict``).

``answer`` is the whole predict: the Edge calls it directly on the hot path (without the router's
layers) and the two routes below call it when a request does reach the router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from bastion.gateway.config import GatewayConfig
from bastion.gateway.routes.common import (
    ERR_CONTENT,
    ERROR_RESPONSES,
    PRINCIPAL_KEY,
    error_response,
    get_service,
    scoped,
)
from bastion.gateway.service import GatewayHTTPError, clip

access_log = logging.getLogger("bastion.gateway.access")
router = APIRouter(tags=["predict"])

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
    429: {"description": "Query budget exhausted; see Retry-After.", "content": ERR_CONTENT},
    502: {"description": "The sandboxed model failed or its worker crashed.", "content": ERR_CONTENT},
    504: {"description": "The model did not answer within the timeout.", "content": ERR_CONTENT},
}
PREDICT_OPENAPI = {"security": [{"HTTPBearer": []}], "requestBody": {"required": True, "content": {
    "application/json": {"schema": PREDICT_BODY_SCHEMA}}}}
PREDICT_PATH = "/v1/models/{name}/predict"
PREDICT_VERSION_PATH = "/v1/models/{name}/versions/{version}/predict"


def _nothing() -> None:
    return None


async def answer(request: Request, name: str, version: str | None) -> tuple[Response, Callable[[], None]]:
    """The predict answer and the bookkeeping to run once it is sent."""
    service = get_service(request)
    p = request.scope.get(PRINCIPAL_KEY)
    if p is None:  # the Edge authenticates every /v1 path; this is a second lock on the door
        raise GatewayHTTPError(401, "unauthenticated", "missing credentials", {"WWW-Authenticate": "Bearer"})
    try:
        res = await service.predict(p, name, version, request.body, content_type=request.headers.get("content-type"))
    except GatewayHTTPError as exc:
        _log(service.config, exc.headers.get("X-Request-ID", "-"), name, version, exc.status, exc.reason)
        return error_response(exc.status, exc.reason, exc.detail, exc.headers), _nothing

    def after() -> None:
        res.after()
        _log(service.config, res.headers["X-Request-ID"], name, res.version, 200, "ok")

    return Response(res.body, media_type="application/json", headers=res.headers), after


async def _routed(request: Request, name: str, version: str | None) -> Response:
    response, after = await answer(request, name, version)
    response.background = BackgroundTask(after)
    return response


@scoped(router, "POST", PREDICT_PATH, "predict", responses=PREDICT_RESPONSES, openapi_extra=PREDICT_OPENAPI)
async def predict(request: Request, name: str) -> Response:
    """Predict with the model's production version (scope ``predict`` and a grant for the model)."""
    return await _routed(request, name, None)


@scoped(router, "POST", PREDICT_VERSION_PATH, "predict", responses=PREDICT_RESPONSES, openapi_extra=PREDICT_OPENAPI)
async def predict_version(request: Request, name: str, version: str) -> Response:
    """Predict with one pinned version (``predict:versions`` unless it is the production version)."""
    return await _routed(request, name, version)


# the two routes, unversioned then versioned: the Edge names them in the scope when it serves predict itself
ROUTES = tuple(router.routes)


def _log(config: GatewayConfig, rid: str, model: str, version: str | None, status: int, reason: str) -> None:
    if config.log_requests and access_log.isEnabledFor(logging.INFO):
        access_log.info("predict", extra={"event": {"request_id": rid, "model": clip(model), "version": clip(version),
                                                     "status": status, "reason": reason, "ts": time.time()}})
