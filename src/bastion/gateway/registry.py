"""The signed-model registry: push (scan + verify + probe in the sandbox), list, promote, rollback.

A pushed file is copied, with its sidecar and signature files, into
``$BASTION_HOME/gateway/models/<name>/<version>/`` (files 0444) and recorded with its digest,
signer, scan verdict and input spec. Aliases (``production``) are single rows switched in one
transaction, so a promotion or rollback is atomic; requests already running keep the version
they resolved. Every change is an audited admin action.

Examples:
    >>> reg = Registry()                                                       # doctest: +SKIP
    >>> reg.push("digits.pt", "digits", key="signer.pub", actor=LOCAL_ADMIN)   # doctest: +SKIP
    >>> reg.rollback("digits", actor=LOCAL_ADMIN)                              # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bastion.core.errors import (
    ConfigError,
    DependencyError,
    InvalidInputError,
    RegistryError,
    SignatureError,
    UnsafeArtifactError,
)
from bastion.core.paths import sha256_file
from bastion.gateway.auth import LOCAL_ADMIN, Principal
from bastion.gateway.config import GatewayConfig
from bastion.store.db import session_scope
from bastion.store.models_gateway import GatewayAlias, GatewayModelSettings, GatewayModelVersion

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ModelVersionInfo:
    name: str
    version: str
    sha256: str
    format: str
    verified: bool
    signer: str | None
    scan_verdict: str
    input_spec: dict[str, Any]
    n_classes: int
    path: str
    pushed_by: str
    created_at: str
    aliases: list[str]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_name(kind: str, value: str) -> str:
    if not NAME_RE.match(value):
        raise InvalidInputError(f"{kind} {value!r} is invalid: use letters, digits, '.', '_' or '-' (≤128)")
    return value


def _info(row: GatewayModelVersion, aliases: list[str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=row.name, version=row.version, sha256=row.sha256, format=row.format, verified=row.verified,
        signer=row.signer, scan_verdict=row.scan_verdict, input_spec=dict(row.input_spec),
        n_classes=row.n_classes, path=row.path, pushed_by=row.pushed_by,
        created_at=row.created_at.isoformat() if row.created_at else "", aliases=aliases,
        details=dict(row.details or {}),
    )


def audit_admin(db_url: str | None, actor: Principal, action: str, body: dict[str, Any], log: Any = None) -> int:
    """Append one admin-action record (durably) to the audit chain."""
    actor_id = f"{actor.via}:{actor.id}"
    if log is not None:
        return int(log.append("admin", actor_id, action, body))
    import time

    from bastion.gateway.audit import append_records, canonical
    from bastion.store.db import get_engine

    return append_records(get_engine(db_url), [("admin", actor_id, action, canonical(body), time.time())])[0]


def _scan(path: Path) -> str:
    try:
        from bastion.artifacts.scan import ensure_safe
    except ImportError as exc:
        raise DependencyError(f"the model scanner is unavailable ({exc}); refusing to register {path}") from None
    report = ensure_safe(path)
    verdict = getattr(report, "verdict", None)
    return str(getattr(verdict, "value", verdict) or "clean")


def _verify(path: Path, keys: list[Path], require_attestation: bool, max_severity: str, shown: Path,
            specs: list[dict[str, Any]] | None = None, max_age_days: float | None = None) -> str:
    """Verify the model's signature with one of ``keys``; returns the signer's key fingerprint.

    ``specs`` receives the signed serving specs (sidecars) the verification established."""
    try:
        from bastion.artifacts.signing import verify_model
    except ImportError as exc:
        raise DependencyError(f"model signature verification is unavailable ({exc})") from None
    from bastion.artifacts.keys import public_key_fingerprint
    from bastion.core.severity import Severity

    if not keys:
        raise SignatureError(f"no trusted public key to verify {shown}: pass --key PUB or set registry.trusted_keys")
    errors = []
    sev = Severity(max_severity) if require_attestation else None
    for key in keys:
        try:
            res = verify_model(path, key, require_attestation=require_attestation, max_severity=sev,
                               max_attestation_age=None if max_age_days is None else timedelta(days=max_age_days))
            if specs is not None:
                specs.extend(res.serving_specs)
            return public_key_fingerprint(key)
        except SignatureError as exc:
            errors.append(f"{key}: {str(exc).replace(str(path.parent) + '/', '')}")
    raise SignatureError(f"{shown} does not verify with any trusted key: " + "; ".join(errors))


class Registry:
    """Model versions and aliases in the store; files under the registry directory."""

    def __init__(self, config: GatewayConfig | None = None, audit_log: Any = None) -> None:
        self.config = config or GatewayConfig()
        self.db_url = self.config.db_url
        self.audit_log = audit_log

    # ------------------------------------------------------------------ queries
    def _aliases(self, s: Any, name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for a in s.execute(select(GatewayAlias).where(GatewayAlias.name == name)).scalars():
            out.setdefault(a.version, []).append(a.alias)
        return out

    def list(self, name: str | None = None) -> builtins.list[ModelVersionInfo]:
        with session_scope(self.db_url) as s:
            q = select(GatewayModelVersion).order_by(GatewayModelVersion.name, GatewayModelVersion.id)
            if name:
                q = q.where(GatewayModelVersion.name == name)
            rows = list(s.execute(q).scalars())
            aliases = {n: self._aliases(s, n) for n in {r.name for r in rows}}
            return [_info(r, aliases[r.name].get(r.version, [])) for r in rows]

    def get(self, name: str, version: str) -> ModelVersionInfo:
        with session_scope(self.db_url) as s:
            row = s.execute(select(GatewayModelVersion).where(
                GatewayModelVersion.name == name, GatewayModelVersion.version == version)).scalar_one_or_none()
            if row is None:
                raise RegistryError(f"model {name!r} has no version {version!r}")
            return _info(row, self._aliases(s, name).get(version, []))

    def resolve(self, name: str, alias: str = "production") -> ModelVersionInfo:
        """The version ``alias`` points at (``RegistryError`` if the model or alias is unknown)."""
        with session_scope(self.db_url) as s:
            a = s.get(GatewayAlias, (name, alias))
            if a is None:
                raise RegistryError(f"model {name!r} has no {alias!r} version; promote one with: "
                                    f"bastion registry promote {name} VERSION --alias {alias}")
            version = a.version
        return self.get(name, version)

    def output_policy(self, name: str) -> dict[str, Any] | None:
        with session_scope(self.db_url) as s:
            row = s.get(GatewayModelSettings, name)
            return dict(row.output_policy) if row is not None and row.output_policy else None

    # ------------------------------------------------------------------ changes
    def push(
        self, path: str | os.PathLike[str], name: str, version: str | None = None, *,
        keys: builtins.list[Path] | None = None, allow_unsigned: bool = False, actor: Principal = LOCAL_ADMIN,
        input_shape: tuple[int, ...] | None = None, clip_min: float | None = None, clip_max: float | None = None,
        promote: bool | None = None,
    ) -> ModelVersionInfo:
        """Scan, verify, copy, probe (in the sandbox) and record a model version."""
        src = Path(path)
        _check_name("model name", name)
        if not src.is_file():
            raise InvalidInputError(f"model file {src} not found")
        if allow_unsigned:
            actor.require("models:allow-unsigned")
        with session_scope(self.db_url) as s:
            existing = list(s.execute(select(GatewayModelVersion.version).where(
                GatewayModelVersion.name == name)).scalars())
        if version is None:
            nums = [int(v) for v in existing if v.isdigit()]
            version = str(max(nums, default=0) + 1)
        _check_name("version", version)
        if version in existing:
            raise RegistryError(f"model {name!r} already has version {version!r}; versions are immutable")
        trusted = self._keys_for_push(keys or [])  # a --key outside trusted_keys is refused, admins included
        # Stage a private copy first and check *that* copy: no swap between verification and use.
        staged = self._stage(src, name, version)
        try:
            model_file = staged / src.name
            verdict = _scan(model_file)  # raises UnsafeArtifactError: never registered
            signer: str | None = None
            sig_problem: str | None = None
            specs: list[dict[str, Any]] = []
            try:
                signer = _verify(model_file, trusted, self.config.registry.require_attestation,
                                 self.config.registry.max_severity, src, specs,
                                 self.config.registry.max_attestation_age_days)
            except (SignatureError, DependencyError) as exc:
                if not allow_unsigned:
                    raise SignatureError(f"refusing unsigned or unverified model: {exc} "
                                         "(an admin may pass --allow-unsigned; it is audited)") from None
                sig_problem = str(exc)
            digest = sha256_file(model_file)
            spec_in = None
            if input_shape is not None:
                spec_in = {"shape": list(input_shape), "clip_min": clip_min, "clip_max": clip_max}
            probe = self._probe(staged, src.name, spec_in)
            dest = staged.parent / version
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(staged, dest)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if input_shape is None and (clip_min is not None or clip_max is not None):
            spec = dict(probe["input_spec"])
            spec.update({str(k): v for k, v in (("clip_min", clip_min), ("clip_max", clip_max)) if v is not None})
            probe["input_spec"] = spec
        from bastion.models.loaders import detect_format

        details = {"sandbox_layers": probe.get("layers", []), "signature_problem": sig_problem,
                   "source": str(src.resolve()), "serving_specs": specs}
        row = GatewayModelVersion(
            name=name, version=version, path=str(dest / src.name), format=detect_format(src), sha256=digest,
            verified=signer is not None, signer=signer, scan_verdict=verdict, allowed_unsafe=signer is None,
            input_spec=probe["input_spec"], n_classes=int(probe["n_classes"]), details=details,
            pushed_by=f"{actor.via}:{actor.id}", created_at=datetime.now(UTC),
        )
        with session_scope(self.db_url) as s:
            s.add(row)
            has_alias = s.get(GatewayAlias, (name, self.config.default_alias)) is not None
        audit_admin(self.db_url, actor, "registry.push", {
            "model": name, "version": version, "sha256": digest, "verified": signer is not None, "signer": signer,
            "scan_verdict": verdict, "allowed_unsigned": signer is None, "signature_problem": sig_problem,
            "input_spec": probe["input_spec"], "serving_specs": [{k: x[k] for k in ("file", "sha256")} for x in specs],
        }, self.audit_log)
        if promote or (promote is None and not has_alias and signer is not None):
            self.promote(name, version, self.config.default_alias, actor=actor)
        return self.get(name, version)

    # ------------------------------------------------------------------ trusted keys
    def trusted_keys_dir(self) -> Path:
        return self.config.registry_dir().parent / "trusted_keys"

    def trusted_keys(self) -> dict[str, dict[str, Any]]:
        """{fingerprint: {"path", "note", "source"}} for ``registry.trusted_keys`` and keys added by trust-key."""
        import json

        from bastion.artifacts.keys import public_key_fingerprint

        out: dict[str, dict[str, Any]] = {}
        for k in self.config.registry.trusted_keys:
            out[public_key_fingerprint(k)] = {"path": str(k), "note": "registry.trusted_keys", "source": "config"}
        d = self.trusted_keys_dir()
        for pub in sorted(d.glob("*.pub")) if d.is_dir() else []:
            meta_file = pub.with_suffix(".json")
            meta = json.loads(meta_file.read_text("utf-8")) if meta_file.is_file() else {}
            out[public_key_fingerprint(pub)] = {"path": str(pub), "note": meta.get("note", ""), "source": "trust-key",
                                                "added_by": meta.get("added_by"), "added_at": meta.get("added_at")}
        return out

    def _keys_for_push(self, keys: builtins.list[Path]) -> builtins.list[Path]:
        from bastion.artifacts.keys import public_key_fingerprint

        trusted = self.trusted_keys()
        chosen = []
        for k in keys:
            fp = public_key_fingerprint(k)
            if fp not in trusted:
                raise SignatureError(
                    f"key {k} (fingerprint {fp[:16]}…) is not trusted by this registry; an admin can add it with: "
                    f"bastion registry trust-key {k} --note 'who signs with it and why' (audited)")
            chosen.append(Path(trusted[fp]["path"]))
        return chosen or [Path(t["path"]) for t in trusted.values()]

    def trust_key(self, pub: str | os.PathLike[str], note: str, *, actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
        """Add a public key to the keys pushes verify against (admin only, audited)."""
        import json

        from bastion.artifacts.keys import load_public_key, public_key_fingerprint
        from bastion.core.paths import atomic_write_bytes, atomic_write_text

        if actor.role != "admin":
            from bastion.gateway.auth import Forbidden

            raise Forbidden(f"{actor.via} principal {actor.name!r} (role {actor.role}) may not add trusted keys: "
                            "admins only")
        if not note or not note.strip():
            raise InvalidInputError("trust-key needs --note saying whose key this is and why it is trusted")
        key = load_public_key(pub)
        fp = public_key_fingerprint(key)
        d = self.trusted_keys_dir()
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / f"{fp}.pub", Path(pub).read_bytes(), mode=0o644)
        out = {"fingerprint": fp, "note": note.strip(), "added_by": f"{actor.via}:{actor.id}",
               "added_at": datetime.now(UTC).isoformat(timespec="seconds"), "source_path": str(Path(pub).resolve())}
        atomic_write_text(d / f"{fp}.json", json.dumps(out, indent=2) + "\n", mode=0o644)
        audit_admin(self.db_url, actor, "registry.trust_key", out, self.audit_log)
        return out

    def _stage(self, src: Path, name: str, version: str) -> Path:
        dest = self.config.registry_dir() / name / version
        tmp = dest.with_name(f".{version}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        files = [src, *sorted(p for p in src.parent.iterdir()
                              if p.is_file() and p.name.startswith(src.name + ".") and p != src)]
        stem_sidecar = src.with_name(src.stem + ".bastion.json")
        if stem_sidecar.is_file() and stem_sidecar not in files:
            files.append(stem_sidecar)
        for f in files:
            shutil.copyfile(f, tmp / f.name)
            os.chmod(tmp / f.name, 0o444)
        os.chmod(tmp, 0o555)  # noqa: S103 - read-only, world-readable model directory
        return tmp

    def _probe(self, model_dir: Path, file_name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
        from bastion.gateway.sandbox import SandboxError, WorkerPool
        from bastion.gateway.service import worker_spec

        pool = WorkerPool(worker_spec(self.config, model_dir, file_name, spec), size=1)
        try:
            pool.start()
            return dict(pool.info)
        except SandboxError as exc:
            raise RegistryError(f"the model could not be loaded in the sandbox: {exc}") from None
        finally:
            pool.close()

    def promote(self, name: str, version: str, alias: str = "production", *,
                actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (atomically)."""
        _check_name("alias", alias)
        info = self.get(name, version)
        with session_scope(self.db_url) as s:
            a = s.get(GatewayAlias, (name, alias), with_for_update=True)
            previous = a.version if a is not None else None
            if a is None:
                s.add(GatewayAlias(name=name, alias=alias, version=version, previous_version=None,
                                   updated_at=datetime.now(UTC)))
            else:
                a.previous_version, a.version, a.updated_at = a.version, version, datetime.now(UTC)
        out = {"model": name, "alias": alias, "version": version, "previous_version": previous,
               "verified": info.verified, "sha256": info.sha256}
        audit_admin(self.db_url, actor, "registry.promote", out, self.audit_log)
        return out

    def rollback(self, name: str, alias: str = "production", *, actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
        """Move ``alias`` back to the previous verified version (pushed before the current one)."""
        with session_scope(self.db_url) as s:
            a = s.get(GatewayAlias, (name, alias))
            if a is None:
                raise RegistryError(f"model {name!r} has no {alias!r} alias to roll back")
            current = s.execute(select(GatewayModelVersion).where(
                GatewayModelVersion.name == name, GatewayModelVersion.version == a.version)).scalar_one()
            target = s.execute(select(GatewayModelVersion).where(
                GatewayModelVersion.name == name, GatewayModelVersion.verified.is_(True),
                GatewayModelVersion.id < current.id).order_by(GatewayModelVersion.id.desc()).limit(1)
            ).scalar_one_or_none()
            if target is None:
                raise RegistryError(f"model {name!r} has no verified version older than {current.version!r}")
            target_version = target.version
        out = self.promote(name, target_version, alias, actor=actor)
        out["rolled_back_from"] = out.pop("previous_version")
        audit_admin(self.db_url, actor, "registry.rollback", out, self.audit_log)
        return out

    def set_output_policy(self, name: str, policy: dict[str, Any], *, actor: Principal = LOCAL_ADMIN) -> dict[str, Any]:
        """Set the per-model output policy (validated by ``bastion.defenses.output_policy``)."""
        from bastion.defenses.output_policy import OutputPolicy

        try:
            OutputPolicy.from_config(policy)
        except (ValueError, TypeError, ConfigError, InvalidInputError) as exc:
            raise ConfigError(f"invalid output policy {policy!r}: {exc}") from None
        with session_scope(self.db_url) as s:
            row = s.get(GatewayModelSettings, name)
            if row is None:
                s.add(GatewayModelSettings(name=name, output_policy=dict(policy), updated_at=datetime.now(UTC)))
            else:
                row.output_policy, row.updated_at = dict(policy), datetime.now(UTC)
        out = {"model": name, "output_policy": policy}
        audit_admin(self.db_url, actor, "registry.set_output_policy", out, self.audit_log)
        return out


__all__ = ["ModelVersionInfo", "Registry", "UnsafeArtifactError", "audit_admin"]
