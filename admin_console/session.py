"""The console's logins and sessions (pure: no Keycloak, no HTTP server).

A browser holds one cookie: a random session id and its HMAC-SHA256 under the console's session key, so a
forged or altered id is refused before any lookup. What a session knows (who, their roles, their tokens, the
CSRF token of its forms) stays in the server's memory: a restart of the console logs everyone out. A login in
progress is remembered by its ``state`` (with its PKCE verifier and nonce) for :data:`LOGIN_TTL_S`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "radlake_console"
LOGIN_TTL_S = 600.0
MAX_PENDING = 10_000  # logins in progress kept at most (anonymous requests each start one); the oldest go first


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class PendingLogin:
    """A login sent to Keycloak and not yet back: RFC 6749 ``state`` and RFC 7636 PKCE."""

    state: str
    code_verifier: str
    nonce: str
    next_path: str
    started: float

    @property
    def code_challenge(self) -> str:
        return _b64(hashlib.sha256(self.code_verifier.encode("ascii")).digest())


@dataclass
class Session:
    username: str
    roles: frozenset[str]
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    id_token: str = field(repr=False)
    access_expires_at: float
    ends_at: float = float("inf")  # when its refresh token expires: the session cannot outlive it
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def actor(self) -> str:
        """How the audit trail names the person."""
        return f"user:{self.username}"


def safe_next(path: str | None) -> str:
    """A path on this console to go back to after logging in (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


class Sessions:
    """Logins in progress and open sessions, keyed by ``state`` and by session id."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the session key must hold at least 32 bytes")
        self._key = key
        self._lock = threading.Lock()
        self._pending: dict[str, PendingLogin] = {}
        self._open: dict[str, Session] = {}

    def begin_login(self, next_path: str | None, now: float | None = None) -> PendingLogin:
        now = time.time() if now is None else now
        login = PendingLogin(secrets.token_urlsafe(32), secrets.token_urlsafe(64), secrets.token_urlsafe(16),
                             safe_next(next_path), now)
        with self._lock:
            self._pending = {s: p for s, p in self._pending.items() if now - p.started < LOGIN_TTL_S}
            while len(self._pending) >= MAX_PENDING:
                del self._pending[next(iter(self._pending))]  # dicts keep insertion order: the oldest
            self._pending[login.state] = login
        return login

    def finish_login(self, state: str, now: float | None = None) -> PendingLogin | None:
        """The login ``state`` names, once (a replayed or expired ``state`` gives None)."""
        now = time.time() if now is None else now
        with self._lock:
            login = self._pending.pop(state, None)
        if login is None or now - login.started >= LOGIN_TTL_S:
            return None
        return login

    def open(self, session: Session) -> str:
        """Keep ``session``; returns the cookie value naming it."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._open = {k: v for k, v in self._open.items() if v.ends_at > now}  # abandoned ones go
            self._open[sid] = session
        return f"{sid}.{self._mac(sid)}"

    def get(self, cookie: str | None) -> Session | None:
        sid = self._sid(cookie)
        with self._lock:
            if sid is None or sid not in self._open:
                return None
            if self._open[sid].ends_at <= time.time():
                del self._open[sid]
                return None
            return self._open[sid]

    def close(self, cookie: str | None) -> Session | None:
        sid = self._sid(cookie)
        with self._lock:
            return self._open.pop(sid, None) if sid else None

    def _mac(self, sid: str) -> str:
        return _b64(hmac.new(self._key, sid.encode("ascii"), hashlib.sha256).digest())

    def _sid(self, cookie: str | None) -> str | None:
        if not cookie or cookie.count(".") != 1:
            return None
        sid, mac = cookie.split(".")
        return sid if hmac.compare_digest(mac, self._mac(sid)) else None
