"""Dashboard routes, mounted by ``create_app`` at ``/ui``.

Every page declares a gateway scope (``models:read`` to view, ``audit:read`` for the audit page,
``models:write`` to roll back) through the app's ``route`` helper, so the default-deny check covers
them; only ``/ui/login`` is public. Sessions are opaque server-side ids (see ``sessions``); state
changing forms carry the session's CSRF token; pages are sent with a strict CSP, no framing, no-store.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from bastion.core.errors import AuthError, BastionError
from bastion.gateway.auth import Forbidden, parse_key_id
from bastion.gateway.ui.sessions import COOKIE, VIEW_ROLES, UISession, csrf_ok, make_store
from bastion.gateway.ui.views import (
    WINDOWS,
    RateSampler,
    TrafficHistory,
    alert_chart,
    audit_search,
    charts,
    traffic,
    traffic_charts,
)

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M16 2 4 6v9c0 7.5 5.1 13.2 12 15 '
           b'6.9-1.8 12-7.5 12-15V6z" fill="#1d2733"/><path d="M16 6 8 8.8V15c0 5 3.3 9.1 8 10.6z" fill="#cfe0ff"/>'
           b'</svg>')


class _LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class _UIForbidden(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _safe_next(value: str | None) -> str:
    """Only same-site dashboard paths (no open redirect)."""
    if value and value.startswith("/ui") and "//" not in value and "\\" not in value:
        return value
    return "/ui"


def _brief(obj: Any) -> str:
    """A timeline entry's details in one line: scalars in full, lists and mappings by size."""
    if not isinstance(obj, dict):
        return "" if obj is None else str(obj)[:300]
    parts = []
    for k, v in obj.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, list | dict):
            parts.append(f"{k}=[{len(v)} items]")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)[:600]


def _mmd_thresholds(snap: dict[str, Any]) -> dict[str, float]:
    """The MMD² threshold of each model's drift detector (from the monitor snapshot)."""
    out: dict[str, float] = {}
    for name, m in dict(snap.get("models") or {}).items():
        thr = m.get("mmd_threshold") if isinstance(m, dict) else None
        if thr is not None:
            out[name] = float(thr)
    return out


def add_ui_routes(app: FastAPI, service: Any, route: Callable[..., Any]) -> None:
    """Attach the dashboard to a gateway app built by ``create_app``."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["utc"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts)))
    env.filters["brief"] = _brief
    store = make_store(service.config.resolved_redis_url())
    sampler = RateSampler()
    history = TrafficHistory()
    app.state.ui_sessions = store
    app.state.ui_history = history

    def _start_sampling() -> None:
        """Readings every ``history.interval_s`` from the gateway's start (a daemon thread off the request
        path; it ends when the gateway closes or its metrics registry is gone), so the charts cover the
        last hour/day even when nobody had the dashboard open."""
        reg = weakref.ref(service.metrics.registry)
        stop = getattr(service, "_stop", None)
        stopped = stop if isinstance(stop, threading.Event) else threading.Event()

        def loop() -> None:
            while True:
                r = reg()
                if r is None:
                    return
                try:
                    history.sample(r)
                except Exception:  # a bad reading is skipped, the next one comes as usual
                    log.exception("dashboard history reading failed")
                del r
                if stopped.wait(history.interval_s):
                    return

        app.state.ui_history_thread = threading.Thread(target=loop, name="bastion-ui-history", daemon=True)
        app.state.ui_history_thread.start()

    _start_sampling()

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = env.get_template(template).render(nonce=nonce, path=request.url.path, **ctx)
        return HTMLResponse(html, status_code=status, headers={
            "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                                       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"})

    @app.exception_handler(_LoginRequired)
    async def _to_login(_: Request, exc: _LoginRequired) -> Response:
        return RedirectResponse(f"/ui/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(_UIForbidden)
    async def _forbidden(request: Request, exc: _UIForbidden) -> Response:
        return page(request, "error.html", 403, title="Forbidden", message=exc.detail, session=None)

    def session_for(scope: str) -> Callable[[Request], Awaitable[UISession]]:
        async def _dep(request: Request) -> UISession:
            sess = store.get(request.cookies.get(COOKIE))
            if sess is None:
                nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise _LoginRequired(nxt if request.method == "GET" else "/ui")
            if sess.key_id is not None:  # a revoked or expired key ends its sessions
                rec = await run_in_threadpool(service.keys._lookup, sess.key_id)
                now = time.time()
                if rec is None or rec.revoked or (rec.expires_at is not None and rec.expires_at <= now):
                    store.delete(request.cookies.get(COOKIE))
                    raise _LoginRequired("/ui")
            try:
                sess.principal.require(scope)
            except Forbidden as exc:
                raise _UIForbidden(str(exc)) from None
            return sess
        _dep.__name__ = f"ui_session_{scope.replace(':', '_')}"
        return _dep

    from fastapi import Depends

    def dep(scope: str) -> Any:
        return Depends(session_for(scope))

    ui = {"include_in_schema": False, "response_class": HTMLResponse}

    # ------------------------------------------------------------------ login / logout
    @route("GET", "/ui/login", None, **ui)
    async def login_form(request: Request, next: str = "/ui") -> Response:
        return page(request, "login.html", next=_safe_next(next), error=None, session=None)

    @route("POST", "/ui/login", None, **ui)
    async def login(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            raise _UIForbidden("cross-site login refused (Origin does not match this gateway)")  # login CSRF
        form = await request.form()
        cred = str(form.get("credential", "")).strip()
        nxt = _safe_next(str(form.get("next", "/ui")))
        try:
            p = await run_in_threadpool(service.authenticate, f"Bearer {cred}")
        except AuthError as exc:  # counted per source and window, like every refusal before authentication
            service.refuse_anonymous("ui_login", getattr(exc, "problem", "invalid_key"),
                                     (request.client.host if request.client else "-"), "/ui/login", None,
                                     secrets.token_hex(16))
            return page(request, "login.html", 401, next=nxt, error=str(exc), session=None)
        if p.role not in VIEW_ROLES or "models:read" not in p.scopes:
            service.metrics.child(service.metrics.rejections, "ui_login").inc()
            return page(request, "login.html", 403, next=nxt, session=None,
                        error=f"role {p.role!r} may not use the dashboard (operator, auditor or admin only)")
        not_after = None
        if p.via == "jwt":
            import jwt

            exp = jwt.decode(cred, options={"verify_signature": False}).get("exp")  # verified above
            not_after = float(exp) if exp is not None else None
        sid = store.create(p, key_id=parse_key_id(cred) if p.via == "api_key" else None, not_after=not_after)
        from bastion.gateway.registry import audit_admin

        await run_in_threadpool(audit_admin, service.config.db_url, p, "ui.login", {"role": p.role},
                                service.audit)
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https", max_age=int(store.absolute_s))
        return resp

    @route("POST", "/ui/logout", "models:read", **ui)
    async def logout(request: Request, s: UISession = dep("models:read")) -> Response:
        form = await request.form()
        if not csrf_ok(s, form.get("csrf_token")):  # type: ignore[arg-type]
            raise _UIForbidden("missing or wrong CSRF token")
        store.delete(request.cookies.get(COOKIE))
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/ui")
        return resp

    # ------------------------------------------------------------------ pages
    @route("GET", "/favicon.ico", None, include_in_schema=False)
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @route("GET", "/ui", "models:read", **ui)
    async def overview(request: Request, window: str = "1h", refresh: str = "on",
                       s: UISession = dep("models:read")) -> Response:
        from bastion.respond.incidents import list_incidents

        window = window if window in WINDOWS else "1h"
        history.sample(service.metrics.registry)
        versions = await run_in_threadpool(service.registry.list)
        t = traffic(service.metrics.registry)
        rate = sampler.rate(t["total"], service.started)
        monitor = getattr(service, "monitor", None)
        snap = await run_in_threadpool(monitor.snapshot) if monitor is not None else {"alerts": [], "models": {}}
        incidents = await run_in_threadpool(lambda: list_incidents(db_url=service.config.db_url))
        return page(request, "overview.html", session=s, versions=versions, traffic=t, rate=rate,
                    charts=charts(snap, _mmd_thresholds(snap), since=time.time() - WINDOWS[window]),
                    alerts=list(reversed(snap.get("alerts", [])))[:50],
                    alerts_svg=alert_chart(snap.get("alerts", []), window),
                    monitoring=monitor is not None, config_path=os.environ.get("BASTION_GATEWAY_CONFIG"), incidents=list(reversed(incidents))[:100],
                    msg=request.query_params.get("msg"), window=window, windows=list(WINDOWS),
                    refresh=None if refresh == "off" else 10,
                    series=traffic_charts(history, window), can_write="models:write" in s.principal.scopes)

    @route("GET", "/ui/incidents/{incident_id}", "models:read", **ui)
    async def incident(request: Request, incident_id: int, s: UISession = dep("models:read")) -> Response:
        from bastion.respond.incidents import get_incident

        try:
            inc = await run_in_threadpool(get_incident, incident_id, service.config.db_url)
        except BastionError as exc:
            return page(request, "error.html", 404, title="Not found", message=str(exc), session=s)
        prod = None
        if inc.get("model"):
            try:
                prod = (await run_in_threadpool(service.registry.resolve, inc["model"], "production")).version
            except BastionError:
                prod = None
        return page(request, "incident.html", session=s, inc=inc, production=prod,
                    can_rollback="models:write" in s.principal.scopes, msg=request.query_params.get("msg"))

    def _rollback_target(name: str) -> tuple[str, str | None]:
        """(current production version, the verified version a rollback would restore or None)."""
        rows = service.registry.list(name)
        current = service.registry.resolve(name, "production").version
        idx = next(i for i, r in enumerate(rows) if r.version == current)
        older = [r for r in rows[:idx] if r.verified]
        return current, (older[-1].version if older else None)

    @route("GET", "/ui/models/{name}/rollback", "models:write", **ui)
    async def confirm_rollback(request: Request, name: str, incident: int | None = None,
                               s: UISession = dep("models:write")) -> Response:
        try:
            current, target = await run_in_threadpool(_rollback_target, name)
        except BastionError as exc:
            return page(request, "error.html", 404, title="Not found", message=str(exc), session=s)
        return page(request, "confirm.html", session=s, name=name, current=current, target=target,
                    incident=incident)

    @route("POST", "/ui/models/{name}/rollback", "models:write", **ui)
    async def do_rollback(request: Request, name: str, s: UISession = dep("models:write")) -> Response:
        form = await request.form()
        if not csrf_ok(s, form.get("csrf_token")):  # type: ignore[arg-type]
            raise _UIForbidden("missing or wrong CSRF token")
        inc_raw = str(form.get("incident", "") or "")
        inc_id = int(inc_raw) if inc_raw.isdigit() else None
        back = f"/ui/incidents/{inc_id}" if inc_id is not None else "/ui"
        try:
            out = await run_in_threadpool(lambda: service.registry.rollback(name, "production", actor=s.principal))
        except BastionError as exc:
            return RedirectResponse(f"{back}?msg={quote('rollback refused: ' + str(exc))}", status_code=303)
        service.invalidate()
        if inc_id is not None:
            from bastion.respond.incidents import record_action

            try:
                await run_in_threadpool(record_action, inc_id, "rollback", out, service.config.db_url,
                                        f"ui:{s.principal.name}")
            except BastionError:
                pass
        msg = f"rolled back {name}: production {out['rolled_back_from']} → {out['version']}"
        return RedirectResponse(f"{back}?msg={quote(msg)}", status_code=303)

    @route("GET", "/ui/models/{name}/promote/{version}", "models:write", **ui)
    async def confirm_promote(request: Request, name: str, version: str,
                              s: UISession = dep("models:write")) -> Response:
        try:
            info = await run_in_threadpool(service.registry.get, name, version)
            current = (await run_in_threadpool(service.registry.resolve, name, "production")).version
        except BastionError as exc:
            return page(request, "error.html", 404, title="Not found", message=str(exc), session=s)
        return page(request, "promote.html", session=s, name=name, info=info, current=current)

    @route("POST", "/ui/models/{name}/promote/{version}", "models:write", **ui)
    async def do_promote(request: Request, name: str, version: str, s: UISession = dep("models:write")) -> Response:
        form = await request.form()
        if not csrf_ok(s, form.get("csrf_token")):  # type: ignore[arg-type]
            raise _UIForbidden("missing or wrong CSRF token")
        try:
            if not (await run_in_threadpool(service.registry.get, name, version)).verified:
                raise BastionError(f"{name} version {version} is not verified-signed")
            out = await run_in_threadpool(lambda: service.registry.promote(name, version, "production",
                                                                           actor=s.principal))
        except BastionError as exc:
            return RedirectResponse(f"/ui?msg={quote('promotion refused: ' + str(exc))}", status_code=303)
        service.invalidate()
        msg = f"promoted {name}: production → version {out.get('version', version)}"
        return RedirectResponse(f"/ui?msg={quote(msg)}", status_code=303)

    @route("GET", "/ui/audit", "audit:read", **ui)
    async def audit(request: Request, client: str = "", action: str = "", verify: bool = True,
                    s: UISession = dep("audit:read")) -> Response:
        from bastion.artifacts.keys import public_path_for
        from bastion.gateway.audit import verify_chain

        client, action = client[:160], action[:64]
        await run_in_threadpool(service.audit.flush)
        rows = await run_in_threadpool(audit_search, service.config.db_url, client, action)
        report = None
        if verify:
            pub = public_path_for(service.config.audit_key_path())
            report = (await run_in_threadpool(verify_chain, service.config.db_url, pub)).to_dict()
        return page(request, "audit.html", session=s, rows=rows, client=client, action=action, report=report)
