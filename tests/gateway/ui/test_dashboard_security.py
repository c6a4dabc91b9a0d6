"""Dashboard security (fast, TestClient): login, roles, session cookie, CSRF on rollback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SIDECAR = {"input_shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A gateway with two signed digits versions (2 in production) and operator/auditor/client keys."""
    from fastapi.testclient import TestClient

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.models.zoo import demo_model_path
    from bastion.store.db import dispose_engines

    home = tmp_path_factory.mktemp("ui-home")
    zoo = Path(os.environ["BASTION_HOME"]) / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    (home / "zoo").symlink_to(zoo, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_HOME", str(home))
        mp.delenv("BASTION_DB_URL", raising=False)
        mp.delenv("BASTION_GATEWAY_CONFIG", raising=False)
        dispose_engines()
        priv, pub = generate_keypair(home / "signer")
        src = demo_model_path("digits")
        config = GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}})
        app = create_app(config, preload=False)
        service = app.state.service
        for v in ("1", "2"):
            p = home / f"digits-v{v}.pt"
            shutil.copyfile(src, p)
            p.with_name(p.name + ".bastion.json").write_text(json.dumps(SIDECAR))
            sign_model(p, priv)
            service.registry.push(p, "digits", v, keys=[pub], promote=True)
        keys = {role: create_client(f"ui-{role}", role=role, models=["digits"], db_url=config.db_url)
                for role in ("operator", "auditor", "client")}
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield {"app": app, "service": service, "client": client, "keys": keys, "config": config}
        dispose_engines()


def _login(ui: dict[str, Any], role: str) -> Any:
    from fastapi.testclient import TestClient

    c = TestClient(ui["app"], base_url="http://127.0.0.1")
    r = c.post("/ui/login", data={"credential": ui["keys"][role][1], "next": "/ui"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c, r


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    i = html.index(marker) + len(marker)
    return html[i:html.index('"', i)]


def test_ui_without_session_redirects_to_login(ui: dict[str, Any]) -> None:
    c = ui["client"]
    for path in ("/ui", "/ui/audit", "/ui/incidents/1", "/ui/models/digits/rollback"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login?next=")
    r = c.post("/ui/models/digits/rollback", data={"csrf_token": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    # a forged cookie is no session
    r = c.get("/ui", cookies={"bastion_ui": "forged"}, follow_redirects=False)
    assert r.status_code == 303
    login = c.get("/ui/login")
    assert login.status_code == 200 and 'name="credential"' in login.text
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"


def test_client_role_key_is_refused(ui: dict[str, Any]) -> None:
    c = ui["client"]
    r = c.post("/ui/login", data={"credential": ui["keys"]["client"][1]}, follow_redirects=False)
    assert r.status_code == 403
    assert "may not use the dashboard" in r.text
    assert "bastion_ui" not in r.headers.get("set-cookie", "")
    bad = c.post("/ui/login", data={"credential": "bst_" + "0" * 24 + "_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "set-cookie" not in bad.headers


def test_operator_session_cookie_is_opaque_httponly_strict(ui: dict[str, Any]) -> None:
    c, r = _login(ui, "operator")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/ui" in cookie
    sid = c.cookies.get("bastion_ui")
    key = ui["keys"]["operator"][1]
    assert sid and key not in cookie and key.split("_")[1] not in sid
    page = c.get("/ui")
    assert page.status_code == 200
    assert 'id="models"' in page.text and "production" in page.text and "verified" in page.text
    assert page.headers["cache-control"] == "no-store"
    # the session table holds only a hash of the id
    assert sid not in ui["app"].state.ui_sessions._rows


def test_open_redirect_and_cross_site_login_are_refused(ui: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    c = TestClient(ui["app"], base_url="http://127.0.0.1")
    r = c.post("/ui/login", data={"credential": ui["keys"]["auditor"][1], "next": "//evil.example/ui"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    # login CSRF: a form posted from another site is refused, one from this origin accepted
    r = c.post("/ui/login", data={"credential": ui["keys"]["auditor"][1]}, follow_redirects=False,
               headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    r = c.post("/ui/login", data={"credential": ui["keys"]["auditor"][1]}, follow_redirects=False,
               headers={"Origin": "http://127.0.0.1"})
    assert r.status_code == 303


def test_rollback_without_or_with_wrong_csrf_is_403(ui: dict[str, Any]) -> None:
    c, _ = _login(ui, "operator")
    reg = ui["service"].registry
    before = reg.resolve("digits", "production").version
    assert c.post("/ui/models/digits/rollback", data={}, follow_redirects=False).status_code == 403
    assert c.post("/ui/models/digits/rollback", data={"csrf_token": "guess"},
                  follow_redirects=False).status_code == 403
    assert reg.resolve("digits", "production").version == before


def test_auditor_views_but_cannot_roll_back(ui: dict[str, Any]) -> None:
    c, _ = _login(ui, "auditor")
    overview = c.get("/ui")
    assert overview.status_code == 200 and 'class="action' not in overview.text  # no roll back/promote controls
    audit = c.get("/ui/audit", params={"action": "ui.login"})
    assert audit.status_code == 200 and 'id="chain-status"' in audit.text and "ui.login" in audit.text
    assert "OK" in audit.text
    assert c.get("/ui/models/digits/rollback").status_code == 403
    token = _csrf(c.get("/ui").text)
    r = c.post("/ui/models/digits/rollback", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403
    assert c.get("/ui/models/digits/promote/1").status_code == 403
    assert c.post("/ui/models/digits/promote/1", data={"csrf_token": token}, follow_redirects=False).status_code == 403
    assert ui["service"].registry.resolve("digits", "production").version == "2"


def test_operator_rollback_with_confirmation_and_logout(ui: dict[str, Any]) -> None:
    c, _ = _login(ui, "operator")
    reg = ui["service"].registry
    assert reg.resolve("digits", "production").version == "2"
    overview = c.get("/ui").text
    assert 'class="action rollback" href="/ui/models/digits/rollback"' in overview
    assert 'class="action promote" href="/ui/models/digits/promote/1"' in overview
    r = c.post("/ui/models/digits/promote/1", data={}, follow_redirects=False)  # no CSRF token
    assert r.status_code == 403 and reg.resolve("digits", "production").version == "2"
    confirm = c.get("/ui/models/digits/rollback")
    assert confirm.status_code == 200 and 'id="target">1<' in confirm.text
    r = c.post("/ui/models/digits/rollback", data={"csrf_token": _csrf(confirm.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert reg.resolve("digits", "production").version == "1"
    reg.promote("digits", "2")  # restore for other tests
    ui["service"].invalidate()
    token = _csrf(c.get("/ui").text)
    assert c.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert c.get("/ui", follow_redirects=False).status_code == 303


def test_revoked_key_ends_its_session(ui: dict[str, Any]) -> None:
    from bastion.gateway.clients import create_client, revoke_client

    cfg = ui["config"]
    info, key = create_client("ui-op-2", role="operator", models=["*"], db_url=cfg.db_url)
    from fastapi.testclient import TestClient

    c = TestClient(ui["app"], base_url="http://127.0.0.1")
    assert c.post("/ui/login", data={"credential": key}, follow_redirects=False).status_code == 303
    assert c.get("/ui", follow_redirects=False).status_code == 200
    revoke_client(info.id, db_url=cfg.db_url)
    ui["service"].keys.invalidate()
    assert c.get("/ui", follow_redirects=False).status_code == 303


def test_session_store_expires_and_chart_has_points() -> None:
    from bastion.gateway.auth import ROLE_SCOPES, Principal
    from bastion.gateway.ui.charts import line_chart
    from bastion.gateway.ui.sessions import SessionStore, csrf_ok

    store = SessionStore(idle_s=60, absolute_s=60)
    p = Principal(id="x", name="x", role="operator", scopes=ROLE_SCOPES["operator"])
    sid = store.create(p, not_after=0.0)  # already past (e.g. an expired JWT)
    assert store.get(sid) is None
    sid = store.create(p)
    s = store.get(sid)
    assert s is not None and csrf_ok(s, s.csrf) and not csrf_ok(s, "") and not csrf_ok(s, s.csrf + "x")
    svg = line_chart([(0, 0.1), (1, 0.5), (2, 2.0)], threshold=1.0, title="t", y_label="y", css_id="c")
    assert svg.count('class="pt') == 3 and svg.count('class="pt over"') == 1 and "<polyline" in svg


def test_jwt_login_session_bounded_by_exp(ui: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt
    from fastapi.testclient import TestClient

    from bastion.gateway.app import create_app
    from bastion.gateway.config import GatewayConfig

    monkeypatch.setenv("UI_TEST_JWT_SECRET", "s" * 40)
    cfg = GatewayConfig.model_validate({"auth": {"jwt": {
        "issuer": "https://idp.test", "audience": "bastion", "algorithms": ["HS256"],
        "hmac_secret_env": "UI_TEST_JWT_SECRET"}}})
    app = create_app(cfg, preload=False)
    now = int(time.time())

    def token(role: str, exp: int) -> str:
        return jwt.encode({"sub": f"{role}-1", "iss": "https://idp.test", "aud": "bastion", "exp": exp,
                           "bastion_role": role, "bastion_models": ["*"]}, "s" * 40, algorithm="HS256")

    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.post("/ui/login", data={"credential": token("client", now + 120)},
                      follow_redirects=False).status_code == 403
        assert c.post("/ui/login", data={"credential": token("operator", now - 5)},
                      follow_redirects=False).status_code == 401
        r = c.post("/ui/login", data={"credential": token("auditor", now + 120)}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/ui", follow_redirects=False).status_code == 200
        (row,) = app.state.ui_sessions._rows.values()
        assert row.principal.via == "jwt" and row.key_id is None and row.expires <= now + 120


@pytest.mark.redis
def test_sessions_shared_across_replicas_through_redis(ui: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from bastion.gateway.app import create_app
    from bastion.gateway.config import GatewayConfig

    cfg = GatewayConfig.model_validate({"redis_url": "redis://127.0.0.1:6379/0"})
    a, b = create_app(cfg, preload=False), create_app(cfg, preload=False)
    with TestClient(a, base_url="http://127.0.0.1") as ca, TestClient(b, base_url="http://127.0.0.1") as cb:
        r = ca.post("/ui/login", data={"credential": ui["keys"]["operator"][1]}, follow_redirects=False)
        assert r.status_code == 303
        sid = ca.cookies.get("bastion_ui")
        assert sid
        cb.cookies.set("bastion_ui", sid)
        page = cb.get("/ui", follow_redirects=False)  # the other replica knows the session
        assert page.status_code == 200
        assert a.state.ui_sessions.redis.ttl("bastion:ui:session:" + hashlib.sha256(sid.encode()).hexdigest()) > 0
        assert cb.post("/ui/logout", data={"csrf_token": _csrf(page.text)}, follow_redirects=False).status_code == 303
        assert ca.get("/ui", follow_redirects=False).status_code == 303  # logged out everywhere


def test_incidents_come_through_the_registered_book(ui: dict[str, Any]) -> None:
    """The dashboard reads incidents through ``bastion.incident_books`` (respond registers it); the
    gateway itself does not import ``bastion.respond``. Without a book the pages still answer."""
    from bastion.core.severity import Severity
    from bastion.gateway.incidents import NoIncidents
    from bastion.monitor.alerts import Alert
    from bastion.respond.incidents import IncidentBook, open_or_update

    inc, created = open_or_update(Alert(type="extraction", severity=Severity.HIGH, title="Book test: extraction",
                                        model="digits", version="2", client="cl_book"), db_url=ui["config"].db_url)
    assert created
    c, _ = _login(ui, "auditor")
    overview = c.get("/ui")
    assert overview.status_code == 200 and "Book test: extraction" in overview.text
    assert isinstance(ui["app"].state.incident_book, IncidentBook)
    page = c.get(f"/ui/incidents/{inc['id']}")
    assert page.status_code == 200 and "cl_book" in page.text
    ui["app"].state.incident_book = NoIncidents()
    try:
        assert "Book test: extraction" not in c.get("/ui").text
        missing = c.get(f"/ui/incidents/{inc['id']}")
        assert missing.status_code == 404 and f"no incident with id {inc['id']}" in missing.text
    finally:
        ui["app"].state.incident_book = None  # looked up again from the entry point
