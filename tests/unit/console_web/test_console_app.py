"""The admin console's logic without a stack: sessions (signed ids, one-use logins, PKCE), pages (escaping,
plots), and the app's gate (login redirect, role check, CSRF) with stand-ins for Keycloak's client."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
from starlette.testclient import TestClient

from admin_console import pages
from admin_console.app import ConsoleConfig, build_app
from admin_console.session import COOKIE, LOGIN_TTL_S, Session, Sessions, safe_next
from monitoring.overview import Overview, SupervisedRow
from nifi import triage
from nifi.providers import ProviderError
from platform_layer.identity_provider import Tokens, VerifiedToken
from platform_layer.settings import Settings


def test_a_session_id_is_signed_and_a_forged_one_names_nobody():
    sessions = Sessions(b"k" * 32)
    cookie = sessions.open(Session("ada", frozenset(), "a", "r", "i", time.time() + 60))
    assert sessions.get(cookie).username == "ada"
    sid, _mac = cookie.split(".")
    assert sessions.get(f"{sid}.forged") is None
    assert sessions.get(sid) is None
    assert Sessions(b"x" * 32).get(cookie) is None  # another key
    assert sessions.close(cookie).username == "ada" and sessions.get(cookie) is None


def test_a_login_state_is_used_once_and_expires():
    sessions = Sessions(b"k" * 32)
    login = sessions.begin_login("/quarantine", now=1000.0)
    assert sessions.finish_login(login.state, now=1001.0) == login
    assert sessions.finish_login(login.state, now=1002.0) is None  # replayed
    late = sessions.begin_login("/", now=1000.0)
    assert sessions.finish_login(late.state, now=1000.0 + LOGIN_TTL_S) is None
    digest = hashlib.sha256(login.code_verifier.encode()).digest()
    assert login.code_challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize("given, expected", [("/plots", "/plots"), ("//evil.example/x", "/"),
                                             ("https://evil.example/", "/"), (None, "/"), ("/\\evil", "/")])
def test_only_paths_of_the_console_are_gone_back_to(given, expected):
    assert safe_next(given) == expected


def test_pages_escape_what_they_show_and_draw_no_data_plainly():
    assert "<script>" not in pages.table(["a"], [["<script>alert(1)</script>"]])
    assert "no data" in pages.line_plot("lag", "messages", [], 0.0, 3600.0)
    drawn = pages.line_plot("lag", "messages", [pages.Series("g<1>", [(0.0, 1.0), (60.0, 3.0)])], 0.0, 3600.0)
    assert "<polyline" in drawn and "g&lt;1&gt;" in drawn


class FakeOidc:
    """Keycloak's client for the app: hands out tokens for the codes it was told of."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}  # code -> username
        self.revoked: list[str] = []

    def authorization_url(self, *, redirect_uri, state, code_challenge, nonce, scope="openid"):
        return f"https://idp.example/auth?state={state}&nonce={nonce}&redirect_uri={redirect_uri}"

    def authorization_code(self, code, *, redirect_uri, code_verifier):
        return Tokens(f"access-{self.codes[code]}", 300, "refresh", 1800, "", "", time.time())

    def refresh(self, refresh_token):
        raise AssertionError("not expected")

    def revoke(self, token, hint="refresh_token"):
        self.revoked.append(token)

    def end_session_url(self, *, id_token, post_logout_redirect_uri):
        return "https://idp.example/logout"


@dataclass
class FakeVerifier:
    roles: dict[str, frozenset[str]]

    def verify(self, token):
        name = token.removeprefix("access-")
        return VerifiedToken(name, self.roles[name], "radlake-console", time.time() + 300)


@pytest.fixture
def console():
    oidc = FakeOidc()
    discarded = []
    config = ConsoleConfig(
        url="https://testserver", callback_url="https://testserver/auth/callback", oidc=oidc,
        verifier=FakeVerifier({"ada": frozenset({"platform-admin"}), "bob": frozenset({"project:x:reader"})}),
        sessions=Sessions(b"k" * 32),
        overview=lambda: Overview(pages.datetime.now(pages.UTC), {}, [], [], [], [],
                                  [SupervisedRow("kafka", 0, 0, False)]),
        components=lambda: [], plots=lambda: None, providers=lambda: {"p1": {"NOT_DICOM": 1}},
        refused=lambda provider, actor: [], release=lambda *a: {},
        discard=lambda provider, sha256, actor: discarded.append((provider, sha256, actor)) or (1, 1),
        letters=lambda topic: [], replay=lambda *a: None)
    client = TestClient(build_app(config), base_url="https://testserver", follow_redirects=False)
    return client, oidc, discarded


def _log_in(client, oidc, name):
    answer = client.get("/quarantine")
    assert answer.status_code == 302
    state = parse_qs(urlparse(answer.headers["location"]).query)["state"][0]
    oidc.codes["c-" + name] = name
    return client.get(f"/auth/callback?state={state}&code=c-{name}")


def test_an_anonymous_browser_is_sent_to_the_login(console):
    client, _oidc, _ = console
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["location"].startswith("https://idp.example/auth")
    assert client.get("/healthz").status_code == 200
    assert client.post("/quarantine/p1/abc/discard", data={"csrf": "x"}).status_code == 401


def test_a_person_without_platform_admin_gets_403_and_no_session(console):
    client, oidc, _ = console
    answer = _log_in(client, oidc, "bob")
    assert answer.status_code == 403 and COOKIE not in answer.cookies
    assert client.get("/").status_code == 302


def test_an_admin_gets_a_session_cookie_and_forms_need_its_csrf_token(console):
    client, oidc, discarded = console
    answer = _log_in(client, oidc, "ada")
    assert answer.status_code == 303 and answer.headers["location"] == "/quarantine"
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "secure" in set_cookie and "samesite=lax" in set_cookie
    page = client.get("/")
    assert page.status_code == 200 and "kafka" in page.text and "ada" in page.text
    assert client.post("/quarantine/p1/abc/discard", data={"csrf": "wrong"}).status_code == 403
    assert not discarded
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/quarantine/p1/abc/discard", data={"csrf": csrf},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    done = client.post("/quarantine/p1/abc/discard", data={"csrf": csrf})
    assert done.status_code == 200 and discarded == [("p1", "abc", "user:ada")]
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert oidc.revoked == ["refresh"]
    assert client.get("/").status_code == 302


def test_a_replayed_callback_is_refused(console):
    client, oidc, _ = console
    answer = client.get("/")
    state = parse_qs(urlparse(answer.headers["location"]).query)["state"][0]
    oidc.codes["c"] = "ada"
    assert client.get(f"/auth/callback?state={state}&code=c").status_code == 303
    assert client.get(f"/auth/callback?state={state}&code=c").status_code == 400


def test_a_session_ends_with_its_refresh_token():
    sessions = Sessions(b"k" * 32)
    cookie = sessions.open(Session("ada", frozenset(), "a", "r", "i", time.time() + 60, ends_at=time.time() - 1))
    assert sessions.get(cookie) is None


def test_triage_refuses_what_is_not_a_digest(tmp_path):
    with pytest.raises(ProviderError, match="not a SHA-256"):
        triage.discard(Settings(state_dir=tmp_path), "p1", "../../x")


def test_logins_in_progress_are_bounded(monkeypatch):
    monkeypatch.setattr("admin_console.session.MAX_PENDING", 3)
    sessions = Sessions(b"k" * 32)
    first, *_rest = [sessions.begin_login("/", now=1000.0 + i) for i in range(4)]
    assert sessions.finish_login(first.state, now=1005.0) is None
    assert sessions.finish_login(_rest[-1].state, now=1005.0) is not None
