"""The console's HTTP surface (Starlette, served by uvicorn over TLS on loopback).

Pages: ``/`` the overview of ``radlake status`` with the stack's components; ``/plots`` the last hour from
Prometheus; ``/quarantine`` and ``/quarantine/<provider>`` triage (release, discard); ``/dead-letters`` the
dead-letter topics (replay). ``/healthz`` answers 200 without a login.

Every page needs a session of a person holding ``platform-admin``: a browser without one is sent to Keycloak
(authorization code flow, PKCE S256, ``state`` and ``nonce``) and comes back to ``/auth/callback``; a person
without the role gets a 403 page and no session. The session's access token is refreshed when it expires, and
the role is checked again then, so a revoked role stops reaching the console within one token lifetime. Every
form that changes something carries the session's CSRF token, and a cross-origin POST is refused.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from admin_console import dead_letters, pages
from admin_console.session import COOKIE, Session, Sessions
from lake_schemas.errors import RadlakeError
from monitoring.overview import Overview, age
from platform_layer.identity_provider import AccessTokenVerifier, OidcClient, VerifiedToken, claims
from platform_layer.realm_roles import PLATFORM_ADMIN

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 10.0
MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True)
class ConsoleConfig:
    """What the app reads and does, injected by the service: the realm, and the readers and actions of the
    libraries (each called in a worker thread)."""

    url: str  # the console's own origin, as browsers reach it
    callback_url: str
    oidc: OidcClient
    verifier: AccessTokenVerifier
    sessions: Sessions
    overview: Callable[[], Overview]
    components: Callable[[], list[Any]]  # infra ComponentStatus rows
    plots: Callable[[], list[tuple[str, str, list[pages.Series]]] | None]  # None: no Prometheus
    providers: Callable[[], dict[str, dict[str, int]]]
    refused: Callable[[str, str], list[Any]]  # (provider, actor) -> triage.Refused rows, audited
    release: Callable[[str, str, str], dict[str, Any]]
    discard: Callable[[str, str, str], tuple[int, int]]
    letters: Callable[[str], list[dead_letters.Letter]]
    replay: Callable[[str, int, int, str], dead_letters.Letter]
    plot_window_s: float = 3600.0


class _Denied(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("denied")
        self.response = response


def _page(title: str, body: str, session: Session | None = None, *, here: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(pages.layout(title, body, user=session.username if session else None,
                                     csrf=session.csrf if session else None, here=here), status_code=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                            "img-src 'self' data:; form-action 'self' "
                                                            "https://127.0.0.1:*; frame-ancestors 'none'",
                                 "Referrer-Policy": "same-origin"})


def _forbidden(username: str) -> HTMLResponse:
    return _page("Not allowed", f"<p>{pages.esc(username)} does not hold the realm role <code>{PLATFORM_ADMIN}</code>"
                 " that the console asks for. An administrator grants it with "
                 f"<code>radlake user grant {pages.esc(username)} {PLATFORM_ADMIN}</code>.</p>", status=403)


def build_app(config: ConsoleConfig) -> Starlette:
    sessions = config.sessions

    def to_login(request: Request) -> Response:
        login = sessions.begin_login(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(config.oidc.authorization_url(
            redirect_uri=config.callback_url, state=login.state, code_challenge=login.code_challenge,
            nonce=login.nonce), status_code=302)

    def admitted(verified: VerifiedToken) -> bool:
        return PLATFORM_ADMIN in verified.roles

    async def session_of(request: Request) -> Session:
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise _Denied(to_login(request) if request.method == "GET" else
                          _page("Logged out", '<p>Your session has ended. <a href="/">Log in again</a>.</p>',
                                status=401))
        if time.time() >= session.access_expires_at - REFRESH_MARGIN_S:
            try:
                tokens = await run_in_threadpool(config.oidc.refresh, session.refresh_token)
                verified = await run_in_threadpool(config.verifier.verify, tokens.access_token)
            except RadlakeError as err:
                log.info("session of %s ended: %s", session.username, err)
                sessions.close(request.cookies.get(COOKIE))
                raise _Denied(to_login(request) if request.method == "GET" else
                              _page("Logged out", "<p>Your session has ended.</p>", status=401)) from err
            if not admitted(verified):
                sessions.close(request.cookies.get(COOKIE))
                raise _Denied(_forbidden(verified.username))
            session.access_token, session.roles = tokens.access_token, verified.roles
            session.refresh_token = tokens.refresh_token or session.refresh_token
            session.access_expires_at = verified.expires_at
            if tokens.refresh_expires_in:
                session.ends_at = tokens.received_at + tokens.refresh_expires_in
        return session

    async def checked_form(request: Request, session: Session) -> dict[str, str]:
        origin = request.headers.get("origin")  # browsers send it with a POST (the pages' referrer policy)
        if origin is not None and origin != config.url:
            raise _Denied(_page("Refused", "<p>A form of another site cannot act here.</p>", session, status=403))
        body = await request.body()
        if len(body) > MAX_FORM_BYTES or not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            raise _Denied(_page("Refused", "<p>Not a form of this console.</p>", session, status=400))
        # urlencoded forms only (no multipart parser needed): every form here holds a few short fields
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            raise _Denied(_page("Refused", "<p>The form is stale or forged (CSRF token). Reload the page.</p>",
                                session, status=403))
        return form

    def guarded(handler: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                session = await session_of(request)
                return await handler(request, session)
            except _Denied as denied:
                return denied.response
        return endpoint

    async def callback(request: Request) -> Response:
        params = request.query_params
        login = sessions.finish_login(params.get("state", ""))
        if login is None:
            return _page("Login failed", '<p>This login expired or was already used. <a href="/">Start again</a>.'
                         "</p>", status=400)
        if params.get("error") or not params.get("code"):
            return _page("Login failed", f"<p>Keycloak answered: {pages.esc(params.get('error', 'no code'))}. "
                         '<a href="/">Start again</a>.</p>', status=400)
        try:
            tokens = await run_in_threadpool(config.oidc.authorization_code, params["code"],
                                             redirect_uri=config.callback_url, code_verifier=login.code_verifier)
            verified = await run_in_threadpool(config.verifier.verify, tokens.access_token)
        except RadlakeError as err:
            return _page("Login failed", f"<p>{pages.esc(err)}</p>", status=401)
        if tokens.id_token and claims(tokens.id_token).get("nonce") != login.nonce:
            return _page("Login failed", "<p>The identity token answers another login (nonce).</p>", status=401)
        if not admitted(verified):
            log.info("console refused %s: no %s", verified.username, PLATFORM_ADMIN)
            try:  # nothing of this login is kept: its session at Keycloak ends too
                await run_in_threadpool(config.oidc.revoke, tokens.refresh_token)
            except RadlakeError as err:
                log.warning("revoking the refresh token of %s failed: %s", verified.username, err)
            return _forbidden(verified.username)
        ends_at = tokens.received_at + tokens.refresh_expires_in if tokens.refresh_expires_in else float("inf")
        cookie = sessions.open(Session(verified.username, verified.roles, tokens.access_token, tokens.refresh_token,
                                       tokens.id_token, verified.expires_at, ends_at))
        log.info("console session opened for %s", verified.username)
        response = RedirectResponse(login.next_path, status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, secure=True, samesite="lax", path="/")
        return response

    async def logout(request: Request) -> Response:
        try:
            session = await session_of(request)
            await checked_form(request, session)
        except _Denied as denied:
            return denied.response
        sessions.close(request.cookies.get(COOKIE))
        try:
            await run_in_threadpool(config.oidc.revoke, session.refresh_token)
        except RadlakeError as err:
            log.warning("revoking the refresh token of %s failed: %s", session.username, err)
        target = (config.oidc.end_session_url(id_token=session.id_token, post_logout_redirect_uri=f"{config.url}/")
                  if session.id_token else "/")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
        return response

    async def overview(_request: Request, session: Session) -> Response:
        found = await run_in_threadpool(config.overview)
        try:
            components = await run_in_threadpool(config.components)
            component_table = pages.table(["component", "address", "pid", "health", "memory", "version"],
                                          [[c.name, c.address, c.pid or "-", "healthy" if c.healthy else
                                            (c.detail or "down"), f"{c.rss_bytes / 2**20:.0f} MiB" if c.rss_bytes
                                            else "-", c.version] for c in components])
        except RadlakeError as err:
            component_table = f'<p class="problem">{pages.esc(err)}</p>'
        now, src = found.at, found.sources
        body = [f'<p class="src">at {pages.esc(now.isoformat(timespec="seconds"))}</p>',
                pages.section("Components", "the stack's processes", component_table),
                pages.section("Providers", src.get("providers", ""), pages.table(
                    ["provider", "inst/min 5m", "inst/min 60m", "last upload", "quarantined by reason"],
                    [[p.provider, f"{p.per_min_5:.1f}", f"{p.per_min_60:.2f}",
                      f"{age(p.last_upload, now)} ago" if p.last_upload else "-",
                      ", ".join(f"{r}={n}" for r, n in sorted(p.quarantined.items())) or "-"]
                     for p in found.providers])),
                pages.section("Consumer groups", src.get("groups", ""), pages.table(
                    ["group", "lag", "trend"],
                    [[g.group, g.lag, "?" if g.trend is None else f"{g.trend:+d}"] for g in found.groups])),
                pages.section("Lake tables", src.get("tables", ""), pages.table(
                    ["table", "version", "age"], [[t.table, t.version, age(t.last_commit, now)] for t in found.tables])),
                pages.section("Open alerts", src.get("alerts", ""), pages.table(
                    ["alert", "severity", "summary", "since"],
                    [[a.name, a.severity, a.summary, a.since] for a in found.alerts])),
                pages.section("Supervisor", src.get("supervisor", ""), pages.table(
                    ["component", "restarts", "failed restarts", "gave up"],
                    [[s.component, s.restarts, s.failed_restarts, "yes" if s.gave_up else "no"]
                     for s in found.supervised])),
                *(f'<p class="problem">! {pages.esc(p)}</p>' for p in found.problems)]
        return _page("Overview", "".join(body), session, here="/")

    async def plots(_request: Request, session: Session) -> Response:
        drawn = await run_in_threadpool(config.plots)
        if drawn is None:
            body = pages.note("Prometheus does not answer: `radlake stack up monitoring` starts it.", False)
        else:
            end = time.time()
            body = '<div class="plots">' + "".join(
                pages.line_plot(title, unit, series, end - config.plot_window_s, end)
                for title, unit, series in drawn) + "</div>"
        return _page("The last hour", body, session, here="/plots")

    async def quarantine_index(_request: Request, session: Session) -> Response:
        counts = await run_in_threadpool(config.providers)
        rows = [[f'<a href="/quarantine/{pages.esc(p)}">{pages.esc(p)}</a>', sum(by.values()),
                 pages.esc(", ".join(f"{r}={n}" for r, n in sorted(by.items())) or "-")]
                for p, by in sorted(counts.items())]
        return _page("Quarantine", "<p>What each provider's edge refused, by reason. Open a provider to triage."
                     "</p>" + pages.table(["provider", "records", "by reason"], rows, raw=frozenset({0, 2})),
                     session, here="/quarantine")

    def triage_page(provider: str, session: Session, rows: list[Any], outcome: str = "") -> HTMLResponse:
        def actions(row: Any) -> str:
            if not row.sha256:
                return "-"
            base = f"/quarantine/{provider}/{row.sha256}"
            release = (pages.post_button(f"{base}/release", "Release", session.csrf) if row.kept else "")
            discard = pages.post_button(f"{base}/discard", "Discard", session.csrf)
            return release + " " + discard
        table = pages.table(["quarantined at", "reason", "digest (sha256)", "size", "original kept", "action"],
                            [[r.quarantined_at or "-", r.reason, r.sha256 or "-",
                              f"{r.size_bytes:,} B" if r.size_bytes is not None else "-", "yes" if r.kept else "no",
                              actions(r)] for r in rows], raw=frozenset({5}))
        return _page(f"Quarantine of {provider}", outcome + "<p>Release sends a kept original through the current"
                     " engine again; discard deletes its records and original. Both are audited in your name. "
                     "Identifying fields stay sealed.</p>" + table, session, here="/quarantine")

    async def quarantine(request: Request, session: Session) -> Response:
        provider = request.path_params["provider"]
        try:
            rows = await run_in_threadpool(config.refused, provider, session.actor)
        except RadlakeError as err:
            return _page("Quarantine", pages.note(str(err), False), session, status=400)
        return triage_page(provider, session, rows)

    async def triage(request: Request, session: Session) -> Response:
        provider, sha256, action = (request.path_params[k] for k in ("provider", "sha256", "action"))
        await checked_form(request, session)
        try:
            if action == "release":
                result = await run_in_threadpool(config.release, provider, sha256, session.actor)
                outcome = pages.note(f"Released {sha256[:16]}…: the edge answered {result['status']} "
                                     f"({', '.join(f'{k}={v}' for k, v in sorted(result['counts'].items()))})", True)
            elif action == "discard":
                originals, deleted = await run_in_threadpool(config.discard, provider, sha256, session.actor)
                outcome = pages.note(f"Discarded {sha256[:16]}…: {deleted} record(s) and {originals} original(s)"
                                     " deleted", True)
            else:
                return _page("Quarantine", pages.note(f"unknown action {action}", False), session, status=404)
            status = 200
        except RadlakeError as err:
            outcome, status = pages.note(f"{action} failed: {err}", False), 400
        try:
            rows = await run_in_threadpool(config.refused, provider, session.actor)
        except RadlakeError as err:
            return _page("Quarantine", outcome + pages.note(str(err), False), session, status=400)
        response = triage_page(provider, session, rows, outcome)
        response.status_code = status
        return response

    def letters_page(session: Session, found: dict[str, list[dead_letters.Letter] | str], outcome: str = "") -> str:
        parts = [outcome, "<p>The latest messages of each dead-letter topic: where they came from and why. Their "
                 "contents are not shown. Replay produces one, unchanged, to its source topic (audited).</p>"]
        for topic, letters in found.items():
            if isinstance(letters, str):
                parts.append(pages.section(topic, "Kafka", f'<p class="problem">{pages.esc(letters)}</p>'))
                continue
            parts.append(pages.section(topic, "Kafka", pages.table(
                ["time", "partition", "offset", "event type", "reason", "stage", "source", "action"],
                [[lt.at.isoformat(timespec="seconds") if lt.at else "-", lt.partition, lt.offset,
                  lt.event_type or "-", lt.reason or "-", lt.stage or "-",
                  f"{lt.source_topic}[{lt.source_partition}]@{lt.source_offset}" if lt.source_topic else "-",
                  pages.post_button("/dead-letters/replay", "Replay", session.csrf,
                                    {"topic": lt.topic, "partition": lt.partition, "offset": lt.offset}) if lt.replayable else "-"]
                 for lt in letters], raw=frozenset({7}))))
        return "".join(parts)

    async def read_letters() -> dict[str, list[dead_letters.Letter] | str]:
        found: dict[str, list[dead_letters.Letter] | str] = {}
        for topic in dead_letters.TOPICS:
            try:
                found[topic] = await run_in_threadpool(config.letters, topic)
            except RadlakeError as err:
                found[topic] = str(err)
        return found

    async def letters(_request: Request, session: Session) -> Response:
        return _page("Dead letters", letters_page(session, await read_letters()), session, here="/dead-letters")

    async def replay(request: Request, session: Session) -> Response:
        form = await checked_form(request, session)
        status = 200
        try:
            letter = await run_in_threadpool(config.replay, form.get("topic", ""), int(form.get("partition", "")),
                                             int(form.get("offset", "")), session.actor)
            outcome = pages.note(f"Replayed {letter.topic}[{letter.partition}]@{letter.offset} to "
                                 f"{letter.source_topic}", True)
        except (RadlakeError, ValueError) as err:
            outcome, status = pages.note(f"replay failed: {err}", False), 400
        return _page("Dead letters", letters_page(session, await read_letters(), outcome), session,
                     here="/dead-letters", status=status)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/", guarded(overview)),
        Route("/plots", guarded(plots)),
        Route("/quarantine", guarded(quarantine_index)),
        Route("/quarantine/{provider}", guarded(quarantine)),
        Route("/quarantine/{provider}/{sha256}/{action}", guarded(triage), methods=["POST"]),
        Route("/dead-letters", guarded(letters)),
        Route("/dead-letters/replay", guarded(replay), methods=["POST"]),
        Route("/auth/callback", callback),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
    ])
