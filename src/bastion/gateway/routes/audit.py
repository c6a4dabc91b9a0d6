"""Audit API routes (scope ``audit:read``): verify the signed hash chain, export records."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bastion.artifacts.keys import public_path_for
from bastion.core.errors import InvalidInputError
from bastion.gateway.audit import export_records, verify_chain
from bastion.gateway.auth import Principal
from bastion.gateway.routes.common import ServiceDep, requires, scoped

router = APIRouter(tags=["audit"])
MAX_EXPORT = 100_000


@scoped(router, "GET", "/v1/audit/verify", "audit:read")
async def audit_verify(service: ServiceDep, p: Principal = requires("audit:read")) -> dict[str, Any]:
    pub = public_path_for(service.config.audit_key_path())
    rep = await run_in_threadpool(verify_chain, service.config.db_url, pub)
    return rep.to_dict()


@scoped(router, "GET", "/v1/audit/export", "audit:read")
async def audit_export(service: ServiceDep, from_seq: int | None = None, to_seq: int | None = None,
                       p: Principal = requires("audit:read")) -> dict[str, Any]:
    if from_seq is not None and to_seq is not None and to_seq - from_seq > MAX_EXPORT:
        raise InvalidInputError("export at most 100000 records per call")
    recs = await run_in_threadpool(lambda: export_records(service.config.db_url, from_seq, to_seq))
    return {"records": recs}
