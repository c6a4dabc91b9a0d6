"""JWKS-based JWT verification, config guards, and mutual TLS on a real `bastion serve`."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.core.errors import AuthError


def _jwt_cfg(tmp_path: Path, key: Any, **over: Any) -> Any:
    from bastion.gateway.config import JWTConfig

    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "ES256", "use": "sig"})
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    return JWTConfig.model_validate({"issuer": "iss", "audience": "aud", "algorithms": ["ES256"],
                                     "jwks_file": str(tmp_path / "jwks.json"), **over})


def test_jwks_tokens_and_algorithm_allowlist(tmp_path: Path) -> None:
    from bastion.gateway.auth import JWTVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    v = JWTVerifier(_jwt_cfg(tmp_path, key))
    now = int(time.time())
    claims = {"sub": "svc", "iss": "iss", "aud": "aud", "exp": now + 60, "bastion_role": "operator",
              "scope": "predict models:read clients:write", "bastion_models": ["digits"]}
    p = v.verify(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"}))
    assert p.role == "operator" and p.scopes == {"predict", "models:read"}  # never more than the role allows
    with pytest.raises(AuthError, match="no JWKS key"):
        v.verify(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "other"}))
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(AuthError, match="not allowed"):
        v.verify(jwt.encode(claims, other, algorithm="ES384", headers={"kid": "k1"}))
    with pytest.raises(AuthError, match="role"):
        v.verify(jwt.encode({**claims, "bastion_role": "root"}, key, algorithm="ES256", headers={"kid": "k1"}))


def test_jwt_claims_least_privilege_and_malformed_claims(tmp_path: Path) -> None:
    from bastion.gateway.auth import CredentialError, JWTVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    v = JWTVerifier(_jwt_cfg(tmp_path, key, model_grants=[
        {"claim": "groups", "value": "ml-team", "models": ["digits", "bc"]},
        {"claim": "roles", "value": "fraud", "models": ["fraud"]}]))
    base = {"sub": "svc", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 60}

    def verify(**claims: Any) -> Any:
        return v.verify(jwt.encode({**base, **claims}, key, algorithm="ES256", headers={"kid": "k1"}))

    with pytest.raises(CredentialError, match="names no models"):
        verify()  # no models claim and no grant: no model (there is no implicit '*')
    with pytest.raises(CredentialError, match="names no models"):
        verify(groups=["other-team"])
    assert verify(groups=["ml-team", "x"], roles="fraud").models == ("digits", "bc", "fraud")
    assert verify(bastion_models=["*"]).models == ("*",)  # all models only when the IdP says so
    for bad in ({"bastion_models": 5}, {"bastion_models": [1]}, {"bastion_models": ""}, {"bastion_role": ["admin"]},
                {"scope": {"a": 1}}, {"groups": 7}, {"sub": 12, "bastion_models": ["d"]}):
        with pytest.raises(AuthError):
            verify(**bad)


def test_config_refuses_none_and_key_confusion(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from bastion.gateway.auth import JWTVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValidationError):
        _jwt_cfg(tmp_path, key, algorithms=["none"])
    with pytest.raises(AuthError, match="HMAC"):
        JWTVerifier(_jwt_cfg(tmp_path, key, algorithms=["ES256", "HS256"]))
    from bastion.core.errors import ConfigError
    from bastion.gateway.config import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway:\n  sandbox:\n    workers_per_modle: 2\n")
    with pytest.raises(ConfigError, match="workers_per_modle"):
        load_config(bad)


def _cert(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool, san: list[Any] | None = None) -> Any:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: Any, key: Any) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp = path.with_suffix(".key")
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    os.chmod(kp, 0o600)
    return path.with_suffix(".crt"), kp


@pytest.mark.slow
def test_mutual_tls_requires_a_client_certificate(gw_home: Path, tmp_path: Path) -> None:
    import ipaddress
    import socket

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion-test-ca")])
    ca = _cert("bastion-test-ca", ca_key, ca_name, ca_key, True)
    ca_crt, _ = _write(tmp_path / "ca", ca, ca_key)
    s_key = ec.generate_private_key(ec.SECP256R1())
    s_crt, s_keyp = _write(tmp_path / "server", _cert("localhost", s_key, ca_name, ca_key, False,
                                                      [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), s_key)
    c_key = ec.generate_private_key(ec.SECP256R1())
    c_crt, c_keyp = _write(tmp_path / "client", _cert("client-1", c_key, ca_name, ca_key, False), c_key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(port),
                             "--ssl-certfile", str(s_crt), "--ssl-keyfile", str(s_keyp), "--ssl-ca-certs", str(ca_crt)],
                            env={**os.environ, "BASTION_HOME": str(gw_home)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        good = ssl.create_default_context(cafile=str(ca_crt))
        good.load_cert_chain(str(c_crt), str(c_keyp))
        deadline, status = time.time() + 60, None
        while time.time() < deadline and status is None:
            try:
                status = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=good, timeout=2).status_code
            except httpx.ConnectError:
                time.sleep(0.3)
        assert status == 200
        no_cert = ssl.create_default_context(cafile=str(ca_crt))
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=no_cert, timeout=5).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_jwks_url_from_a_local_identity_provider(tmp_path: Path) -> None:
    import http.server
    import threading

    from bastion.gateway.auth import JWTVerifier
    from bastion.gateway.config import JWTConfig

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "idp-1", "alg": "ES256", "use": "sig"})
    doc = json.dumps({"keys": [jwk]}).encode()

    class JWKS(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), JWKS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        v = JWTVerifier(JWTConfig.model_validate({"issuer": "iss", "audience": "aud", "algorithms": ["ES256"],
                                                  "jwks_url": url}))
        claims = {"sub": "svc", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 60, "bastion_models": "a b"}
        p = v.verify(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "idp-1"}))
        assert p.role == "client" and p.models == ("a", "b") and p.scopes == {"predict"}
        stranger = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(AuthError):
            v.verify(jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "idp-1"}))
    finally:
        server.shutdown()
