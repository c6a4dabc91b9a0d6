"""The gateway"s route table and OpenAPI paths, pinned: users, clients generated from the OpenAPI
document and the schemathesis fuzz run script against them.

The tables below were captured from the app before the routes moved from closures inside
``create_app`` to module-level ``APIRouter``s; any change to them is a change of the public API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

# (method, path) of every route, in matching order (the first route that matches a request serves it)
ROUTES = [
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("HEAD", "/redoc"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/models/{name}/predict"),
    ("POST", "/v1/models/{name}/versions/{version}/predict"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("POST", "/v1/models/{name}/versions"),
    ("POST", "/v1/models/{name}/promote"),
    ("POST", "/v1/models/{name}/rollback"),
    ("PUT", "/v1/models/{name}/policy"),
    ("GET", "/v1/clients"),
    ("POST", "/v1/clients"),
    ("DELETE", "/v1/clients/{ident}"),
    ("POST", "/v1/clients/{ident}/throttle"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/export"),
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    ("POST", "/ui/logout"),
    ("GET", "/favicon.ico"),
    ("GET", "/ui"),
    ("GET", "/ui/incidents/{incident_id}"),
    ("GET", "/ui/models/{name}/rollback"),
    ("POST", "/ui/models/{name}/rollback"),
    ("GET", "/ui/models/{name}/promote/{version}"),
    ("POST", "/ui/models/{name}/promote/{version}"),
    ("GET", "/ui/audit"),
]

# OpenAPI: (method, path, operationId, x-bastion-scope, tags, documented status codes)
ERRORS = ("400", "401", "403", "404", "409", "413", "415", "422", "503")
OPERATIONS = [
    ("GET", "/healthz", "healthz_healthz_get", None,
     ("health",), ("200",)),
    ("GET", "/metrics", "metrics_route_metrics_get", "metrics:read",
     ("health",), ("200", *ERRORS)),
    ("GET", "/readyz", "readyz_readyz_get", None,
     ("health",), ("200", "503")),
    ("GET", "/v1/audit/export", "audit_export_v1_audit_export_get", "audit:read",
     ("audit",), ("200", *ERRORS)),
    ("GET", "/v1/audit/verify", "audit_verify_v1_audit_verify_get", "audit:read",
     ("audit",), ("200", *ERRORS)),
    ("GET", "/v1/clients", "list_clients_v1_clients_get", "clients:read",
     ("clients",), ("200", *ERRORS)),
    ("POST", "/v1/clients", "create_client_v1_clients_post", "clients:write",
     ("clients",), ("201", *ERRORS)),
    ("DELETE", "/v1/clients/{ident}", "revoke_v1_clients__ident__delete", "clients:write",
     ("clients",), ("200", *ERRORS)),
    ("POST", "/v1/clients/{ident}/throttle", "throttle_v1_clients__ident__throttle_post", "clients:write",
     ("clients",), ("200", *ERRORS)),
    ("GET", "/v1/models", "list_models_v1_models_get", "models:read",
     ("models",), ("200", *ERRORS)),
    ("GET", "/v1/models/{name}", "get_model_v1_models__name__get", "models:read",
     ("models",), ("200", *ERRORS)),
    ("PUT", "/v1/models/{name}/policy", "set_policy_v1_models__name__policy_put", "models:write",
     ("models",), ("200", *ERRORS)),
    ("POST", "/v1/models/{name}/predict", "predict_v1_models__name__predict_post", "predict",
     ("predict",), ("200", *ERRORS, "429", "502", "504")),
    ("POST", "/v1/models/{name}/promote", "promote_v1_models__name__promote_post", "models:write",
     ("models",), ("200", *ERRORS)),
    ("POST", "/v1/models/{name}/rollback", "rollback_v1_models__name__rollback_post", "models:write",
     ("models",), ("200", *ERRORS)),
    ("POST", "/v1/models/{name}/versions", "push_v1_models__name__versions_post", "models:write",
     ("models",), ("201", *ERRORS)),
    ("POST", "/v1/models/{name}/versions/{version}/predict", "predict_version_v1_models__name__versions__version__predict_post", "predict",
     ("predict",), ("200", *ERRORS, "429", "502", "504")),
]

# the scope each non-public route requires (the default-deny table, ``app.state.route_scopes``)
SCOPES = {
    ("DELETE", "/v1/clients/{ident}"): "clients:write",
    ("GET", "/metrics"): "metrics:read",
    ("GET", "/ui"): "models:read",
    ("GET", "/ui/audit"): "audit:read",
    ("GET", "/ui/incidents/{incident_id}"): "models:read",
    ("GET", "/ui/models/{name}/promote/{version}"): "models:write",
    ("GET", "/ui/models/{name}/rollback"): "models:write",
    ("GET", "/v1/audit/export"): "audit:read",
    ("GET", "/v1/audit/verify"): "audit:read",
    ("GET", "/v1/clients"): "clients:read",
    ("GET", "/v1/models"): "models:read",
    ("GET", "/v1/models/{name}"): "models:read",
    ("POST", "/ui/logout"): "models:read",
    ("POST", "/ui/models/{name}/promote/{version}"): "models:write",
    ("POST", "/ui/models/{name}/rollback"): "models:write",
    ("POST", "/v1/clients"): "clients:write",
    ("POST", "/v1/clients/{ident}/throttle"): "clients:write",
    ("POST", "/v1/models/{name}/predict"): "predict",
    ("POST", "/v1/models/{name}/promote"): "models:write",
    ("POST", "/v1/models/{name}/rollback"): "models:write",
    ("POST", "/v1/models/{name}/versions"): "models:write",
    ("POST", "/v1/models/{name}/versions/{version}/predict"): "predict",
    ("PUT", "/v1/models/{name}/policy"): "models:write",
}


def _build(gw_home: Path, gwt: Any, **over: Any) -> Any:
    from bastion.gateway.app import create_app

    return create_app(gwt.make_config(**over), preload=False)


@pytest.fixture(scope="module")
def app(gw_home: Path, gwt: Any) -> Iterator[Any]:
    app = _build(gw_home, gwt)
    yield app
    app.state.service.close()


def _route_table(app: Any) -> list[tuple[str, str]]:
    from bastion.gateway.routes.common import served_routes

    return [(m, r.path) for r in served_routes(app.routes) for m in sorted(getattr(r, "methods", None) or ())]


def test_the_route_table_is_unchanged(app: Any) -> None:
    assert _route_table(app) == ROUTES


def test_the_openapi_operations_are_unchanged(app: Any) -> None:
    spec = app.openapi()
    got = [(m.upper(), path, op["operationId"], op.get("x-bastion-scope"), tuple(op.get("tags", [])),
            tuple(sorted(op["responses"]))) for path, ops in spec["paths"].items() for m, op in ops.items()]
    assert sorted(got) == sorted((*op[:5], tuple(sorted(op[5]))) for op in OPERATIONS)
    assert list(spec["paths"]) == sorted({p for _, p, *_ in OPERATIONS}, key=list(spec["paths"]).index)
    assert {p for _, p, *_ in OPERATIONS} == {p for m, p in ROUTES if p.startswith(("/v1/", "/healthz", "/readyz",
                                                                                     "/metrics"))}
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_every_scoped_route_is_in_the_default_deny_table(app: Any) -> None:
    assert app.state.route_scopes == SCOPES
    with TestClient(app) as client:  # the dashboard and the API answer through the assembled routers
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/v1/models").status_code == 401
        assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/login?next=/ui"
        assert client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"


def test_metrics_public_serves_metrics_without_credentials(gw_home: Path, gwt: Any) -> None:
    app = _build(gw_home, gwt, metrics_public=True)  # before the routers, this config failed default deny
    try:
        assert _route_table(app) == ROUTES
        assert app.state.route_scopes == {k: v for k, v in SCOPES.items() if k != ("GET", "/metrics")}
        assert "x-bastion-scope" not in app.openapi()["paths"]["/metrics"]["get"]
        with TestClient(app) as client:
            r = client.get("/metrics")
            assert r.status_code == 200 and "bastion_" in r.text
            assert client.get("/v1/models").status_code == 401  # the API stays gated
    finally:
        app.state.service.close()


def test_a_route_without_a_scope_is_refused(gw_home: Path, gwt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import APIRouter

    from bastion.core.errors import ConfigError
    from bastion.gateway.routes import audit
    from bastion.gateway.routes.common import scoped

    extra = APIRouter()
    scoped(extra, "GET", "/v1/audit/open", None)(lambda: {})
    monkeypatch.setattr(audit, "router", extra)
    with pytest.raises(ConfigError, match="GET /v1/audit/open declares no scope"):
        _build(gw_home, gwt)
