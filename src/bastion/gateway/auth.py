"""Authentication and authorisation: API keys, JWT bearer tokens, roles and per-route scopes.

API keys look like ``bst_<key id>_<secret>``: 96 random bits of key id (the public lookup handle)
and 256 random bits of secret. Only ``sha256(key)`` is stored; the key is shown once at creation.
Lookups always hash and compare (``hmac.compare_digest``) against a record — a dummy one when the
key id is unknown — so the time taken does not depend on how much of a key matched.

JWTs are checked with PyJWT against an explicit algorithm allowlist (``none`` can never be
configured); the algorithm family must match the key type (an RSA/EC public key is never used as
an HMAC secret), and ``exp``, ``nbf``, ``iss`` and ``aud`` are required and verified.

Roles grant scopes; a client may hold fewer scopes than its role allows, never more. Every route
declares the scope it needs; a route that declares none is refused (default deny).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bastion.core.errors import AuthError

Role = Literal["admin", "operator", "auditor", "client"]
ROLES: tuple[Role, ...] = ("admin", "operator", "auditor", "client")
SCOPES = (
    "predict", "models:read", "models:write", "models:allow-unsigned", "clients:read", "clients:write",
    "audit:read", "metrics:read",
)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "operator": frozenset({"predict", "models:read", "models:write", "clients:read", "audit:read",
                           "metrics:read"}),
    "auditor": frozenset({"models:read", "clients:read", "audit:read", "metrics:read"}),
    "client": frozenset({"predict"}),
}
KEY_PREFIX = "bst_"
_DUMMY_HASH = hashlib.sha256(b"bastion-dummy-key").hexdigest()


class Forbidden(AuthError):
    """Authenticated, but the principal lacks the scope or model grant (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client id (or JWT subject), a role, granted scopes and models."""

    id: str
    name: str
    role: str
    scopes: frozenset[str]
    models: tuple[str, ...] = ("*",)
    via: Literal["api_key", "jwt", "local"] = "api_key"
    budget: dict[str, str] = field(default_factory=dict)

    def require(self, scope: str, model: str | None = None) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"{self.via} principal {self.name!r} (role {self.role}) lacks scope {scope!r}")
        if model is not None and "*" not in self.models and model not in self.models:
            raise Forbidden(f"principal {self.name!r} is not granted model {model!r}")


LOCAL_ADMIN = Principal(id="local", name="local-cli", role="admin", scopes=ROLE_SCOPES["admin"], via="local")


def effective_scopes(role: str, requested: list[str] | None) -> frozenset[str]:
    """The role's scopes, narrowed to ``requested`` if given; asking for more than the role allows is an error."""
    if role not in ROLE_SCOPES:
        raise AuthError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    allowed = ROLE_SCOPES[role]
    if not requested:
        return allowed
    extra = set(requested) - allowed
    if extra:
        raise AuthError(f"role {role!r} cannot hold scopes {sorted(extra)}; it allows {sorted(allowed)}")
    return frozenset(requested)


# ------------------------------------------------------------------------------------------ API keys


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: ``(key, key_id, key_hash)``. Only the hash and id are stored."""
    key_id = secrets.token_hex(12)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return key, key_id, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_id(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX):].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 24:
        return None
    return parts[0]


@dataclass(frozen=True)
class _KeyRecord:
    client_id: str
    name: str
    role: str
    scopes: tuple[str, ...]
    models: tuple[str, ...]
    key_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    budget: dict[str, str]


class KeyStore:
    """API-key lookup over the ``gateway_clients`` table with a short TTL cache (revocation lag ≤ TTL)."""

    def __init__(self, db_url: str | None = None, ttl_s: float = 1.0) -> None:
        self.db_url = db_url
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, _KeyRecord | None]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _lookup(self, key_id: str) -> _KeyRecord | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        from sqlalchemy import select

        from bastion.store.db import session_scope
        from bastion.store.models_gateway import GatewayClient

        with session_scope(self.db_url) as s:
            row = s.execute(select(GatewayClient).where(GatewayClient.key_id == key_id)).scalar_one_or_none()
            rec = None if row is None else _KeyRecord(
                row.id, row.name, row.role, tuple(row.scopes), tuple(row.models), row.key_hash,
                _aware(row.expires_at), _aware(row.revoked_at), dict(row.budget or {}))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, rec)
        return rec

    def authenticate(self, key: str) -> Principal:
        key_id = parse_key_id(key) or "0" * 24
        rec = self._lookup(key_id)
        # Always hash and compare, so timing does not reveal whether the key id exists.
        ok = hmac.compare_digest(hash_key(key), rec.key_hash if rec is not None else _DUMMY_HASH)
        if rec is None or not ok:
            raise AuthError("invalid API key")
        now = datetime.now(UTC)
        if rec.revoked_at is not None:
            raise AuthError("API key revoked")
        if rec.expires_at is not None and rec.expires_at <= now:
            raise AuthError("API key expired")
        return Principal(id=rec.client_id, name=rec.name, role=rec.role,
                         scopes=effective_scopes(rec.role, list(rec.scopes)), models=rec.models,
                         via="api_key", budget=rec.budget)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------ JWT


class JWTVerifier:
    """Verify bearer JWTs from an OIDC provider (JWKS) or a static key, per ``JWTConfig``."""

    def __init__(self, cfg: Any) -> None:
        import jwt

        self.cfg = cfg
        self._jwks_client: Any = None
        self._static_key: Any = None
        self._jwks: Any = None
        sources = [s for s in (cfg.jwks_url, cfg.jwks_file, cfg.public_key_file, cfg.hmac_secret_env) if s]
        if len(sources) != 1:
            raise AuthError("auth.jwt needs exactly one of jwks_url, jwks_file, public_key_file, hmac_secret_env")
        hs = [a for a in cfg.algorithms if a.startswith("HS")]
        if hs and not cfg.hmac_secret_env:
            raise AuthError(f"HMAC algorithms {hs} need hmac_secret_env; with public keys use RS/ES/PS/EdDSA")
        if cfg.hmac_secret_env and len(hs) != len(cfg.algorithms):
            raise AuthError("with hmac_secret_env only HS256/HS384/HS512 may be allowed")
        if cfg.jwks_url:
            self._jwks_client = jwt.PyJWKClient(cfg.jwks_url, cache_keys=True, lifespan=300)
        elif cfg.jwks_file:
            import json

            self._jwks = jwt.PyJWKSet.from_dict(json.loads(cfg.jwks_file.read_text()))
        elif cfg.public_key_file:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            self._static_key = load_pem_public_key(cfg.public_key_file.read_bytes())
        else:
            import os

            secret = os.environ.get(cfg.hmac_secret_env or "", "")
            if len(secret) < 32:
                raise AuthError(f"${cfg.hmac_secret_env} must hold an HMAC secret of at least 32 characters")
            self._static_key = secret.encode()

    def _key_for(self, token: str, header: dict[str, Any]) -> Any:
        import jwt

        if self._jwks_client is not None:
            return self._jwks_client.get_signing_key_from_jwt(token).key
        if self._jwks is not None:
            kid = header.get("kid")
            for k in self._jwks.keys:
                if kid is None or k.key_id == kid:
                    return k.key
            raise jwt.InvalidTokenError(f"no JWKS key with kid {kid!r}")
        return self._static_key

    def verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if not isinstance(alg, str) or alg not in self.cfg.algorithms:
                raise AuthError(f"JWT alg {alg!r} is not allowed (allowed: {', '.join(self.cfg.algorithms)})")
            key = self._key_for(token, header)
            if alg.startswith("HS") != isinstance(key, bytes):
                raise AuthError(f"JWT alg {alg!r} does not match the configured key type")
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.cfg.audience, issuer=self.cfg.issuer,
                leeway=self.cfg.leeway_s, options={"require": ["exp", "iss", "aud", "sub"], "verify_nbf": True},
            )
        except AuthError:
            raise
        except jwt.ExpiredSignatureError:
            raise AuthError("JWT expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid JWT: {exc}") from None
        role = str(claims.get(self.cfg.role_claim, "client"))
        scope_claim = claims.get("scope") or claims.get("scp") or ""
        requested = scope_claim.split() if isinstance(scope_claim, str) else list(scope_claim)
        allowed = ROLE_SCOPES.get(role)
        if allowed is None:
            raise AuthError(f"JWT role {role!r} is unknown")
        scopes = frozenset(s for s in requested if s in allowed) if requested else allowed
        models = claims.get(self.cfg.models_claim, ["*"])
        if isinstance(models, str):
            models = models.split()
        sub = str(claims["sub"])
        return Principal(id=f"jwt:{sub}", name=sub, role=role, scopes=scopes, models=tuple(models), via="jwt")


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal`` (API key or JWT)."""

    def __init__(self, keys: KeyStore, jwt_verifier: JWTVerifier | None = None) -> None:
        self.keys = keys
        self.jwt = jwt_verifier

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing credentials: send 'Authorization: Bearer <API key or JWT>'")
        scheme, _, cred = authorization.partition(" ")
        cred = cred.strip()
        if scheme.lower() != "bearer" or not cred:
            raise AuthError("malformed Authorization header: expected 'Bearer <API key or JWT>'")
        if cred.startswith(KEY_PREFIX):
            return self.keys.authenticate(cred)
        if cred.count(".") == 2:
            if self.jwt is None:
                raise AuthError("JWT bearer tokens are not enabled on this gateway (auth.jwt)")
            return self.jwt.verify(cred)
        # Unknown format: same work as a failed key lookup.
        return self.keys.authenticate(cred)
