"""Authentication and authorisation: API keys, JWT bearer tokens, roles and per-route scopes.

API keys look like ``bst_<key id>_<secret>``: 96 random bits of key id (the public lookup handle)
and 256 random bits of secret. Only ``sha256(key)`` is stored; the key is shown once at creation.
Lookups always hash and compare (``hmac.compare_digest``) against a record — a dummy one when the
key id is unknown — so the time taken does not depend on how much of a key matched. A verified key
(and a verified JWT) is remembered for ``auth.cache_ttl_s`` under the sha256 of the whole
credential, so the request path re-checks a known credential without a database round trip;
revocation and expiry still apply within that TTL.

JWTs are checked with PyJWT against an explicit algorithm allowlist (``none`` can never be
configured); the algorithm family must match the key type (an RSA/EC public key is never used as
an HMAC secret), and ``exp``, ``nbf``, ``iss`` and ``aud`` are required and verified. A token must
say which models it may call — the ``bastion_models`` claim, or an ``auth.jwt.model_grants`` entry
that maps another claim (e.g. ``groups: ml-team``) to models; a token with neither is refused, and
a claim of the wrong type (a number where a list is expected) is a 401, never a 500.

Roles grant scopes; a client may hold fewer scopes than its role allows, never more. Without an
explicit scope list a role gets its *default* scopes, which for ``client`` is ``predict`` only:
calling a pinned, non-production version (``/versions/{v}/predict``) needs ``predict:versions``.
Every route declares the scope it needs; a route that declares none is refused (default deny).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bastion.core.errors import AuthError

Role = Literal["admin", "operator", "auditor", "client"]
ROLES: tuple[Role, ...] = ("admin", "operator", "auditor", "client")
SCOPES = (
    "predict", "predict:versions", "models:read", "models:write", "models:allow-unsigned", "clients:read",
    "clients:write", "audit:read", "metrics:read",
)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "operator": frozenset({"predict", "predict:versions", "models:read", "models:write", "clients:read",
                           "audit:read", "metrics:read"}),
    "auditor": frozenset({"models:read", "clients:read", "audit:read", "metrics:read"}),
    "client": frozenset({"predict", "predict:versions"}),
}
"""The most each role may hold."""
DEFAULT_SCOPES: dict[str, frozenset[str]] = {**ROLE_SCOPES, "client": frozenset({"predict"})}
"""What a role gets when no scopes are asked for (least privilege: a client predicts with production only)."""
KEY_PREFIX = "bst_"
_DUMMY_HASH = hashlib.sha256(b"bastion-dummy-key").hexdigest()
CredentialProblem = Literal["missing", "malformed_header", "invalid_key", "revoked", "expired", "invalid_jwt",
                            "jwt_disabled", "claims"]


class CredentialError(AuthError):
    """The credentials were refused (HTTP 401); ``problem`` says why, from a closed set (for metrics and the
    aggregated audit of anonymous refusals)."""

    def __init__(self, message: str, problem: CredentialProblem) -> None:
        super().__init__(message)
        self.problem = problem


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
    """``requested`` if the role allows all of it, else an error; the role's default scopes when nothing is asked.

    Examples:
        >>> sorted(effective_scopes("client", None))
        ['predict']
        >>> sorted(effective_scopes("client", ["predict", "predict:versions"]))
        ['predict', 'predict:versions']
    """
    if role not in ROLE_SCOPES:
        raise AuthError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    allowed = ROLE_SCOPES[role]
    if not requested:
        return DEFAULT_SCOPES[role]
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
    key_hash: str
    expires_at: float | None  # epoch seconds
    revoked: bool
    principal: Principal


class _TTLCache:
    """A bounded map with per-entry expiry (monotonic seconds); the oldest entries go first when full."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> Any:
        hit = self._d.get(key)
        if hit is None or hit[0] <= now:
            return None
        return hit[1]

    def remaining(self, key: str, now: float) -> float:
        """Seconds before ``key`` expires (0 when absent or expired)."""
        hit = self._d.get(key)
        return 0.0 if hit is None else max(hit[0] - now, 0.0)

    def put(self, key: str, value: Any, until: float) -> None:
        with self._lock:
            self._d[key] = (until, value)
            self._d.move_to_end(key)
            while len(self._d) > self.max_entries:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


class KeyStore:
    """API-key lookup over the ``gateway_clients`` table with a short TTL cache (revocation lag ≤ TTL).

    Found records and unknown key ids are cached apart, so a flood of random key ids can neither
    grow memory without bound nor push real clients out of the cache."""

    def __init__(self, db_url: str | None = None, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self.db_url = db_url
        self.ttl_s = ttl_s
        self._found = _TTLCache(max_entries)
        self._unknown = _TTLCache(max_entries)

    def invalidate(self) -> None:
        self._found.clear()
        self._unknown.clear()

    def _cached(self, key_id: str) -> tuple[bool, _KeyRecord | None]:
        now = time.monotonic()
        rec = self._found.get(key_id, now)
        if rec is not None:
            return True, rec
        return self._unknown.get(key_id, now) is not None, None

    def _lookup(self, key_id: str, refresh: bool = False) -> _KeyRecord | None:
        if not refresh:
            hit, rec = self._cached(key_id)
            if hit:
                return rec
        from sqlalchemy import select

        from bastion.store.db import session_scope
        from bastion.store.models_gateway import GatewayClient

        now = time.monotonic()
        with session_scope(self.db_url) as s:
            row = s.execute(select(GatewayClient).where(GatewayClient.key_id == key_id)).scalar_one_or_none()
            if row is None:
                self._unknown.put(key_id, True, now + self.ttl_s)
                return None
            expires = _aware(row.expires_at)
            try:
                scopes = effective_scopes(row.role, list(row.scopes))
            except AuthError:  # a row edited to an impossible role or scope set: never usable
                scopes = frozenset()
            principal = Principal(id=row.id, name=row.name, role=row.role, scopes=scopes, models=tuple(row.models),
                                  via="api_key", budget=dict(row.budget or {}))
            rec = _KeyRecord(row.key_hash, expires.timestamp() if expires is not None else None,
                             row.revoked_at is not None, principal)
        self._found.put(key_id, rec, now + self.ttl_s)
        return rec

    def check(self, key: str, rec: _KeyRecord | None) -> Principal:
        """Verify ``key`` against its record (or the dummy one); the same work whether or not it exists."""
        ok = hmac.compare_digest(hash_key(key), rec.key_hash if rec is not None else _DUMMY_HASH)
        if rec is None or not ok:
            raise CredentialError("invalid API key", "invalid_key")
        if rec.revoked:
            raise CredentialError("API key revoked", "revoked")
        if rec.expires_at is not None and rec.expires_at <= time.time():
            raise CredentialError("API key expired", "expired")
        return rec.principal

    def authenticate(self, key: str) -> Principal:
        return self.check(key, self._lookup(parse_key_id(key) or "0" * 24))

    def authenticate_cached(self, key: str) -> Principal | None:
        """Like ``authenticate`` when the key id is cached (no database work); ``None`` when it is not."""
        hit, rec = self._cached(parse_key_id(key) or "0" * 24)
        return self.check(key, rec) if hit else None

    def stale(self, key: str) -> bool:
        """The key's record is past half its TTL: time to re-read it in the background (``refresh``)."""
        return self._found.remaining(parse_key_id(key) or "0" * 24, time.monotonic()) < self.ttl_s / 2

    def refresh(self, key: str) -> None:
        self._lookup(parse_key_id(key) or "0" * 24, refresh=True)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------ JWT


def _claim_strings(value: Any, claim: str) -> tuple[str, ...]:
    """A claim holding names: a list of strings or one space-separated string; anything else is refused."""
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise CredentialError(f"malformed JWT claim {claim!r}: expected a list of strings or a space-separated "
                              f"string, got {type(value).__name__}", "claims")
    if any(not v or len(v) > 128 for v in items):
        raise CredentialError(f"malformed JWT claim {claim!r}: names must be 1-128 characters", "claims")
    return tuple(items)


class JWTVerifier:
    """Verify bearer JWTs from an OIDC provider (JWKS) or a static key, per ``JWTConfig``."""

    def __init__(self, cfg: Any, cache_ttl_s: float = 1.0) -> None:
        import jwt

        self.cfg = cfg
        self.cache_ttl_s = cache_ttl_s
        self._verified = _TTLCache(10_000)
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

    def verify_cached(self, token: str) -> Principal | None:
        """The principal of a token verified within ``cache_ttl_s`` (and not expired since), else ``None``."""
        return self._verified.get(hashlib.sha256(token.encode()).hexdigest(), time.monotonic())  # type: ignore[no-any-return]

    def verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if not isinstance(alg, str) or alg not in self.cfg.algorithms:
                raise CredentialError(f"JWT alg {alg!r} is not allowed (allowed: {', '.join(self.cfg.algorithms)})",
                                      "invalid_jwt")
            key = self._key_for(token, header)
            if alg.startswith("HS") != isinstance(key, bytes):
                raise CredentialError(f"JWT alg {alg!r} does not match the configured key type", "invalid_jwt")
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.cfg.audience, issuer=self.cfg.issuer,
                leeway=self.cfg.leeway_s, options={"require": ["exp", "iss", "aud", "sub"], "verify_nbf": True},
            )
        except AuthError:
            raise
        except jwt.ExpiredSignatureError:
            raise CredentialError("JWT expired", "expired") from None
        except jwt.PyJWTError as exc:
            raise CredentialError(f"invalid JWT: {exc}", "invalid_jwt") from None
        principal = self.principal_from_claims(claims)
        exp = claims.get("exp")
        ttl = self.cache_ttl_s if not isinstance(exp, int | float) else min(self.cache_ttl_s, float(exp) - time.time())
        if ttl > 0:
            self._verified.put(hashlib.sha256(token.encode()).hexdigest(), principal, time.monotonic() + ttl)
        return principal

    def principal_from_claims(self, claims: dict[str, Any]) -> Principal:
        """Role, scopes and models from verified claims; a claim of the wrong type is a ``CredentialError``."""
        role = claims.get(self.cfg.role_claim, "client")
        if not isinstance(role, str):
            raise CredentialError(f"malformed JWT claim {self.cfg.role_claim!r}: expected a string", "claims")
        allowed = ROLE_SCOPES.get(role)
        if allowed is None:
            raise CredentialError(f"JWT role {role!r} is unknown", "claims")
        scope_claim = claims.get("scope", claims.get("scp"))
        requested = _claim_strings(scope_claim, "scope") if scope_claim not in (None, "", []) else ()
        scopes = frozenset(s for s in requested if s in allowed) if requested else DEFAULT_SCOPES[role]
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise CredentialError("malformed JWT claim 'sub': expected a non-empty string", "claims")
        if self.cfg.models_claim in claims:
            models = _claim_strings(claims[self.cfg.models_claim], self.cfg.models_claim)
        else:
            models = self._granted_models(claims)
        if not models:
            raise CredentialError(
                f"JWT for {sub!r} names no models: it needs a {self.cfg.models_claim!r} claim or a claim that an "
                "auth.jwt.model_grants entry maps to models (least privilege: no claim means no model)", "claims")
        return Principal(id=f"jwt:{sub}", name=sub, role=role, scopes=scopes, models=models, via="jwt")

    def _granted_models(self, claims: dict[str, Any]) -> tuple[str, ...]:
        out: list[str] = []
        for grant in self.cfg.model_grants:
            if grant.claim not in claims:
                continue
            values = _claim_strings(claims[grant.claim], grant.claim)
            if grant.value in values:
                out.extend(m for m in grant.models if m not in out)
        return tuple(out)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal`` (API key or JWT)."""

    def __init__(self, keys: KeyStore, jwt_verifier: JWTVerifier | None = None) -> None:
        self.keys = keys
        self.jwt = jwt_verifier

    @staticmethod
    def _credential(authorization: str | None) -> str:
        if not authorization:
            raise CredentialError("missing credentials: send 'Authorization: Bearer <API key or JWT>'", "missing")
        scheme, _, cred = authorization.partition(" ")
        cred = cred.strip()
        if scheme.lower() != "bearer" or not cred:
            raise CredentialError("malformed Authorization header: expected 'Bearer <API key or JWT>'",
                                  "malformed_header")
        return cred

    def authenticate(self, authorization: str | None) -> Principal:
        cred = self._credential(authorization)
        if cred.startswith(KEY_PREFIX):
            return self.keys.authenticate(cred)
        if cred.count(".") == 2:
            if self.jwt is None:
                raise CredentialError("JWT bearer tokens are not enabled on this gateway (auth.jwt)", "jwt_disabled")
            return self.jwt.verify(cred)
        # Unknown format: same work as a failed key lookup.
        return self.keys.authenticate(cred)

    def refresh_if_stale(self, authorization: str | None) -> Callable[[], None] | None:
        """For an API key whose cached record is past half its TTL: the call that re-reads it (to run off the
        event loop, once), so hot keys are re-checked before they expire instead of all at once after."""
        cred = self._credential(authorization)
        if cred.startswith(KEY_PREFIX) and self.keys.stale(cred):
            return lambda: self.keys.refresh(cred)
        return None

    def authenticate_cached(self, authorization: str | None) -> Principal | None:
        """The principal when the answer needs no database or network work (a cached key or token, or a
        refusal of a malformed header, which raises); ``None`` means: call ``authenticate`` off the event loop."""
        cred = self._credential(authorization)
        if cred.count(".") == 2 and not cred.startswith(KEY_PREFIX):
            if self.jwt is None:
                raise CredentialError("JWT bearer tokens are not enabled on this gateway (auth.jwt)", "jwt_disabled")
            return self.jwt.verify_cached(cred)
        return self.keys.authenticate_cached(cred)
