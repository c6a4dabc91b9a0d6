"""Dashboard routes: a module-level ``APIRouter`` that ``install_ui`` adds to the gateway app.

Every page declares a gateway scope (``models:read`` to view, ``audit:read`` for the audit page,
``models:write`` to roll back) through ``scoped``, so the default-deny check of ``create_app`` covers
them; only ``/ui/login`` is public. Sessions are opaque server-side ids (see ``sessions``); state
changing forms carry the session's CSRF token; pages are sent with a strict CSP, no framing, no-store.
Handlers reach the service through ``app.state.service`` and the dashboard's own state (session store,
rate sampler, traffic history) through ``app.state.ui_*``, all set by ``install_ui``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from bastion.core.errors import AuthError, BastionError
from bastion.gateway.auth import Forbidden, Principal, parse_key_id
from bastion.gateway.incidents import incident_book
from bastion.gateway.registry import audit_admin
from bastion.gateway.routes.common import ServiceDep, get_service, scoped
from bastion.gateway.service import GatewayService
from bastion.gateway.ui.sessions import COOKIE, VIEW_ROLES, SessionStore, UISession, csrf_ok, make_store
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
UI: dict[str, Any] = {"include_in_schema": False, "response_class": HTMLResponse}
router = APIRouter()


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


_ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
_ENV.filters["utc"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts)))
_ENV.filters["brief"] = _brief


def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """A rendered page with its own CSP nonce, no framing, no caching."""
    nonce = secrets.token_urlsafe(16)
    html = _ENV.get_template(template).render(nonce=nonce, path=request.url.path, **ctx)
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})


def _not_found(request: Request, exc: BastionError, s: UISession) -> HTMLResponse:
    return page(request, "error.html", 404, title="Not found", message=str(exc), session=s)


def _redirect(path: str, msg: str | None = None) -> RedirectResponse:
    return RedirectResponse(path if msg is None else f"{path}?msg={quote(msg)}", status_code=303)


# ------------------------------------------------------------------ installing the dashboard
def install_ui(app: FastAPI, service: GatewayService) -> None:
    """Add the dashboard to a gateway app built by ``create_app``: its state (``app.state.ui_sessions``,
    ``ui_history``, ``ui_sampler``), the history readings thread (``ui_history_thread``), its two exception
    handlers and its routes."""
    app.state.ui_sessions = make_store(service.config.resolved_redis_url())
    app.state.ui_sampler = RateSampler()
    app.state.ui_history = TrafficHistory()
    app.state.ui_history_thread = _start_sampling(service, app.state.ui_history)
    app.add_exception_handler(_LoginRequired, _to_login)  # type: ignore[arg-type]
    app.add_exception_handler(_UIForbidden, _forbidden)  # type: ignore[arg-type]
    app.include_router(router)


def _start_sampling(service: GatewayService, history: TrafficHistory) -> threading.Thread:
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

    thread = threading.Thread(target=loop, name="bastion-ui-history", daemon=True)
    thread.start()
    return thread


async def _to_login(_: Request, exc: _LoginRequired) -> Response:
    return RedirectResponse(f"/ui/login?next={quote(exc.next_path)}", status_code=303)


async def _forbidden(request: Request, exc: _UIForbidden) -> Response:
    return page(request, "error.html", 403, title="Forbidden", message=exc.detail, session=None)


# ------------------------------------------------------------------ sessions
def _store(request: Request) -> SessionStore:
    return request.app.state.ui_sessions


async def _key_still_valid(service: GatewayService, key_id: str) -> bool:
    rec = await run_in_threadpool(service.keys._lookup, key_id)
    return not (rec is None or rec.revoked or (rec.expires_at is not None and rec.expires_at <= time.time()))


async def _session(request: Request, scope: str) -> UISession:
    store = _store(request)
    sess = store.get(request.cookies.get(COOKIE))
    if sess is None:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise _LoginRequired(nxt if request.method == "GET" else "/ui")
    if sess.key_id is not None and not await _key_still_valid(get_service(request), sess.key_id):
        store.delete(request.cookies.get(COOKIE))  # a revoked or expired key ends its sessions
        raise _LoginRequired("/ui")
    try:
        sess.principal.require(scope)
    except Forbidden as exc:
        raise _UIForbidden(str(exc)) from None
    return sess


@cache
def session_for(scope: str) -> Callable[[Request], Awaitable[UISession]]:
    """The dependency that yields the request's dashboard session once its principal holds ``scope``
    (a redirect to the login page without one, a 403 page without the scope)."""
    async def _dep(request: Request) -> UISession:
        return await _session(request, scope)

    _dep.__name__ = f"ui_session_{scope.replace(':', '_')}"
    return _dep


def dep(scope: str) -> Any:
    return Depends(session_for(scope))


async def _csrf_form(request: Request, s: UISession) -> FormData:
    """The posted form, once its CSRF token is the session's (a 403 page otherwise)."""
    form = await request.form()
    if not csrf_ok(s, form.get("csrf_token")):  # type: ignore[arg-type]
        raise _UIForbidden("missing or wrong CSRF token")
    return form


# ------------------------------------------------------------------ login / logout
@scoped(router, "GET", "/ui/login", None, **UI)
async def login_form(request: Request, next: str = "/ui") -> Response:
    return page(request, "login.html", next=_safe_next(next), error=None, session=None)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _not_after(p: Principal, cred: str) -> float | None:
    """When a JWT session must end (the token's ``exp``); None for an API key."""
    if p.via != "jwt":
        return None
    import jwt

    exp = jwt.decode(cred, options={"verify_signature": False}).get("exp")  # verified at login
    return float(exp) if exp is not None else None


@scoped(router, "POST", "/ui/login", None, **UI)
async def login(request: Request, service: ServiceDep) -> Response:
    if not _same_origin(request):
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
    store = _store(request)
    sid = store.create(p, key_id=parse_key_id(cred) if p.via == "api_key" else None, not_after=_not_after(p, cred))
    await run_in_threadpool(audit_admin, service.config.db_url, p, "ui.login", {"role": p.role}, service.audit)
    resp = _redirect(nxt)
    resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/ui",
                    secure=request.url.scheme == "https", max_age=int(store.absolute_s))
    return resp


@scoped(router, "POST", "/ui/logout", "models:read", **UI)
async def logout(request: Request, s: UISession = dep("models:read")) -> Response:
    await _csrf_form(request, s)
    _store(request).delete(request.cookies.get(COOKIE))
    resp = _redirect("/ui/login")
    resp.delete_cookie(COOKIE, path="/ui")
    return resp


# ------------------------------------------------------------------ pages
@scoped(router, "GET", "/favicon.ico", None, include_in_schema=False)
async def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@scoped(router, "GET", "/ui", "models:read", **UI)
async def overview(request: Request, service: ServiceDep, window: str = "1h", refresh: str = "on",
                   s: UISession = dep("models:read")) -> Response:
    window = window if window in WINDOWS else "1h"
    history: TrafficHistory = request.app.state.ui_history
    history.sample(service.metrics.registry)
    versions = await run_in_threadpool(service.registry.list)
    t = traffic(service.metrics.registry)
    rate = request.app.state.ui_sampler.rate(t["total"], service.started)
    monitor = getattr(service, "monitor", None)
    snap = await run_in_threadpool(monitor.snapshot) if monitor is not None else {"alerts": [], "models": {}}
    book = incident_book(request.app.state)
    incidents = await run_in_threadpool(book.list, service.config.db_url)
    return page(request, "overview.html", session=s, versions=versions, traffic=t, rate=rate,
                charts=charts(snap, _mmd_thresholds(snap), since=time.time() - WINDOWS[window]),
                alerts=list(reversed(snap.get("alerts", [])))[:50],
                alerts_svg=alert_chart(snap.get("alerts", []), window),
                monitoring=monitor is not None, config_path=os.environ.get("BASTION_GATEWAY_CONFIG"),
                incidents=list(reversed(incidents))[:100],
                msg=request.query_params.get("msg"), window=window, windows=list(WINDOWS),
                refresh=None if refresh == "off" else 10,
                series=traffic_charts(history, window), can_write="models:write" in s.principal.scopes)


async def _production_version(service: GatewayService, name: str | None) -> str | None:
    if not name:
        return None
    try:
        return (await run_in_threadpool(service.registry.resolve, name, "production")).version
    except BastionError:
        return None


@scoped(router, "GET", "/ui/incidents/{incident_id}", "models:read", **UI)
async def incident(request: Request, incident_id: int, service: ServiceDep,
                   s: UISession = dep("models:read")) -> Response:
    try:
        inc = await run_in_threadpool(incident_book(request.app.state).get, incident_id, service.config.db_url)
    except BastionError as exc:
        return _not_found(request, exc, s)
    return page(request, "incident.html", session=s, inc=inc,
                production=await _production_version(service, inc.get("model")),
                can_rollback="models:write" in s.principal.scopes, msg=request.query_params.get("msg"))


def _rollback_target(service: GatewayService, name: str) -> tuple[str, str | None]:
    """(current production version, the verified version a rollback would restore or None)."""
    rows = service.registry.list(name)
    current = service.registry.resolve(name, "production").version
    idx = next(i for i, r in enumerate(rows) if r.version == current)
    older = [r for r in rows[:idx] if r.verified]
    return current, (older[-1].version if older else None)


@scoped(router, "GET", "/ui/models/{name}/rollback", "models:write", **UI)
async def confirm_rollback(request: Request, name: str, service: ServiceDep, incident: int | None = None,
                           s: UISession = dep("models:write")) -> Response:
    try:
        current, target = await run_in_threadpool(_rollback_target, service, name)
    except BastionError as exc:
        return _not_found(request, exc, s)
    return page(request, "confirm.html", session=s, name=name, current=current, target=target,
                incident=incident)


async def _note_on_incident(request: Request, service: GatewayService, inc_id: int, out: dict[str, Any],
                            who: str) -> None:
    """Record a dashboard rollback on the incident it was started from (best effort)."""
    book = incident_book(request.app.state)
    try:
        await run_in_threadpool(book.record_action, inc_id, "rollback", out, service.config.db_url, f"ui:{who}")
    except BastionError:
        pass


@scoped(router, "POST", "/ui/models/{name}/rollback", "models:write", **UI)
async def do_rollback(request: Request, name: str, service: ServiceDep,
                      s: UISession = dep("models:write")) -> Response:
    form = await _csrf_form(request, s)
    inc_raw = str(form.get("incident", "") or "")
    inc_id = int(inc_raw) if inc_raw.isdigit() else None
    back = f"/ui/incidents/{inc_id}" if inc_id is not None else "/ui"
    try:
        out = await run_in_threadpool(lambda: service.registry.rollback(name, "production", actor=s.principal))
    except BastionError as exc:
        return _redirect(back, "rollback refused: " + str(exc))
    service.invalidate()
    if inc_id is not None:
        await _note_on_incident(request, service, inc_id, out, s.principal.name)
    return _redirect(back, f"rolled back {name}: production {out['rolled_back_from']} → {out['version']}")


@scoped(router, "GET", "/ui/models/{name}/promote/{version}", "models:write", **UI)
async def confirm_promote(request: Request, name: str, version: str, service: ServiceDep,
                          s: UISession = dep("models:write")) -> Response:
    try:
        info = await run_in_threadpool(service.registry.get, name, version)
        current = (await run_in_threadpool(service.registry.resolve, name, "production")).version
    except BastionError as exc:
        return _not_found(request, exc, s)
    return page(request, "promote.html", session=s, name=name, info=info, current=current)


def _promote_verified(service: GatewayService, name: str, version: str, actor: Principal) -> dict[str, Any]:
    if not service.registry.get(name, version).verified:
        raise BastionError(f"{name} version {version} is not verified-signed")
    return service.registry.promote(name, version, "production", actor=actor)


@scoped(router, "POST", "/ui/models/{name}/promote/{version}", "models:write", **UI)
async def do_promote(request: Request, name: str, version: str, service: ServiceDep,
                     s: UISession = dep("models:write")) -> Response:
    await _csrf_form(request, s)
    try:
        out = await run_in_threadpool(_promote_verified, service, name, version, s.principal)
    except BastionError as exc:
        return _redirect("/ui", "promotion refused: " + str(exc))
    service.invalidate()
    return _redirect("/ui", f"promoted {name}: production → version {out.get('version', version)}")


@scoped(router, "GET", "/ui/audit", "audit:read", **UI)
async def audit(request: Request, service: ServiceDep, client: str = "", action: str = "", verify: bool = True,
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
