"""Playbooks: what happens when an alert fires. Each action is idempotent per incident, audited,
and can run in dry-run mode (recorded as "would do", nothing changed).

Actions (YAML ``- action: NAME`` with options):
- ``rollback``: move the model's alias back to the previous verified-signed version (registry).
- ``revoke_key``: revoke the offending client's API key. ``throttle``: give it a tight budget
  (``requests: 10/minute``). Both reversible by an admin (``bastion clients …``).
- ``protective_mode``: switch the model's output policy to label-only (reverse: set the old policy).
- ``notify``: webhook with a Slack-compatible JSON body, signed ``X-Bastion-Signature: sha256=HMAC``
  (secret from ``secret_env``), and/or SMTP email (``smtp_host``, ``smtp_port``, ``to``).
- ``open_ticket``: webhook with the incident as JSON (for a ticketing system).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from bastion.core.errors import ConfigError
from bastion.gateway import control
from bastion.respond.incidents import record_action

log = logging.getLogger("bastion.respond")
ACTIONS = ("rollback", "revoke_key", "throttle", "protective_mode", "notify", "open_ticket")


@dataclass
class PlaybookStep:
    action: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PlaybookStep:
        if not isinstance(raw, dict) or "action" not in raw:
            raise ConfigError(f"playbook step {raw!r} must be a mapping with an 'action'")
        action = str(raw["action"])
        if action not in ACTIONS:
            raise ConfigError(f"unknown playbook action {action!r}; known: {', '.join(ACTIONS)}")
        return cls(action, {k: v for k, v in raw.items() if k != "action"})


def parse_playbooks(raw: dict[str, Any] | None) -> dict[str, list[PlaybookStep]]:
    return {name: [PlaybookStep.parse(s) for s in (steps or [])] for name, steps in (raw or {}).items()}


def sign_body(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class PlaybookRunner:
    """Runs playbook steps for an incident against the gateway's registry and client store."""

    def __init__(self, registry: Any = None, db_url: str | None = None, audit_log: Any = None,
                 dry_run: bool = False, on_change: Any = None) -> None:
        self.registry = registry
        self.db_url = db_url
        self.audit_log = audit_log
        self.dry_run = dry_run
        self.on_change = on_change  # e.g. the gateway service's cache invalidation

    def run(self, incident: dict[str, Any], steps: list[PlaybookStep]) -> list[dict[str, Any]]:
        results = []
        for step in steps:
            key = f"{step.action}:{incident.get('model')}:{','.join(incident.get('affected_clients') or [])}"
            if key in (incident.get("actions_done") or []):
                results.append({"action": step.action, "skipped": "already done for this incident"})
                continue
            if self.dry_run:
                res: dict[str, Any] = {"action": step.action, "dry_run": True, "would": step.options}
            else:
                try:
                    res = {"action": step.action, **getattr(self, f"_do_{step.action}")(incident, step.options)}
                except Exception as exc:  # a failed action is recorded; the others still run
                    log.exception("playbook action %s failed", step.action)
                    res = {"action": step.action, "error": f"{type(exc).__name__}: {exc}"}
            record_action(int(incident["id"]), key if "error" not in res else f"failed:{key}", res, self.db_url)
            incident.setdefault("actions_done", []).append(key)
            results.append(res)
        if self.on_change is not None and not self.dry_run:
            self.on_change()
        return results

    # ----------------------------------------------------------------- actions
    # Every action on the gateway goes through bastion.gateway.control, as the local admin.
    def _do_rollback(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        out = control.rollback(incident["model"], opts.get("alias", "production"), registry=self.registry)
        return {"result": out}

    def _do_revoke_key(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        done = []
        for client in incident.get("affected_clients") or []:
            info = control.revoke_client(client, db_url=self.db_url, audit_log=self.audit_log,
                                         reason=f"incident {incident['id']}")
            done.append(info.id)
        return {"revoked": done}

    def _do_throttle(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        done = []
        for client in incident.get("affected_clients") or []:
            info = control.throttle_client(client, opts.get("requests", "10/minute"), opts.get("samples"),
                                           db_url=self.db_url, audit_log=self.audit_log)
            done.append(info.id)
        return {"throttled": done}

    def _do_protective_mode(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        previous = control.output_policy(incident["model"], registry=self.registry)
        out = control.set_output_policy(incident["model"], {"type": "label_only"}, registry=self.registry)
        return {"result": out, "previous_policy": previous}

    def _message(self, incident: dict[str, Any]) -> dict[str, Any]:
        text = (f":rotating_light: Bastion incident #{incident['id']} ({incident['severity']}): {incident['title']} "
                f"— model {incident.get('model')} v{incident.get('version')}")
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                "incident": {k: incident.get(k) for k in ("id", "severity", "alert_type", "model", "version",
                                                          "affected_clients", "opened_at", "regulatory_clocks")}}

    def _post(self, url: str, payload: dict[str, Any], secret_env: str | None) -> dict[str, Any]:
        import httpx

        body = json.dumps(payload, sort_keys=True, default=str).encode()
        headers = {"content-type": "application/json"}
        if secret_env:
            secret = os.environ.get(secret_env)
            if not secret:
                raise ConfigError(f"webhook secret variable {secret_env} is not set")
            headers["X-Bastion-Signature"] = sign_body(body, secret)
        resp = httpx.post(url, content=body, headers=headers, timeout=5.0)
        return {"url": url, "status": resp.status_code}

    def _do_notify(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        msg = self._message(incident)
        if opts.get("webhook"):
            out["webhook"] = self._post(str(opts["webhook"]), msg, opts.get("secret_env"))
        if opts.get("smtp_host"):
            email = EmailMessage()
            email["Subject"] = f"[Bastion] incident #{incident['id']}: {incident['title']}"
            email["From"] = str(opts.get("from", "bastion@localhost"))
            to = opts.get("to") or []
            email["To"] = ", ".join(to if isinstance(to, list) else [to])
            email.set_content(msg["text"] + "\n\n" + json.dumps(msg["incident"], indent=2, default=str))
            with smtplib.SMTP(str(opts["smtp_host"]), int(opts.get("smtp_port", 25)), timeout=5) as smtp:
                smtp.send_message(email)
            out["email"] = {"to": email["To"]}
        if not out:
            raise ConfigError("notify needs webhook: URL and/or smtp_host")
        return out

    def _do_open_ticket(self, incident: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        if not opts.get("webhook"):
            raise ConfigError("open_ticket needs webhook: URL")
        return {"ticket": self._post(str(opts["webhook"]), {"incident": incident}, opts.get("secret_env"))}
