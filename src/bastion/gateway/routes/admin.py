"""Admin API routes: models (list, push, promote, rollback, output policy) and clients (list, create,
revoke, throttle)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bastion.core.errors import InvalidInputError, RegistryError
from bastion.gateway import clients as cl
from bastion.gateway.auth import Principal
from bastion.gateway.routes.common import ServiceDep, requires, scoped

router = APIRouter()


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromoteBody(_Body):
    version: str = Field(min_length=1, max_length=64)
    alias: str = Field(default="production", min_length=1, max_length=64)


class RollbackBody(_Body):
    alias: str = Field(default="production", min_length=1, max_length=64)


class PolicyBody(_Body):
    model_config = ConfigDict(extra="allow")
    type: str


class ClientBody(_Body):
    name: str = Field(min_length=1, max_length=128)
    role: str = "client"
    models: list[str] = Field(min_length=1, description="Model names the client may call; '*' (all) must be "
                                                           "written explicitly.")
    scopes: list[str] | None = None
    expires_in_days: float | None = Field(default=None, gt=0)
    budget: dict[str, str] | None = None


class ThrottleBody(_Body):
    requests: str | None = None
    samples: str | None = None


# ------------------------------------------------------------------ models
@scoped(router, "GET", "/v1/models", "models:read", tags=["models"])
async def list_models(service: ServiceDep, p: Principal = requires("models:read")) -> dict[str, Any]:
    rows = await run_in_threadpool(service.registry.list)
    return {"models": [r.to_dict() | {"path": None} for r in rows]}


@scoped(router, "GET", "/v1/models/{name}", "models:read", tags=["models"])
async def get_model(name: str, service: ServiceDep, p: Principal = requires("models:read")) -> dict[str, Any]:
    rows = await run_in_threadpool(service.registry.list, name)
    if not rows:
        raise RegistryError(f"no model named {name!r}")
    policy = await run_in_threadpool(service.registry.output_policy, name)
    return {"name": name, "versions": [r.to_dict() | {"path": None} for r in rows], "output_policy": policy}


def _upload_dir(model: UploadFile, extras: dict[str, UploadFile | None]) -> tuple[Path, Path]:
    """A private temporary folder holding the model file (its own name) and its ``extras`` (suffix → file)."""
    fname = Path(model.filename or "").name
    if not fname or fname.startswith(".") or "/" in (model.filename or ""):
        raise InvalidInputError("model upload needs a plain file name with its extension, e.g. digits.pt")
    tmp = Path(tempfile.mkdtemp(prefix="bastion-push-"))
    try:
        for suffix, up in {"": model, **extras}.items():
            if up is not None:
                with (tmp / (fname + suffix)).open("wb") as fh:
                    shutil.copyfileobj(up.file, fh, 1 << 20)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, tmp / fname


@scoped(router, "POST", "/v1/models/{name}/versions", "models:write", tags=["models"], status_code=201)
async def push(
    name: str,
    service: ServiceDep,
    model: UploadFile = File(..., description="The model file (its name keeps its extension)."),
    signature: UploadFile | None = File(None, description="MODEL.sig from `bastion model sign`."),
    attestation: UploadFile | None = File(None, description="MODEL.att.json (optional)."),
    sidecar: UploadFile | None = File(None, description="MODEL.bastion.json input spec (optional)."),
    version: str | None = Form(None),
    allow_unsigned: bool = Form(False),
    p: Principal = requires("models:write"),
) -> dict[str, Any]:
    """Push a model (multipart): scanned, signature-verified and probed exactly as `bastion registry push`."""
    tmp, path = _upload_dir(model, {".sig": signature, ".att.json": attestation, ".bastion.json": sidecar})
    try:
        info = await run_in_threadpool(lambda: service.registry.push(
            path, name, version, allow_unsigned=allow_unsigned, actor=p))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    service.invalidate()
    return info.to_dict() | {"path": None}


@scoped(router, "POST", "/v1/models/{name}/promote", "models:write", tags=["models"])
async def promote(name: str, body: PromoteBody, service: ServiceDep,
                  p: Principal = requires("models:write")) -> dict[str, Any]:
    out = await run_in_threadpool(lambda: service.registry.promote(name, body.version, body.alias, actor=p))
    service.invalidate()
    return out


@scoped(router, "POST", "/v1/models/{name}/rollback", "models:write", tags=["models"])
async def rollback(name: str, service: ServiceDep, body: RollbackBody | None = None,
                   p: Principal = requires("models:write")) -> dict[str, Any]:
    alias = body.alias if body else "production"
    out = await run_in_threadpool(lambda: service.registry.rollback(name, alias, actor=p))
    service.invalidate()
    return out


@scoped(router, "PUT", "/v1/models/{name}/policy", "models:write", tags=["models"])
async def set_policy(name: str, body: PolicyBody, service: ServiceDep,
                     p: Principal = requires("models:write")) -> dict[str, Any]:
    out = await run_in_threadpool(lambda: service.registry.set_output_policy(name, body.model_dump(), actor=p))
    service.invalidate()
    return out


# ------------------------------------------------------------------ clients
@scoped(router, "GET", "/v1/clients", "clients:read", tags=["clients"])
async def list_clients(service: ServiceDep, p: Principal = requires("clients:read")) -> dict[str, Any]:
    rows = await run_in_threadpool(cl.list_clients, service.config.db_url)
    return {"clients": [c.to_dict() for c in rows]}


@scoped(router, "POST", "/v1/clients", "clients:write", tags=["clients"], status_code=201)
async def create_client(body: ClientBody, service: ServiceDep,
                        p: Principal = requires("clients:write")) -> dict[str, Any]:
    info, key = await run_in_threadpool(lambda: cl.create_client(
        body.name, body.role, body.models, body.scopes, expires_in_days=body.expires_in_days,
        budget=body.budget, db_url=service.config.db_url, actor=p, audit_log=service.audit))
    return {**info.to_dict(), "api_key": key, "note": "the key is shown once; only its hash is stored"}


@scoped(router, "DELETE", "/v1/clients/{ident}", "clients:write", tags=["clients"])
async def revoke(ident: str, service: ServiceDep, p: Principal = requires("clients:write")) -> dict[str, Any]:
    info = await run_in_threadpool(lambda: cl.revoke_client(ident, db_url=service.config.db_url, actor=p,
                                                            audit_log=service.audit))
    service.invalidate()
    return info.to_dict()


@scoped(router, "POST", "/v1/clients/{ident}/throttle", "clients:write", tags=["clients"])
async def throttle(ident: str, body: ThrottleBody, service: ServiceDep,
                   p: Principal = requires("clients:write")) -> dict[str, Any]:
    info = await run_in_threadpool(lambda: cl.throttle_client(
        ident, body.requests, body.samples, db_url=service.config.db_url, actor=p, audit_log=service.audit))
    service.invalidate()
    return info.to_dict()
