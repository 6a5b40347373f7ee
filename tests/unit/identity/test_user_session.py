"""The stored session of ``radlake login``: private file, what it says about the person, clear errors."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from platform_layer.identity_provider import Tokens, claims
from platform_layer.user_session import NotLoggedIn, UserSession, forget, load, save


def _jwt(payload: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part(payload)}.sig"


ACCESS = _jwt({"preferred_username": "alice", "email": "alice@example.org",
               "realm_access": {"roles": ["offline_access", "project:lung-ct:reader", "default-roles-radlake",
                                          "platform-admin"]}})


def test_a_session_is_saved_for_its_owner_only_and_read_back(tmp_path):
    path = tmp_path / "config" / "radlake" / "token.json"
    tokens = Tokens(ACCESS, 300, "refresh-secret", 1800, received_at=1000.0)
    session = UserSession.from_tokens("https://idp/realms/radlake", "radlake-cli", tokens)
    assert (session.expires_at, session.refresh_expires_at) == (1300.0, 2800.0)
    save(path, session)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load(path) == session
    assert "refresh-secret" not in repr(session) and ACCESS not in repr(session)
    forget(path)
    with pytest.raises(NotLoggedIn, match="radlake login"):
        load(path)


def test_who_and_which_radlake_roles():
    session = UserSession("i", "c", ACCESS, "r", 0.0, 2800.0)
    assert session.username == "alice"
    assert session.roles == ["platform-admin", "project:lung-ct:reader"]  # Keycloak's defaults left out
    assert session.refresh_expired(now=2800.0) and not session.refresh_expired(now=2799.0)
    assert not UserSession("i", "c", ACCESS, "r", 0.0, 0.0).refresh_expired(now=1e12)


def test_a_file_that_is_not_a_session_says_so(tmp_path):
    path = tmp_path / "token.json"
    path.write_text('{"token": "x"}')
    with pytest.raises(NotLoggedIn, match="not a radlake session"):
        load(path)


def test_claims_of_something_that_is_not_a_jwt_is_an_error():
    with pytest.raises(Exception, match="not a JWT"):
        claims("nonsense")
