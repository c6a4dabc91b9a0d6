"""The gateway end to end on SQLite: predict, the auth battery, validation, budgets, policy, metrics, admin."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

ISS, AUD = "https://idp.example.test", "bastion-gateway"


@pytest.fixture(scope="module")
def rsa_key(gw_home: Path) -> tuple[Any, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = gw_home / "idp.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


@pytest.fixture(scope="module")
def gw(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path, rsa_key: tuple[Any, Path], gwt: Any) -> Any:
    from sqlalchemy import update

    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import session_scope, upgrade
    from bastion.store.models_gateway import GatewayClient

    cfg = gwt.make_config(registry={"trusted_keys": [str(signer[1])]}, max_body_bytes=65536,
                          auth={"jwt": {"issuer": ISS, "audience": AUD, "algorithms": ["RS256"],
                                        "public_key_file": str(rsa_key[1]),
                                        "model_grants": [{"claim": "groups", "value": "ml-team",
                                                          "models": ["digits"]}]}})
    upgrade()
    info = Registry(cfg).push(gwt.signed_copy(digits_pt, gw_home / "src", "digits.pt", signer[0]), "digits")
    assert info.verified and info.aliases == ["production"]
    staged = Registry(cfg).push(gwt.signed_copy(digits_pt, gw_home / "src2", "digits.pt", signer[0]), "digits",
                                promote=False)
    assert staged.version == "2" and staged.aliases == []  # a staged, non-production version
    keys = {}
    for name, role, models, budget in [("alice", "client", ["digits"], None), ("bob", "client", ["other"], None),
                                       ("carol", "auditor", ["*"], None), ("root", "admin", ["*"], None),
                                       ("ops", "operator", ["*"], None), ("eve", "client", ["digits"], None),
                                       ("old", "client", ["digits"], None),
                                       ("tiny", "client", ["digits"], {"requests": "3/minute"})]:
        c, k = create_client(name, role, models, budget=budget)
        keys[name] = (c.id, k)
    c, k = create_client("tester", "client", ["digits"], ["predict", "predict:versions"])
    keys["tester"] = (c.id, k)
    from bastion.gateway.clients import revoke_client

    revoke_client("eve")
    with session_scope() as s:
        s.execute(update(GatewayClient).where(GatewayClient.name == "old")
                  .values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    app = create_app(cfg, preload=False)
    with TestClient(app) as client:
        yield SimpleNamespace(client=client, keys=keys, app=app, cfg=cfg)


def _auth(keys: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[who][1]}"}


def _x(n: int = 2, seed: int = 0) -> list[Any]:
    return np.random.default_rng(seed).random((n, 1, 8, 8)).round(4).tolist()


def _token(key: Any, **over: Any) -> str:
    now = int(time.time())
    claims = {"sub": "svc-1", "iss": ISS, "aud": AUD, "exp": now + 300, "nbf": now - 5, "iat": now,
              "bastion_role": "client", "bastion_models": ["digits"], "scope": "predict"}
    alg = over.pop("alg", "RS256")
    claims.update(over)
    return jwt.encode(claims, key, algorithm=alg)


def test_predict_returns_labels_probabilities_and_an_audited_record(gw: Any) -> None:
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(3)}, headers=_auth(gw.keys, "alice"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "digits" and body["version"] == "1"
    assert len(body["predictions"]) == 3 and np.allclose(np.sum(body["probabilities"], axis=1), 1, atol=1e-5)
    assert body["predictions"] == np.argmax(body["probabilities"], axis=1).tolist()
    from bastion.gateway.audit import export_records

    seq = int(r.headers["X-Audit-Seq"])
    rec = export_records(None, seq, seq)[0]
    assert rec["actor"] == f"api_key:{gw.keys['alice'][0]}" and rec["body"]["decision"] == "allow"
    assert rec["body"]["output"]["labels"] == body["predictions"]
    assert rec["body"]["request_id"] == r.headers["X-Request-ID"]
    # pinned version route, and flat inputs are accepted too
    flat = np.asarray(_x(1)).reshape(1, 64).tolist()
    r2 = gw.client.post("/v1/models/digits/versions/1/predict", json={"inputs": flat}, headers=_auth(gw.keys, "alice"))
    assert r2.status_code == 200 and r2.json()["version"] == "1"


def _bad_credentials(keys: dict[str, Any], rsa_key: Any) -> list[tuple[str, dict[str, str], int]]:
    priv, pub_path = rsa_key
    alice_key = keys["alice"][1]
    tampered = _token(priv)
    head, payload, sig = tampered.split(".")
    sig = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    none_token = jwt.encode({"sub": "x", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 60,
                             "bastion_role": "admin"}, None, algorithm="none")
    hs_confused = _hs_with_public_key(pub_path)
    return [
        ("no header", {}, 401),
        ("not bearer", {"Authorization": f"Basic {alice_key}"}, 401),
        ("wrong key", {"Authorization": "Bearer bst_" + "0" * 24 + "_" + "x" * 43}, 401),
        ("right id wrong secret", {"Authorization": "Bearer " + alice_key[:-6] + "AAAAAA"}, 401),
        ("garbage", {"Authorization": "Bearer hello"}, 401),
        ("revoked", _auth(keys, "eve"), 401),
        ("expired", _auth(keys, "old"), 401),
        ("wrong model", _auth(keys, "bob"), 403),
        ("auditor role", _auth(keys, "carol"), 403),
        ("jwt alg none", {"Authorization": f"Bearer {none_token}"}, 401),
        ("jwt HS256 with public key", {"Authorization": f"Bearer {hs_confused}"}, 401),
        ("jwt wrong issuer", {"Authorization": f"Bearer {_token(priv, iss='https://evil.test')}"}, 401),
        ("jwt wrong audience", {"Authorization": f"Bearer {_token(priv, aud='other')}"}, 401),
        ("jwt expired", {"Authorization": f"Bearer {_token(priv, exp=int(time.time()) - 60)}"}, 401),
        ("jwt not yet valid", {"Authorization": f"Bearer {_token(priv, nbf=int(time.time()) + 600)}"}, 401),
        ("jwt tampered signature", {"Authorization": f"Bearer {head}.{payload}.{sig}"}, 401),
        ("jwt wrong model", {"Authorization": f"Bearer {_token(priv, bastion_models=['other'])}"}, 403),
    ]


def _hs_with_public_key(pub_path: Path) -> str:
    """An HS256 token 'signed' with the RSA public key PEM (the classic RS/HS confusion)."""
    import base64
    import hashlib
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "x", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 60,
                           "bastion_role": "admin"}).encode())
    sig = hmac.new(pub_path.read_bytes(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_auth_battery_never_predicts(gw: Any, rsa_key: Any) -> None:
    from bastion.gateway.audit import export_records
    from bastion.gateway.refusals import request_id_chain

    service = gw.app.state.service
    service.write_refusals(force=True)  # start from an empty window
    refused_ids = []
    for label, headers, status in _bad_credentials(gw.keys, rsa_key):
        r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)}, headers=headers)
        assert r.status_code == status, (label, r.status_code, r.text)
        assert "predictions" not in r.text and "probabilities" not in r.text, label
        if status == 401:
            assert r.headers.get("WWW-Authenticate") == "Bearer", label
            refused_ids.append(r.headers["X-Request-ID"])
    # anonymous refusals: one aggregated record per (reason, source) and window, not one row per request
    assert service.write_refusals(force=True) == 1
    service.audit.flush()
    rec = [r for r in export_records() if r["kind"] == "refusal"][-1]["body"]
    assert rec["reason"] == "unauthenticated" and rec["source"] == "testclient" and rec["count"] == len(refused_ids)
    assert {"missing", "malformed_header", "invalid_key", "revoked", "expired", "invalid_jwt"} <= set(rec["problems"])
    assert rec["routes"] == {"/v1/models/{name}/predict": len(refused_ids)}
    assert rec["request_id_chain_sha256"] == request_id_chain(refused_ids)  # the log proves which requests
    denied = [r for r in export_records() if r["body"].get("decision") == "deny:forbidden"]
    assert len(denied) >= 3  # authenticated refusals (wrong model, auditor, JWT for another model) stay per request


def test_valid_jwt_predicts(gw: Any, rsa_key: Any) -> None:
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                    headers={"Authorization": f"Bearer {_token(rsa_key[0])}"})
    assert r.status_code == 200, r.text


def test_key_check_time_does_not_depend_on_prefix_match(gw: Any) -> None:
    store = gw.app.state.service.keys
    good = gw.keys["alice"][1]
    same_id = good[:-8] + "AAAAAAAA"
    other_id = "bst_" + "f" * 24 + "_" + good.split("_", 2)[2]
    from bastion.core.errors import AuthError

    def timed(k: str) -> float:
        t = time.perf_counter_ns()
        try:
            store.authenticate(k)
        except AuthError:
            pass
        return time.perf_counter_ns() - t

    a, b = [], []
    for _ in range(3000):
        a.append(timed(same_id))
        b.append(timed(other_id))
    ratio = statistics.median(a) / statistics.median(b)
    assert 0.6 < ratio < 1.6, ratio


@pytest.mark.parametrize(("payload", "loc"), [
    ('{"inputs": [[[0.1]]]}', ["body", "inputs", 0, 0]),
    ('{"inputs": [[' + ",".join(["0.5"] * 63) + ',NaN]]}', ["body", "inputs", 0, 0, 7, 7]),
    ('{"inputs": [[' + ",".join(["0.5"] * 63) + ',Infinity]]}', ["body", "inputs", 0, 0, 7, 7]),
    ('{"inputs": [[' + ",".join(["0.5"] * 10) + ',-0.5' + ",0.5" * 53 + ']]}', ["body", "inputs", 0, 0, 1, 2]),
    ('{"inputs": [[' + ",".join(["0.5"] * 20) + ',"x"' + ",0.5" * 43 + ']]}', ["body", "inputs", 0, 20]),
    ('{"inputs": [[' + ",".join(["0.5"] * 20) + ',false' + ",0.5" * 43 + ']]}', ["body", "inputs", 0, 20]),
    ('{"inputs": [[' + ",".join(["0.5"] * 63) + ',true]]}', ["body", "inputs", 0, 63]),
    ('{"inputs": [[' + ",".join(["0.5"] * 5) + ',null' + ",0.5" * 58 + ']]}', ["body", "inputs", 0, 5]),
    ('{"inputs": [[[' + ",".join(["[" + ",".join(["0.5"] * 8) + "]"] * 7)
     + ',[0.5,0.5,true,0.5,0.5,0.5,0.5,0.5]]]]}', ["body", "inputs", 0, 0, 7, 2]),
    ('{"inputs": []}', ["body", "inputs"]),
    ('{"inputs": [[0.5]], "extra": 1}', ["body", "extra"]),
    ('{"data": []}', ["body", "data"]),
    ('{}', ["body", "inputs"]),
    ('[1, 2]', ["body"]),
    ('{"inputs": ', ["body"]),
])
def test_invalid_inputs_get_422_with_the_exact_field(gw: Any, payload: str, loc: list[Any]) -> None:
    r = gw.client.post("/v1/models/digits/predict", content=payload,
                    headers={**_auth(gw.keys, "alice"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/jsonx"])
def test_non_json_bodies_get_415(gw: Any, ctype: str | None) -> None:
    body = json.dumps({"inputs": _x(1)}).encode()
    headers = {**_auth(gw.keys, "alice"), **({"Content-Type": ctype} if ctype else {})}
    r = gw.client.post("/v1/models/digits/predict", content=body, headers=headers)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", r.text
    r = gw.client.post("/v1/clients", content=b"name=x&models=digits", headers={
        **_auth(gw.keys, "root"), "Content-Type": ctype or "application/x-www-form-urlencoded"})
    assert r.status_code == 415, r.text
    ok = gw.client.post("/v1/models/digits/predict", content=body, headers={
        **_auth(gw.keys, "alice"), "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_jwt_needs_a_well_formed_models_claim_or_a_grant(gw: Any, rsa_key: Any) -> None:
    priv = rsa_key[0]

    def call(**claims: Any) -> Any:
        return gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                              headers={"Authorization": f"Bearer {_token(priv, **claims)}"})

    no_models = _token(priv)
    import jwt as pyjwt

    bare = pyjwt.decode(no_models, options={"verify_signature": False})
    del bare["bastion_models"]
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                       headers={"Authorization": f"Bearer {pyjwt.encode(bare, priv, algorithm='RS256')}"})
    assert r.status_code == 401 and "names no models" in r.json()["detail"], r.text
    bare["groups"] = ["ml-team"]  # the configured allow-list maps this claim to digits
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                       headers={"Authorization": f"Bearer {pyjwt.encode(bare, priv, algorithm='RS256')}"})
    assert r.status_code == 200, r.text
    for bad in ({"bastion_models": 5}, {"bastion_models": [1, 2]}, {"bastion_models": {"a": 1}},
                {"bastion_role": 7}, {"scope": 3}, {"bastion_models": None}):
        r = call(**bad)
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated", (bad, r.status_code, r.text)


def test_non_production_versions_need_the_predict_versions_scope(gw: Any) -> None:
    body = {"inputs": _x(1)}
    r = gw.client.post("/v1/models/digits/versions/2/predict", json=body, headers=_auth(gw.keys, "alice"))
    assert r.status_code == 403 and "predict:versions" in r.json()["detail"], r.text
    r = gw.client.post("/v1/models/digits/versions/1/predict", json=body, headers=_auth(gw.keys, "alice"))
    assert r.status_code == 200 and r.json()["version"] == "1"  # the production version by number is fine
    r = gw.client.post("/v1/models/digits/versions/2/predict", json=body, headers=_auth(gw.keys, "tester"))
    assert r.status_code == 200 and r.json()["version"] == "2", r.text
    r = gw.client.post("/v1/models/digits/versions/9/predict", json=body, headers=_auth(gw.keys, "tester"))
    assert r.status_code == 404


def test_clients_need_explicit_models_for_every_role(gw: Any) -> None:
    for role in ("client", "operator", "auditor", "admin"):
        r = gw.client.post("/v1/clients", json={"name": f"nomodels-{role}", "role": role},
                           headers=_auth(gw.keys, "root"))
        assert r.status_code == 422, (role, r.text)
    r = gw.client.post("/v1/clients", json={"name": "allmodels", "role": "operator", "models": ["*"]},
                       headers=_auth(gw.keys, "root"))
    assert r.status_code == 201 and r.json()["models"] == ["*"]
    from bastion.core.errors import InvalidInputError
    from bastion.gateway.clients import create_client

    with pytest.raises(InvalidInputError, match="--models"):
        create_client("implicit-admin", "admin")


def test_readyz_tells_anonymous_callers_the_status_only(gw: Any) -> None:
    gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)}, headers=_auth(gw.keys, "alice"))
    assert gw.client.get("/readyz").json() == {"status": "ready"}
    assert gw.client.get("/readyz", headers={"Authorization": "Bearer bst_nope"}).json() == {"status": "ready"}
    assert gw.client.get("/readyz", headers=_auth(gw.keys, "alice")).json() == {"status": "ready"}  # no models:read
    detail = gw.client.get("/readyz", headers=_auth(gw.keys, "carol")).json()
    assert "rlimits" in detail["models"]["digits@1"]


def test_metric_labels_never_carry_caller_chosen_names(gw: Any) -> None:
    for name in ("x" * 3000, "evil-model", "digits2"):
        gw.client.post(f"/v1/models/{name}/predict", json={"inputs": _x(1)})  # anonymous
        gw.client.post(f"/v1/models/{name}/predict", json={"inputs": _x(1)}, headers=_auth(gw.keys, "root"))
        gw.client.post(f"/v1/models/digits/versions/{name}/predict", json={"inputs": _x(1)},
                       headers=_auth(gw.keys, "root"))
    text = gw.client.get("/metrics", headers=_auth(gw.keys, "carol")).text
    assert "xxxxxxxx" not in text and "evil-model" not in text and "digits2" not in text
    assert 'bastion_requests_total{model="unknown",status="401",version="unknown"}' in text
    assert 'bastion_requests_total{model="unknown",status="404",version="unknown"}' in text
    assert 'route="/v1/models/{name}/predict"' in text and 'bastion_refused_unauthenticated_total{problem="missing"}' in text


def test_batch_and_body_limits(gw: Any) -> None:
    big = {"inputs": [[0.5] * 64] * 1025}
    r = gw.client.post("/v1/models/digits/predict", json=big, headers=_auth(gw.keys, "root"))
    assert r.status_code == 413  # 1025 × 64 numbers exceed the 64 KiB body limit before parsing
    r = gw.client.post("/v1/models/digits/predict", content=b"[" * 70000, headers=_auth(gw.keys, "root"))
    assert r.status_code == 413


def test_budget_exhaustion_gives_429_with_retry_after(gw: Any) -> None:
    codes = [gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)}, headers=_auth(gw.keys, "tiny"))
             for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
    assert "predictions" not in codes[-1].text


def test_output_policy_switch_and_metrics(gw: Any) -> None:
    r = gw.client.put("/v1/models/digits/policy", json={"type": "label_only"}, headers=_auth(gw.keys, "ops"))
    assert r.status_code == 200, r.text
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(2)}, headers=_auth(gw.keys, "alice"))
    assert r.status_code == 200 and "probabilities" not in r.json() and len(r.json()["predictions"]) == 2
    r = gw.client.put("/v1/models/digits/policy", json={"type": "top_k", "k": 2}, headers=_auth(gw.keys, "ops"))
    assert r.status_code == 200
    r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(2)}, headers=_auth(gw.keys, "alice"))
    assert all(sum(p > 0 for p in row) <= 2 for row in r.json()["probabilities"])
    gw.client.put("/v1/models/digits/policy", json={"type": "none"}, headers=_auth(gw.keys, "ops"))
    assert gw.client.get("/metrics").status_code == 401
    m = gw.client.get("/metrics", headers=_auth(gw.keys, "carol"))
    assert m.status_code == 200
    assert 'bastion_requests_total{model="digits",status="200",version="1"}' in m.text
    assert "bastion_rejections_total" in m.text and "bastion_request_latency_seconds_bucket" in m.text


def test_admin_api_scopes_and_key_shown_once(gw: Any) -> None:
    r = gw.client.post("/v1/clients", json={"name": "dave", "models": ["digits"]}, headers=_auth(gw.keys, "ops"))
    assert r.status_code == 403
    r = gw.client.post("/v1/clients", json={"name": "dave", "models": ["digits"]}, headers=_auth(gw.keys, "root"))
    assert r.status_code == 201 and r.json()["api_key"].startswith("bst_")
    listed = gw.client.get("/v1/clients", headers=_auth(gw.keys, "carol"))
    assert listed.status_code == 200 and r.json()["api_key"] not in listed.text and "key_hash" not in listed.text
    dave = r.json()
    ok = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                     headers={"Authorization": f"Bearer {dave['api_key']}"})
    assert ok.status_code == 200
    assert gw.client.delete(f"/v1/clients/{dave['id']}", headers=_auth(gw.keys, "root")).status_code == 200
    gone = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)},
                       headers={"Authorization": f"Bearer {dave['api_key']}"})
    assert gone.status_code == 401
    assert gw.client.get("/v1/models", headers=_auth(gw.keys, "alice")).status_code == 403
    assert gw.client.get("/v1/models", headers=_auth(gw.keys, "carol")).json()["models"][0]["name"] == "digits"


def test_every_route_declares_a_scope_and_openapi_has_security(gw: Any) -> None:
    from fastapi.routing import APIRoute

    from bastion.gateway.app import PUBLIC_PATHS
    from bastion.gateway.routes.common import served_routes

    routes = list(served_routes(gw.app.routes))
    assert len(routes) > 30
    for r in routes:
        if isinstance(getattr(r, "original_route", r), APIRoute) and r.path not in PUBLIC_PATHS:
            for m in r.methods:
                assert (m, r.path) in gw.app.state.route_scopes
    spec = gw.client.get("/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    op = spec["paths"]["/v1/models/{name}/predict"]["post"]
    assert op["x-bastion-scope"] == "predict" and op["security"]
    assert gw.client.get("/healthz").json() == {"status": "ok"}


def test_observers_receive_events_off_the_request_path(gw: Any) -> None:
    seen: list[Any] = []
    gw.app.state.observers.append(seen.append)
    try:
        r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(2)}, headers=_auth(gw.keys, "alice"))
        assert r.status_code == 200
        deadline = time.time() + 5
        while not seen and time.time() < deadline:
            time.sleep(0.02)
        ev = seen[0]
        assert ev.model == "digits" and ev.client_id == gw.keys["alice"][0] and ev.outputs.shape == (2, 10)
        assert ev.request_id == r.headers["X-Request-ID"]
    finally:
        gw.app.state.observers.clear()


def test_audit_chain_verifies_after_traffic(gw: Any) -> None:
    r = gw.client.get("/v1/audit/verify", headers=_auth(gw.keys, "carol"))
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["records"] > 20
    ex = gw.client.get("/v1/audit/export", params={"from_seq": 1, "to_seq": 5}, headers=_auth(gw.keys, "carol"))
    assert ex.status_code == 200 and len(ex.json()["records"]) == 5


def test_unreachable_budget_store_fails_closed(gw: Any) -> None:
    from bastion.gateway.budgets import QueryBudgets

    service = gw.app.state.service
    healthy = service.budgets
    service.budgets = QueryBudgets("100/minute", "1000/minute", storage_url="redis://127.0.0.1:1/0")
    try:
        r = gw.client.post("/v1/models/digits/predict", json={"inputs": _x(1)}, headers=_auth(gw.keys, "alice"))
    finally:
        service.budgets = healthy
    assert r.status_code == 503 and r.json()["error"] == "budget_unavailable" and "predictions" not in r.text


def test_remote_adapter_talks_to_the_gateway(gw: Any) -> None:
    """Assessments and attacks reach a deployed model through bastion.models.remote.RemoteAdapter."""
    from bastion.core.model import InputSpec
    from bastion.models.remote import RemoteAdapter

    remote = RemoteAdapter("http://testserver/v1/models/digits/predict",
                           InputSpec(shape=(1, 8, 8), clip_min=0.0, clip_max=1.0), api_key=gw.keys["alice"][1],
                           transport=gw.client._transport)
    x = np.asarray(_x(3), dtype=np.float32)
    proba = remote.predict_proba(x)
    assert proba.shape == (3, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    direct = gw.client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=_auth(gw.keys, "alice"))
    assert np.argmax(proba, axis=1).tolist() == direct.json()["predictions"]
